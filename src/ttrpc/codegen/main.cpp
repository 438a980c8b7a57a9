// protoc-gen-kata-ttrpc: writes typed ttRPC stubs for the services of a .proto.
//
//   protoc --plugin=protoc-gen-kata-ttrpc=<path> --kata-ttrpc_out=<dir> --cpp_out=<dir> x/y.proto
//
// produces x/y.ttrpc.pb.h and x/y.ttrpc.pb.cc next to protoc's x/y.pb.h. For every service
// `package.Service` they hold, in the package's namespace:
//   - `ServiceClient`: one coroutine per rpc over a kata::ttrpc::Client;
//   - `Service`: an abstract base with one pure virtual coroutine per rpc;
//   - `register_service(kata::ttrpc::Server&, std::shared_ptr<Service>)`.
// A .proto without services gets no files (cmake/KataProtobuf.cmake relies on that). Rpc names become snake_case members (CreateContainer -> create_container, GetOOMEvent
// -> get_oom_event); a name that is a C++ keyword gets a trailing underscore (Delete -> delete_).
#include <google/protobuf/compiler/code_generator.h>
#include <google/protobuf/compiler/cpp/names.h>
#include <google/protobuf/compiler/plugin.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/printer.h>
#include <google/protobuf/io/zero_copy_stream.h>

#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

namespace pb = google::protobuf;

std::string snake_case(const std::string& name) {
  static const std::set<std::string> keywords = {
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
      "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr",
      "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default",
      "delete", "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float",
      "for", "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not",
      "not_eq", "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register",
      "reinterpret_cast", "requires", "return", "short", "signed", "sizeof", "static", "static_assert",
      "static_cast", "struct", "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef",
      "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while",
      "xor", "xor_eq", "service_name"};
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (std::isupper(c) != 0) {
      const bool after_lower = i > 0 && (std::islower(static_cast<unsigned char>(name[i - 1])) != 0 ||
                                         std::isdigit(static_cast<unsigned char>(name[i - 1])) != 0);
      // The last capital of an acronym starts a new word: "OOMEvent" -> "oom_event".
      const bool acronym_end = i > 0 && std::isupper(static_cast<unsigned char>(name[i - 1])) != 0 &&
                               i + 1 < name.size() && std::islower(static_cast<unsigned char>(name[i + 1])) != 0;
      if ((after_lower || acronym_end) && !out.empty() && out.back() != '_') out += '_';
      out += static_cast<char>(std::tolower(c));
    } else {
      out += static_cast<char>(c);
    }
  }
  if (keywords.contains(out)) out += '_';
  return out;
}

std::vector<std::string> split_package(const std::string& package) {
  std::vector<std::string> parts;
  std::string part;
  for (char c : package) {
    if (c == '.') {
      parts.push_back(part);
      part.clear();
    } else {
      part += c;
    }
  }
  if (!part.empty()) parts.push_back(part);
  return parts;
}

struct Rpc {
  std::string name;        // as in the .proto
  std::string member;      // snake_case C++ name
  std::string request;     // fully qualified C++ class
  std::string response;
  bool client_streaming;
  bool server_streaming;
  [[nodiscard]] bool streaming() const { return client_streaming || server_streaming; }
};

std::vector<Rpc> rpcs_of(const pb::ServiceDescriptor* service) {
  std::vector<Rpc> rpcs;
  for (int i = 0; i < service->method_count(); ++i) {
    const pb::MethodDescriptor* method = service->method(i);
    rpcs.push_back({method->name(), snake_case(method->name()),
                    pb::compiler::cpp::QualifiedClassName(method->input_type()),
                    pb::compiler::cpp::QualifiedClassName(method->output_type()), method->client_streaming(),
                    method->server_streaming()});
  }
  return rpcs;
}

void open_namespace(pb::io::Printer& p, const std::vector<std::string>& parts) {
  for (const auto& part : parts) p.Print("namespace $ns$ {\n", "ns", part);
  if (!parts.empty()) p.Print("\n");
}

void close_namespace(pb::io::Printer& p, const std::vector<std::string>& parts) {
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) p.Print("}  // namespace $ns$\n", "ns", *it);
}

void write_header(pb::io::Printer& p, const pb::FileDescriptor* file, const std::string& base) {
  p.Print(
      "// Generated by protoc-gen-kata-ttrpc from $file$. Do not edit.\n"
      "#pragma once\n\n"
      "#include <memory>\n"
      "#include <optional>\n"
      "#include <string_view>\n\n"
      "#include \"kata/ttrpc/client.hpp\"\n"
      "#include \"kata/ttrpc/server.hpp\"\n"
      "#include \"kata/ttrpc/stubs.hpp\"\n"
      "#include \"$base$.pb.h\"\n\n",
      "file", file->name(), "base", base);
  const auto parts = split_package(file->package());
  open_namespace(p, parts);
  for (int s = 0; s < file->service_count(); ++s) {
    const pb::ServiceDescriptor* service = file->service(s);
    const auto rpcs = rpcs_of(service);
    std::map<std::string, std::string> vars{{"service", service->name()}, {"full", service->full_name()}};
    p.Print(vars,
            "/// Client of $full$ over a kata::ttrpc::Client, which must outlive it.\n"
            "class $service$Client {\n"
            " public:\n"
            "  static constexpr std::string_view service_name = \"$full$\";\n\n"
            "  explicit $service$Client(::kata::ttrpc::Client& client) noexcept : client_(&client) {}\n\n");
    for (const auto& rpc : rpcs) {
      vars["name"] = rpc.name;
      vars["member"] = rpc.member;
      vars["req"] = rpc.request;
      vars["resp"] = rpc.response;
      if (!rpc.streaming()) {
        p.Print(vars, "  /// $full$/$name$\n"
                      "  ::kata::Task<$resp$> $member$(const $req$& request, ::kata::ttrpc::CallOptions options = {});\n");
      } else if (rpc.client_streaming) {
        vars["shape"] = rpc.server_streaming ? "bidirectional streaming" : "client streaming";
        p.Print(vars, "  /// $full$/$name$ ($shape$)\n"
                      "  ::kata::Task<::kata::ttrpc::TypedClientStream<$req$, $resp$>> $member$(\n"
                      "      ::kata::ttrpc::CallOptions options = {});\n");
      } else {
        p.Print(vars, "  /// $full$/$name$ (server streaming)\n"
                      "  ::kata::Task<::kata::ttrpc::TypedClientStream<$req$, $resp$>> $member$(\n"
                      "      const $req$& request, ::kata::ttrpc::CallOptions options = {});\n");
      }
    }
    p.Print(vars,
            "\n private:\n"
            "  ::kata::ttrpc::Client* client_;\n"
            "};\n\n"
            "/// Server side of $full$: implement every rpc, then register_service().\n"
            "class $service$ {\n"
            " public:\n"
            "  static constexpr std::string_view service_name = \"$full$\";\n\n"
            "  virtual ~$service$() = default;\n\n");
    for (const auto& rpc : rpcs) {
      vars["name"] = rpc.name;
      vars["member"] = rpc.member;
      vars["req"] = rpc.request;
      vars["resp"] = rpc.response;
      if (!rpc.streaming()) {
        p.Print(vars, "  virtual ::kata::Task<$resp$> $member$(const $req$& request,\n"
                      "      const ::kata::ttrpc::CallContext& context) = 0;\n");
      } else {
        p.Print(vars, "  virtual ::kata::Task<std::optional<$resp$>> $member$(\n"
                      "      ::kata::ttrpc::TypedServerStream<$req$, $resp$>& stream,\n"
                      "      const ::kata::ttrpc::CallContext& context) = 0;\n");
      }
    }
    p.Print(vars,
            "};\n\n"
            "/// Serves `implementation` on `server` under \"$full$\". Throws kata::Error (already_exists)\n"
            "/// when the service is registered twice.\n"
            "void register_service(::kata::ttrpc::Server& server, std::shared_ptr<$service$> implementation);\n\n");
  }
  close_namespace(p, parts);
}

void write_source(pb::io::Printer& p, const pb::FileDescriptor* file, const std::string& base) {
  p.Print(
      "// Generated by protoc-gen-kata-ttrpc from $file$. Do not edit.\n"
      "#include \"$base$.ttrpc.pb.h\"\n\n"
      "#include <string>\n"
      "#include <utility>\n\n",
      "file", file->name(), "base", base);
  const auto parts = split_package(file->package());
  open_namespace(p, parts);
  for (int s = 0; s < file->service_count(); ++s) {
    const pb::ServiceDescriptor* service = file->service(s);
    const auto rpcs = rpcs_of(service);
    std::map<std::string, std::string> vars{{"service", service->name()}, {"full", service->full_name()}};
    for (const auto& rpc : rpcs) {
      vars["name"] = rpc.name;
      vars["member"] = rpc.member;
      vars["req"] = rpc.request;
      vars["resp"] = rpc.response;
      vars["cs"] = rpc.client_streaming ? "true" : "false";
      vars["ss"] = rpc.server_streaming ? "true" : "false";
      if (!rpc.streaming()) {
        p.Print(vars,
                "::kata::Task<$resp$> $service$Client::$member$(const $req$& request,\n"
                "    ::kata::ttrpc::CallOptions options) {\n"
                "  return ::kata::ttrpc::stubs::unary_call<$resp$>(*client_, service_name, \"$name$\", request,\n"
                "                                                std::move(options));\n"
                "}\n\n");
      } else if (rpc.client_streaming) {
        p.Print(vars,
                "::kata::Task<::kata::ttrpc::TypedClientStream<$req$, $resp$>> $service$Client::$member$(\n"
                "    ::kata::ttrpc::CallOptions options) {\n"
                "  return ::kata::ttrpc::stubs::open_stream<$req$, $resp$>(*client_, service_name, \"$name$\",\n"
                "      {$cs$, $ss$}, nullptr, std::move(options));\n"
                "}\n\n");
      } else {
        p.Print(vars,
                "::kata::Task<::kata::ttrpc::TypedClientStream<$req$, $resp$>> $service$Client::$member$(\n"
                "    const $req$& request, ::kata::ttrpc::CallOptions options) {\n"
                "  return ::kata::ttrpc::stubs::open_stream<$req$, $resp$>(*client_, service_name, \"$name$\",\n"
                "      {$cs$, $ss$}, &request, std::move(options));\n"
                "}\n\n");
      }
    }
    p.Print(vars,
            "void register_service(::kata::ttrpc::Server& server, std::shared_ptr<$service$> implementation) {\n"
            "  ::kata::ttrpc::ServiceDefinition definition{std::string($service$::service_name)};\n");
    for (const auto& rpc : rpcs) {
      vars["name"] = rpc.name;
      vars["member"] = rpc.member;
      vars["cs"] = rpc.client_streaming ? "true" : "false";
      vars["ss"] = rpc.server_streaming ? "true" : "false";
      if (!rpc.streaming()) {
        p.Print(vars, "  ::kata::ttrpc::stubs::add_unary(definition, \"$name$\", implementation, &$service$::$member$);\n");
      } else {
        p.Print(vars, "  ::kata::ttrpc::stubs::add_stream(definition, \"$name$\", {$cs$, $ss$}, implementation,\n"
                      "                                  &$service$::$member$);\n");
      }
    }
    p.Print("  server.add_service(std::move(definition));\n}\n\n");
  }
  close_namespace(p, parts);
}

class Generator final : public pb::compiler::CodeGenerator {
 public:
  // agent.proto uses proto3 `optional` (MemAgent configs); stubs do not depend on field presence.
  uint64_t GetSupportedFeatures() const override { return FEATURE_PROTO3_OPTIONAL; }

  bool Generate(const pb::FileDescriptor* file, const std::string& parameter,
                pb::compiler::GeneratorContext* context, std::string* error) const override {
    if (!parameter.empty()) {
      *error = "protoc-gen-kata-ttrpc takes no options, got \"" + parameter + "\"";
      return false;
    }
    if (file->service_count() == 0) return true;
    const std::string base = pb::compiler::cpp::StripProto(file->name());
    {
      std::unique_ptr<pb::io::ZeroCopyOutputStream> out(context->Open(base + ".ttrpc.pb.h"));
      pb::io::Printer printer(out.get(), '$');
      write_header(printer, file, base);
    }
    {
      std::unique_ptr<pb::io::ZeroCopyOutputStream> out(context->Open(base + ".ttrpc.pb.cc"));
      pb::io::Printer printer(out.get(), '$');
      write_source(printer, file, base);
    }
    return true;
  }
};

}  // namespace

int main(int argc, char* argv[]) {
  Generator generator;
  return pb::compiler::PluginMain(argc, argv, &generator);
}
