#include "kata/shim/cli.hpp"

#include <sys/stat.h>

#include <charconv>
#include <cstdint>
#include <system_error>
#include <vector>

#include <nettle/sha2.h>

#include "kata/core/error.hpp"
#include "kata/persist/file.hpp"
#include "kata/persist/id.hpp"

namespace kata::shim {

namespace fs = std::filesystem;

namespace {

std::string* string_flag(Arguments& a, std::string_view name) {
  if (name == "id") return &a.id;
  if (name == "namespace") return &a.namespace_name;
  if (name == "address") return &a.address;
  if (name == "publish-binary") return &a.publish_binary;
  if (name == "bundle") return &a.bundle;
  return nullptr;
}

bool* bool_flag(Arguments& a, std::string_view name) {
  if (name == "debug") return &a.debug;
  if (name == "v" || name == "version") return &a.version;
  if (name == "info") return &a.info;
  return nullptr;
}

// Go's strconv.ParseBool.
bool parse_bool(std::string_view value, std::string_view flag) {
  for (const char* yes : {"1", "t", "T", "true", "TRUE", "True"}) {
    if (value == yes) return true;
  }
  for (const char* no : {"0", "f", "F", "false", "FALSE", "False"}) {
    if (value == no) return false;
  }
  fail(Errc::invalid_argument, "invalid boolean value \"{}\" for -{}", value, flag);
}

Action parse_action(std::string_view word) {
  if (word == "start") return Action::start;
  if (word == "delete") return Action::delete_;
  fail(Errc::invalid_argument, "unknown action \"{}\": expected start or delete", word);
}

}  // namespace

std::string_view to_string(Action action) noexcept {
  switch (action) {
    case Action::serve: return "serve";
    case Action::start: return "start";
    case Action::delete_: return "delete";
  }
  return "serve";
}

Arguments parse_arguments(std::span<const std::string_view> arguments) {
  Arguments result;
  std::size_t i = 0;
  for (; i < arguments.size(); ++i) {
    const std::string_view argument = arguments[i];
    if (argument.size() < 2 || argument[0] != '-') break;  // "-" alone is positional, as in Go
    if (argument == "--") {
      ++i;
      break;
    }
    std::string_view body = argument.substr(argument[1] == '-' ? 2 : 1);
    if (body.empty() || body[0] == '-' || body[0] == '=') fail(Errc::invalid_argument, "bad flag syntax: {}", argument);
    std::optional<std::string_view> inline_value;
    if (const auto eq = body.find('='); eq != std::string_view::npos) {
      inline_value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    if (bool* flag = bool_flag(result, body)) {
      *flag = inline_value ? parse_bool(*inline_value, body) : true;
    } else if (std::string* value = string_flag(result, body)) {
      if (inline_value) {
        *value = std::string(*inline_value);
      } else {
        if (i + 1 >= arguments.size()) fail(Errc::invalid_argument, "flag needs an argument: -{}", body);
        *value = std::string(arguments[++i]);
      }
    } else {
      fail(Errc::invalid_argument, "flag provided but not defined: -{}", body);
    }
  }
  if (i < arguments.size()) {
    result.action = parse_action(arguments[i]);
    if (i + 1 < arguments.size()) {
      fail(Errc::invalid_argument, "unexpected argument \"{}\" after {}", arguments[i + 1], arguments[i]);
    }
  }
  return result;
}

Arguments parse_arguments(int argc, const char* const* argv) {
  std::vector<std::string_view> arguments;
  for (int i = 1; i < argc; ++i) arguments.emplace_back(argv[i]);
  return parse_arguments(arguments);
}

void validate(Arguments& arguments, bool require_bundle) {
  for (const auto& [flag, value] : {std::pair<std::string_view, const std::string*>{"id", &arguments.id},
                                    {"namespace", &arguments.namespace_name},
                                    {"publish-binary", &arguments.publish_binary}}) {
    if (value->empty()) fail(Errc::invalid_argument, "-{} is required", flag);
  }
  with_context("-id", [&] { persist::verify_id(arguments.id); });
  with_context("-namespace", [&] { persist::verify_id(arguments.namespace_name); });
  if (!require_bundle) return;
  if (arguments.bundle.empty()) fail(Errc::invalid_argument, "-bundle is required for delete");
  std::error_code error;
  const fs::path canonical = fs::canonical(arguments.bundle, error);
  if (error) fail(Errc::invalid_argument, "-bundle {}: {}", arguments.bundle, error.message());
  if (!fs::is_directory(canonical, error)) fail(Errc::invalid_argument, "-bundle {}: not a directory", arguments.bundle);
  arguments.bundle = canonical.string();
}

std::string sha256_hex(std::string_view data) {
  sha256_ctx context;
  sha256_init(&context);
  sha256_update(&context, data.size(), reinterpret_cast<const std::uint8_t*>(data.data()));
  std::uint8_t digest[SHA256_DIGEST_SIZE];
  sha256_digest(&context, sizeof digest, digest);
  constexpr unsigned int length = SHA256_DIGEST_SIZE;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xf];
  }
  return out;
}

// containerd's Go helper formats the digest with %x (lower case); upstream runtime-rs uses
// upper case. Either works, because containerd never recomputes the name: it reads the address
// back from start's stdout and from <bundle>/address. What matters is that every container of a
// pod derives the same name from the sandbox id, and lower case matches what the runc shim
// creates in the same directory.
fs::path socket_path(std::string_view containerd_address, std::string_view namespace_name, std::string_view id,
                     const fs::path& socket_dir) {
  std::string key;
  key.reserve(containerd_address.size() + namespace_name.size() + id.size() + 2);
  key.append(containerd_address).append("/").append(namespace_name).append("/").append(id);
  return socket_dir / sha256_hex(key);
}

std::string socket_address(std::string_view containerd_address, std::string_view namespace_name, std::string_view id,
                           const fs::path& socket_dir) {
  return "unix://" + socket_path(containerd_address, namespace_name, id, socket_dir).string();
}

fs::path socket_path_of(std::string_view address) {
  constexpr std::string_view scheme = "unix://";
  if (!address.starts_with(scheme) || address.size() == scheme.size()) {
    fail(Errc::invalid_argument, "shim address \"{}\" is not unix://<path>", address);
  }
  return fs::path(address.substr(scheme.size()));
}

void write_address_file(const fs::path& bundle, std::string_view address) {
  persist::write_file_atomic(bundle / "address", address, 0644);
}

void write_pid_file(const fs::path& bundle, pid_t pid) {
  persist::write_file_atomic(bundle / "shim.pid", std::to_string(pid), 0644);
}

pid_t read_pid_file(const fs::path& bundle) {
  const fs::path path = bundle / "shim.pid";
  const auto text = persist::read_file_if_exists(path);
  if (!text) return 0;
  std::string_view digits(*text);
  while (!digits.empty() && (digits.back() == '\n' || digits.back() == ' ')) digits.remove_suffix(1);
  pid_t pid = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
  if (ec != std::errc() || end != digits.data() + digits.size() || pid <= 0) {
    fail(Errc::data_loss, "{}: \"{}\" is not a process id", path.string(), digits);
  }
  return pid;
}

}  // namespace kata::shim
