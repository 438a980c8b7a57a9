#include "kata/agent_guest/container_spec.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

constexpr std::array<std::pair<std::string_view, int>, 16> rlimit_names{{
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
}};

int rlimit_resource(std::string_view name) {
  for (const auto& [known, resource] : rlimit_names) {
    if (known == name) return resource;
  }
  fail(Errc::invalid_argument, "process.rlimits: unknown type '{}'", name);
}

// The namespaces a container's init gets. Network is always the sandbox's (the agent's own),
// which the host configured with UpdateInterface/UpdateRoutes; pid is always new because this
// agent gives each container its own pid namespace (no sandbox_pidns).
std::vector<NamespaceSpec> container_namespaces(const oci::Spec& spec) {
  std::vector<NamespaceSpec> namespaces{{CLONE_NEWNS, {}}, {CLONE_NEWPID, {}}};
  const bool has_linux = spec.linux_spec.has_value();
  for (const oci::Namespace& ns : has_linux ? spec.linux_spec->namespaces : std::vector<oci::Namespace>{}) {
    int type = 0;
    if (ns.type == "mount" || ns.type == "pid" || ns.type == "network") {
      if (!ns.path.empty() && ns.type != "network") {
        fail(Errc::invalid_argument, "linux.namespaces: joining the {} namespace {} is not supported", ns.type, ns.path);
      }
      continue;
    }
    if (ns.type == "uts") type = CLONE_NEWUTS;
    else if (ns.type == "ipc") type = CLONE_NEWIPC;
    else if (ns.type == "cgroup") type = CLONE_NEWCGROUP;
    else if (ns.type == "user") fail(Errc::invalid_argument, "linux.namespaces: user namespaces are not supported by this agent");
    else if (ns.type == "time") continue;
    else fail(Errc::invalid_argument, "linux.namespaces: unknown type '{}'", ns.type);
    namespaces.push_back({type, ns.path});
  }
  return namespaces;
}

}  // namespace

ProcessSpec process_spec(const oci::Process& process) {
  if (process.args.empty()) fail(Errc::invalid_argument, "process.args is empty");
  ProcessSpec out;
  out.args = process.args;
  out.env = process.env;
  out.cwd = process.cwd.empty() ? "/" : process.cwd;
  if (!out.cwd.starts_with('/')) fail(Errc::invalid_argument, "process.cwd '{}' is not absolute", process.cwd);
  out.uid = process.user.uid;
  out.gid = process.user.gid;
  out.additional_gids.assign(process.user.additional_gids.begin(), process.user.additional_gids.end());
  if (process.user.umask) out.umask = static_cast<mode_t>(*process.user.umask);
  out.no_new_privileges = process.no_new_privileges;
  for (const oci::Rlimit& limit : process.rlimits) {
    if (limit.soft > limit.hard) {
      fail(Errc::invalid_argument, "process.rlimits: {} soft limit {} exceeds hard limit {}", limit.type, limit.soft,
           limit.hard);
    }
    out.rlimits.push_back({rlimit_resource(limit.type), static_cast<rlim_t>(limit.soft), static_cast<rlim_t>(limit.hard)});
  }
  out.terminal = process.terminal;
  return out;
}

CgroupResources cgroup_resources(const oci::Resources& resources) {
  CgroupResources out;
  if (resources.memory) {
    out.memory_limit = resources.memory->limit;
    out.memory_reservation = resources.memory->reservation;
    out.memory_swap = resources.memory->swap;
  }
  if (resources.cpu) {
    out.cpu_quota = resources.cpu->quota;
    out.cpu_period = resources.cpu->period;
    out.cpu_shares = resources.cpu->shares;
    if (!resources.cpu->cpus.empty()) out.cpuset_cpus = resources.cpu->cpus;
    if (!resources.cpu->mems.empty()) out.cpuset_mems = resources.cpu->mems;
  }
  if (resources.pids) out.pids_limit = resources.pids->limit;
  // The protobuf mirror has no presence for scalars: 0 means "not set", never "no memory".
  auto unset_zero = [](auto& value) {
    if (value && *value == 0) value.reset();
  };
  unset_zero(out.memory_limit);
  unset_zero(out.memory_reservation);
  unset_zero(out.memory_swap);
  unset_zero(out.cpu_quota);
  unset_zero(out.cpu_period);
  unset_zero(out.cpu_shares);
  unset_zero(out.pids_limit);
  return out;
}

SpawnRequest container_spawn_request(const oci::Spec& spec, const std::filesystem::path& cgroup) {
  if (!spec.process) fail(Errc::invalid_argument, "the OCI spec has no process");
  if (!spec.root || spec.root->path.empty()) fail(Errc::invalid_argument, "the OCI spec has no root.path");
  const std::filesystem::path root = spec.root->path;
  if (!root.is_absolute()) fail(Errc::invalid_argument, "root.path '{}' is not absolute", root.string());
  std::error_code error;
  if (!std::filesystem::is_directory(root, error)) {
    fail(Errc::not_found, "container rootfs {} does not exist or is not a directory", root.string());
  }

  SpawnRequest request;
  request.process = process_spec(*spec.process);
  request.namespaces = container_namespaces(spec);
  request.cgroup = cgroup;
  request.hold_before_exec = true;

  RootfsSpec& rootfs = request.rootfs.emplace();
  rootfs.path = root;
  rootfs.read_only = spec.root->readonly;
  rootfs.hostname = spec.hostname;
  for (const oci::Mount& mount : spec.mounts) {
    if (!mount.destination.starts_with('/')) {
      fail(Errc::invalid_argument, "mounts: destination '{}' is not absolute", mount.destination);
    }
    if (mount.type == "cgroup") {
      // containerd asks for "cgroup" whatever the hierarchy; the guest has only the unified one,
      // where a v1 mount would fail, so it becomes cgroup2 (runc does the same on v2 hosts). In
      // the container's own cgroup namespace it shows the container's subtree.
      rootfs.mounts.push_back({mount.destination, "cgroup2", "cgroup2", mount.options});
      continue;
    }
    rootfs.mounts.push_back({mount.destination, mount.type, mount.source, mount.options});
  }
  rootfs.devices.assign(std::begin(default_container_devices), std::end(default_container_devices));
  if (spec.linux_spec) {
    const oci::LinuxSpec& linux_spec = *spec.linux_spec;
    if (!linux_spec.rootfs_propagation.empty()) rootfs.propagation = linux_spec.rootfs_propagation;
    for (const oci::Device& device : linux_spec.devices) {
      if (!device.path.starts_with("/dev/")) {
        fail(Errc::invalid_argument, "linux.devices: '{}' is not under /dev", device.path);
      }
      if (std::find(rootfs.devices.begin(), rootfs.devices.end(), device.path) == rootfs.devices.end()) {
        if (!std::filesystem::exists(device.path, error)) {
          fail(Errc::not_found, "linux.devices: {} does not exist in the guest", device.path);
        }
        rootfs.devices.push_back(device.path);
      }
    }
    rootfs.masked_paths = linux_spec.masked_paths;
    rootfs.readonly_paths = linux_spec.readonly_paths;
  }
  return request;
}

SpawnRequest exec_spawn_request(const oci::Process& process, pid_t init_pid, const std::filesystem::path& cgroup) {
  SpawnRequest request;
  request.process = process_spec(process);
  const std::filesystem::path ns_dir = "/proc/" + std::to_string(init_pid) + "/ns";
  for (const auto& [type, name] : {std::pair{CLONE_NEWNS, "mnt"}, std::pair{CLONE_NEWPID, "pid"},
                                   std::pair{CLONE_NEWUTS, "uts"}, std::pair{CLONE_NEWIPC, "ipc"},
                                   std::pair{CLONE_NEWCGROUP, "cgroup"}}) {
    request.namespaces.push_back({type, ns_dir / name});
  }
  request.cgroup = cgroup;
  return request;
}

}  // namespace kata::agent_guest
