#include "kata/oci/spec.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <concepts>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <type_traits>

#include "kata/core/error.hpp"

namespace kata::oci {

namespace {

// Each struct's fields are listed once, in fields(visitor, struct); the same list drives
// parsing (Reader) and serialising (Writer), so the two cannot drift apart.

/// Go writes these even when empty (no `omitempty` in specs-go).
enum class Presence { omit_empty, always };
constexpr Presence always = Presence::always;

template <class S, class T>
concept Is = std::same_as<std::remove_const_t<S>, T>;

template <class T>
concept Modelled = requires(T& t) { t.extra; };

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

template <class V, Is<Box> S>
void fields(V& v, S& s) {
  v("height", s.height);
  v("width", s.width);
}

template <class V, Is<User> S>
void fields(V& v, S& s) {
  v("uid", s.uid);
  v("gid", s.gid);
  v("umask", s.umask);
  v("additionalGids", s.additional_gids);
  v("username", s.username);
}

template <class V, Is<Capabilities> S>
void fields(V& v, S& s) {
  v("bounding", s.bounding);
  v("effective", s.effective);
  v("inheritable", s.inheritable);
  v("permitted", s.permitted);
  v("ambient", s.ambient);
}

template <class V, Is<Rlimit> S>
void fields(V& v, S& s) {
  v("type", s.type, always);
  v("hard", s.hard);
  v("soft", s.soft);
}

template <class V, Is<Process> S>
void fields(V& v, S& s) {
  v("terminal", s.terminal);
  v("consoleSize", s.console_size);
  v("user", s.user);
  v("args", s.args);
  v("env", s.env);
  v("cwd", s.cwd, always);
  v("capabilities", s.capabilities);
  v("rlimits", s.rlimits);
  v("noNewPrivileges", s.no_new_privileges);
  v("apparmorProfile", s.apparmor_profile);
  v("oomScoreAdj", s.oom_score_adj);
  v("selinuxLabel", s.selinux_label);
}

template <class V, Is<Root> S>
void fields(V& v, S& s) {
  v("path", s.path, always);
  v("readonly", s.readonly);
}

template <class V, Is<Mount> S>
void fields(V& v, S& s) {
  v("destination", s.destination, always);
  v("type", s.type);
  v("source", s.source);
  v("options", s.options);
}

template <class V, Is<Hook> S>
void fields(V& v, S& s) {
  v("path", s.path, always);
  v("args", s.args);
  v("env", s.env);
  v("timeout", s.timeout);
}

template <class V, Is<Hooks> S>
void fields(V& v, S& s) {
  v("prestart", s.prestart);
  v("createRuntime", s.create_runtime);
  v("createContainer", s.create_container);
  v("startContainer", s.start_container);
  v("poststart", s.poststart);
  v("poststop", s.poststop);
}

template <class V, Is<Namespace> S>
void fields(V& v, S& s) {
  v("type", s.type, always);
  v("path", s.path);
}

template <class V, Is<IdMapping> S>
void fields(V& v, S& s) {
  v("containerID", s.container_id);
  v("hostID", s.host_id);
  v("size", s.size);
}

template <class V, Is<DeviceCgroup> S>
void fields(V& v, S& s) {
  v("allow", s.allow, always);
  v("type", s.type);
  v("major", s.major);
  v("minor", s.minor);
  v("access", s.access);
}

template <class V, Is<Memory> S>
void fields(V& v, S& s) {
  v("limit", s.limit);
  v("reservation", s.reservation);
  v("swap", s.swap);
  v("kernel", s.kernel);
  v("kernelTCP", s.kernel_tcp);
  v("swappiness", s.swappiness);
  v("disableOOMKiller", s.disable_oom_killer);
  v("useHierarchy", s.use_hierarchy);
  v("checkBeforeUpdate", s.check_before_update);
}

template <class V, Is<Cpu> S>
void fields(V& v, S& s) {
  v("shares", s.shares);
  v("quota", s.quota);
  v("burst", s.burst);
  v("period", s.period);
  v("realtimeRuntime", s.realtime_runtime);
  v("realtimePeriod", s.realtime_period);
  v("cpus", s.cpus);
  v("mems", s.mems);
  v("idle", s.idle);
}

template <class V, Is<Pids> S>
void fields(V& v, S& s) {
  v("limit", s.limit);
}

template <class V, Is<HugepageLimit> S>
void fields(V& v, S& s) {
  v("pageSize", s.page_size, always);
  v("limit", s.limit);
}

template <class V, Is<Resources> S>
void fields(V& v, S& s) {
  v("devices", s.devices);
  v("memory", s.memory);
  v("cpu", s.cpu);
  v("pids", s.pids);
  v("hugepageLimits", s.hugepage_limits);
}

template <class V, Is<Device> S>
void fields(V& v, S& s) {
  v("path", s.path, always);
  v("type", s.type, always);
  v("major", s.major);
  v("minor", s.minor);
  v("fileMode", s.file_mode);
  v("uid", s.uid);
  v("gid", s.gid);
}

template <class V, Is<LinuxSpec> S>
void fields(V& v, S& s) {
  v("uidMappings", s.uid_mappings);
  v("gidMappings", s.gid_mappings);
  v("sysctl", s.sysctl);
  v("resources", s.resources);
  v("cgroupsPath", s.cgroups_path);
  v("namespaces", s.namespaces);
  v("devices", s.devices);
  v("seccomp", s.seccomp);
  v("rootfsPropagation", s.rootfs_propagation);
  v("maskedPaths", s.masked_paths);
  v("readonlyPaths", s.readonly_paths);
  v("mountLabel", s.mount_label);
}

template <class V, Is<Spec> S>
void fields(V& v, S& s) {
  v("ociVersion", s.oci_version, always);
  v("process", s.process);
  v("root", s.root);
  v("hostname", s.hostname);
  v("domainname", s.domainname);
  v("mounts", s.mounts);
  v("hooks", s.hooks);
  v("annotations", s.annotations);
  v("linux", s.linux_spec);
}

// ---- parsing ----------------------------------------------------------------------------

std::string child_path(const std::string& parent, std::string_view key) {
  const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  });
  if (plain) return parent.empty() ? std::string(key) : parent + "." + std::string(key);
  return parent + "[" + Json(key).dump() + "]";
}

const char* type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_float: return "a fraction";
    default: return "a number";
  }
}

class Reader {
 public:
  Reader(const Json& object, std::string path, std::string_view origin)
      : object_(object), path_(std::move(path)), origin_(origin) {}

  template <class T>
  void operator()(const char* key, T& out, Presence = Presence::omit_empty) {
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return;  // null stays in extra, verbatim
    consumed_.insert(key);
    convert(*it, out, child_path(path_, key));
  }

  /// The keys no field consumed.
  Json remaining() const {
    Json extra = Json::object();
    for (const auto& [key, value] : object_.items()) {
      if (!consumed_.contains(key)) extra[key] = value;
    }
    return extra;
  }

  template <class T>
  void convert(const Json& value, T& out, const std::string& path) const {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!value.is_string()) mismatch(path, "string", value);
      out = value.template get<std::string>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!value.is_boolean()) mismatch(path, "boolean", value);
      out = value.template get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      out = integer<T>(value, path);
    } else if constexpr (std::is_same_v<T, Json>) {
      out = value;
    } else if constexpr (IsOptional<T>::value) {
      convert(value, out.emplace(), path);
    } else if constexpr (IsVector<T>::value) {
      if (!value.is_array()) mismatch(path, "array", value);
      out.clear();
      out.resize(value.size());
      for (std::size_t i = 0; i < value.size(); ++i) convert(value[i], out[i], path + "[" + std::to_string(i) + "]");
    } else if constexpr (std::is_same_v<T, StringMap>) {
      if (!value.is_object()) mismatch(path, "object", value);
      out.clear();
      for (const auto& [key, item] : value.items()) convert(item, out[key], child_path(path, key));
    } else {
      static_assert(Modelled<T>);
      if (!value.is_object()) mismatch(path, "object", value);
      Reader nested(value, path, origin_);
      fields(nested, out);
      out.extra = nested.remaining();
    }
  }

 private:
  [[noreturn]] void mismatch(const std::string& path, std::string_view expected, const Json& value) const {
    fail(Errc::invalid_argument, "{}: {}: expected {}, found {}", origin_, path, expected, type_name(value));
  }

  template <class T>
  T integer(const Json& value, const std::string& path) const {
    if (!value.is_number_integer()) mismatch(path, "integer", value);
    using Limits = std::numeric_limits<T>;
    bool in_range;
    if (value.is_number_unsigned()) {
      in_range = value.template get<std::uint64_t>() <= static_cast<std::uint64_t>(Limits::max());
    } else {
      const auto v = value.template get<std::int64_t>();
      in_range = v >= 0 ? static_cast<std::uint64_t>(v) <= static_cast<std::uint64_t>(Limits::max())
                        : std::is_signed_v<T> && v >= static_cast<std::int64_t>(Limits::min());
    }
    if (!in_range) {
      fail(Errc::invalid_argument, "{}: {}: expected integer in [{}, {}], found {}", origin_, path, Limits::min(),
           Limits::max(), value.dump());
    }
    return value.template get<T>();
  }

  const Json& object_;
  std::string path_;
  std::string_view origin_;
  std::set<std::string, std::less<>> consumed_;
};

// ---- serialising ------------------------------------------------------------------------

template <class T>
Json to_value(const T& value);

class Writer {
 public:
  explicit Writer(Json& object) : object_(object) {}

  template <class T>
  void operator()(const char* key, const T& value, Presence presence = Presence::omit_empty) {
    if constexpr (IsOptional<T>::value) {
      if (value) object_[key] = to_value(*value);
    } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      object_[key] = value;  // Go has no omitempty on the plain integers we model
    } else if constexpr (std::is_same_v<T, bool>) {
      if (value || presence == always) object_[key] = value;
    } else if constexpr (std::is_same_v<T, std::string> || IsVector<T>::value || std::is_same_v<T, StringMap>) {
      if (!value.empty() || presence == always) object_[key] = to_value(value);
    } else {
      object_[key] = to_value(value);
    }
  }

 private:
  Json& object_;
};

template <class T>
Json to_value(const T& value) {
  if constexpr (Modelled<T>) {
    Json out = value.extra.is_object() ? value.extra : Json::object();
    Writer writer(out);
    fields(writer, value);
    return out;
  } else if constexpr (IsVector<T>::value) {
    Json out = Json::array();
    for (const auto& item : value) out.push_back(to_value(item));
    return out;
  } else {
    return Json(value);
  }
}

}  // namespace

Spec spec_from_json(const Json& document, std::string_view origin) {
  if (!document.is_object()) fail(Errc::invalid_argument, "{}: expected a JSON object, found {}", origin, type_name(document));
  Spec spec;
  Reader(document, "", origin).convert(document, spec, "");
  return spec;
}

Spec parse_spec(std::string_view text, std::string_view origin) {
  Json document;
  try {
    document = Json::parse(text);
  } catch (const Json::parse_error& e) {
    fail(Errc::invalid_argument, "{}: not valid JSON: {}", origin, e.what());
  }
  return spec_from_json(document, origin);
}

Spec load_spec(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail_errno(errno, "read {}", file.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail_errno(errno, "read {}", file.string());
  return parse_spec(text.str(), file.string());
}

Json to_json(const Spec& spec) { return to_value(spec); }

}  // namespace kata::oci
