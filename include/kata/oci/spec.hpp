// The OCI runtime spec (config.json) as the runtime uses it.
//
// Typed structs for the parts the shim reads or changes, each with an `extra` object holding
// every key it does not model, so that parsing and serialising loses nothing: the spec is
// forwarded to the guest agent, and a field we do not know (a newer runtime-spec, a vendor
// extension) must still reach it. Keys whose value is null are kept verbatim in `extra` too.
//
// Serialisation follows the Go runtime-spec's `omitempty` tags (specs-go/config.go): a string,
// bool, list or map is written when non-empty, an optional when set, and the fields Go always
// writes (ociVersion, process.user.uid/gid, process.cwd, root.path, ...) always. So a spec that
// containerd or CRI-O generated comes back byte-for-byte equivalent as JSON.
//
// Parse errors name the origin and the JSON path of the offending value:
//   config.json: linux.resources.cpu.quota: expected integer
//   config.json: annotations["io.katacontainers.config.hypervisor.default_vcpus"]: expected string
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kata::oci {

using Json = nlohmann::json;
using StringMap = std::map<std::string, std::string>;

/// process.consoleSize
struct Box {
  std::uint32_t height = 0;
  std::uint32_t width = 0;
  Json extra = Json::object();
  friend bool operator==(const Box&, const Box&) = default;
};

/// process.user
struct User {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::optional<std::uint32_t> umask;
  std::vector<std::uint32_t> additional_gids;  ///< additionalGids
  std::string username;
  Json extra = Json::object();
  friend bool operator==(const User&, const User&) = default;
};

/// process.capabilities
struct Capabilities {
  std::vector<std::string> bounding;
  std::vector<std::string> effective;
  std::vector<std::string> inheritable;
  std::vector<std::string> permitted;
  std::vector<std::string> ambient;
  Json extra = Json::object();
  friend bool operator==(const Capabilities&, const Capabilities&) = default;
};

/// process.rlimits[]
struct Rlimit {
  std::string type;  ///< "RLIMIT_NOFILE", ...
  std::uint64_t hard = 0;
  std::uint64_t soft = 0;
  Json extra = Json::object();
  friend bool operator==(const Rlimit&, const Rlimit&) = default;
};

struct Process {
  bool terminal = false;
  std::optional<Box> console_size;  ///< consoleSize
  User user;
  std::vector<std::string> args;
  std::vector<std::string> env;  ///< "KEY=value"
  std::string cwd;
  std::optional<Capabilities> capabilities;
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;  ///< noNewPrivileges
  std::string apparmor_profile;    ///< apparmorProfile
  std::optional<int> oom_score_adj;  ///< oomScoreAdj
  std::string selinux_label;       ///< selinuxLabel
  Json extra = Json::object();
  friend bool operator==(const Process&, const Process&) = default;
};

struct Root {
  std::string path;
  bool readonly = false;
  Json extra = Json::object();
  friend bool operator==(const Root&, const Root&) = default;
};

struct Mount {
  std::string destination;
  std::string type;
  std::string source;
  std::vector<std::string> options;
  Json extra = Json::object();
  friend bool operator==(const Mount&, const Mount&) = default;
};

struct Hook {
  std::string path;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::optional<int> timeout;
  Json extra = Json::object();
  friend bool operator==(const Hook&, const Hook&) = default;
};

struct Hooks {
  std::vector<Hook> prestart;
  std::vector<Hook> create_runtime;    ///< createRuntime
  std::vector<Hook> create_container;  ///< createContainer
  std::vector<Hook> start_container;   ///< startContainer
  std::vector<Hook> poststart;
  std::vector<Hook> poststop;
  Json extra = Json::object();
  friend bool operator==(const Hooks&, const Hooks&) = default;
};

/// linux.namespaces[]: type is pid, network, mount, ipc, uts, user, cgroup, time.
struct Namespace {
  std::string type;
  std::string path;  ///< empty: create a new namespace
  Json extra = Json::object();
  friend bool operator==(const Namespace&, const Namespace&) = default;
};

/// linux.uidMappings[] / gidMappings[]
struct IdMapping {
  std::uint32_t container_id = 0;  ///< containerID
  std::uint32_t host_id = 0;       ///< hostID
  std::uint32_t size = 0;
  Json extra = Json::object();
  friend bool operator==(const IdMapping&, const IdMapping&) = default;
};

/// linux.resources.devices[] (device cgroup rule)
struct DeviceCgroup {
  bool allow = false;
  std::string type;  ///< a, b, c
  std::optional<std::int64_t> major;
  std::optional<std::int64_t> minor;
  std::string access;  ///< rwm
  Json extra = Json::object();
  friend bool operator==(const DeviceCgroup&, const DeviceCgroup&) = default;
};

struct Memory {
  std::optional<std::int64_t> limit;  ///< bytes; -1 unlimited
  std::optional<std::int64_t> reservation;
  std::optional<std::int64_t> swap;
  std::optional<std::int64_t> kernel;
  std::optional<std::int64_t> kernel_tcp;  ///< kernelTCP
  std::optional<std::uint64_t> swappiness;
  std::optional<bool> disable_oom_killer;   ///< disableOOMKiller
  std::optional<bool> use_hierarchy;        ///< useHierarchy
  std::optional<bool> check_before_update;  ///< checkBeforeUpdate
  Json extra = Json::object();
  friend bool operator==(const Memory&, const Memory&) = default;
};

struct Cpu {
  std::optional<std::uint64_t> shares;
  std::optional<std::int64_t> quota;  ///< µs per period; -1 unlimited
  std::optional<std::uint64_t> burst;
  std::optional<std::uint64_t> period;  ///< µs
  std::optional<std::int64_t> realtime_runtime;   ///< realtimeRuntime
  std::optional<std::uint64_t> realtime_period;   ///< realtimePeriod
  std::string cpus;  ///< cpuset, e.g. "0-3,6"
  std::string mems;
  std::optional<std::int64_t> idle;
  Json extra = Json::object();
  friend bool operator==(const Cpu&, const Cpu&) = default;
};

struct Pids {
  std::optional<std::int64_t> limit;
  Json extra = Json::object();
  friend bool operator==(const Pids&, const Pids&) = default;
};

struct HugepageLimit {
  std::string page_size;  ///< pageSize, e.g. "2MB"
  std::uint64_t limit = 0;
  Json extra = Json::object();
  friend bool operator==(const HugepageLimit&, const HugepageLimit&) = default;
};

/// linux.resources. blockIO, network, rdma and unified are kept in `extra`.
struct Resources {
  std::vector<DeviceCgroup> devices;
  std::optional<Memory> memory;
  std::optional<Cpu> cpu;
  std::optional<Pids> pids;
  std::vector<HugepageLimit> hugepage_limits;  ///< hugepageLimits
  Json extra = Json::object();
  friend bool operator==(const Resources&, const Resources&) = default;
};

/// linux.devices[]: a device node to create in the container.
struct Device {
  std::string path;
  std::string type;  ///< c, b, u, p
  std::int64_t major = 0;
  std::int64_t minor = 0;
  std::optional<std::uint32_t> file_mode;  ///< fileMode
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  Json extra = Json::object();
  friend bool operator==(const Device&, const Device&) = default;
};

struct LinuxSpec {
  std::vector<IdMapping> uid_mappings;  ///< uidMappings
  std::vector<IdMapping> gid_mappings;  ///< gidMappings
  StringMap sysctl;
  std::optional<Resources> resources;
  std::string cgroups_path;  ///< cgroupsPath
  std::vector<Namespace> namespaces;
  std::vector<Device> devices;
  std::optional<Json> seccomp;  ///< kept as JSON: only the agent interprets it
  std::string rootfs_propagation;  ///< rootfsPropagation
  std::vector<std::string> masked_paths;    ///< maskedPaths
  std::vector<std::string> readonly_paths;  ///< readonlyPaths
  std::string mount_label;  ///< mountLabel
  Json extra = Json::object();
  friend bool operator==(const LinuxSpec&, const LinuxSpec&) = default;
};

struct Spec {
  std::string oci_version;  ///< ociVersion
  std::optional<Process> process;
  std::optional<Root> root;
  std::string hostname;
  std::string domainname;
  std::vector<Mount> mounts;
  std::optional<Hooks> hooks;
  StringMap annotations;
  /// The "linux" object. Not named `linux`: that is a predefined macro in GNU dialects.
  std::optional<LinuxSpec> linux_spec;
  Json extra = Json::object();
  friend bool operator==(const Spec&, const Spec&) = default;
};

/// Parses a spec document. `origin` names it in errors (normally the file path). Throws
/// kata::Error(invalid_argument) "<origin>: <json path>: expected <what>" for a value of the
/// wrong type or out of range, "<origin>: expected a JSON object" for a non-object document.
[[nodiscard]] Spec spec_from_json(const Json& document, std::string_view origin = "config.json");

/// Parses JSON text; additionally throws "<origin>: not valid JSON: <parser message>".
[[nodiscard]] Spec parse_spec(std::string_view text, std::string_view origin = "config.json");

/// Reads and parses a file (e.g. <bundle>/config.json); errors name the path. A missing file
/// throws kata::Error(not_found) "read <path>: No such file or directory".
[[nodiscard]] Spec load_spec(const std::filesystem::path& file);

/// The document: `extra` of every struct with the modelled fields written over it.
[[nodiscard]] Json to_json(const Spec& spec);

}  // namespace kata::oci
