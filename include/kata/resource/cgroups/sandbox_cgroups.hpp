// Host cgroups of a sandbox (upstream runtime-rs resource/src/cgroups, CgroupsResource).
//
// The pod's cgroup is the OCI spec's linux.cgroupsPath (containerd/CRI, cgroupfs style), or
// kata_sandboxed_pod/<sandbox id> when the spec has none. With [runtime] sandbox_cgroup_only =
// true the shim, and so everything it starts afterwards (virtiofsd, the VMM), runs in it: the
// pod's limits bound the whole sandbox. With false, the shim and its helpers run in an overhead
// cgroup kata_overhead/<sandbox id> and only the VMM's vCPU threads move into the pod's cgroup
// (cgroup v1; on v2 threads cannot leave their process's cgroup unless the cgroup is threaded,
// so they stay in the overhead cgroup there, logged).
//
// Directories are written with plain file operations on cgroupfs (no shelling out). Missing
// parents are created as runc does; every directory created is remembered and removed on
// teardown, deepest first, and nothing else is. cgroup v1 (every mounted v1 hierarchy, so also
// the hybrid layout) and v2 (unified) are handled; systemd-style paths ("slice:prefix:name") are
// refused with an error saying so.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kata::resource::cgroups {

/// One mounted cgroup hierarchy.
struct Hierarchy {
  std::filesystem::path mount_point;
  /// v1: the controllers (and name=...) it carries, sorted and comma-joined as /proc/<pid>/cgroup
  /// names them ("cpu", "cpu,cpuacct", "name=systemd"); empty for the v2 hierarchy.
  std::string controllers;
  bool unified = false;

  [[nodiscard]] bool is_cpuset() const;
};

/// The hierarchies a sandbox's processes are placed in, from a mountinfo file: every cgroup v1
/// hierarchy when any is mounted (v1 and hybrid hosts), else the cgroup2 one. Throws
/// Errc::failed_precondition when no cgroup filesystem is mounted.
[[nodiscard]] std::vector<Hierarchy> detect_hierarchies(const std::filesystem::path& mountinfo = "/proc/self/mountinfo");

/// linux.cgroupsPath as a path relative to a hierarchy's root: "/kubepods/pod1/abc" ->
/// "kubepods/pod1/abc". Errors (Errc::invalid_argument, naming the path): systemd style
/// ("system.slice:containerd:abc", not supported), "." or ".." components, a path that is only "/".
[[nodiscard]] std::filesystem::path relative_cgroup_path(std::string_view cgroups_path);

struct SandboxCgroupOptions {
  std::string sandbox_id;
  /// linux.cgroupsPath of the sandbox's spec; empty: kata_sandboxed_pod/<sandbox_id>.
  std::string cgroups_path;
  bool sandbox_cgroup_only = true;
  /// detect_hierarchies() in production; tests give their own.
  std::vector<Hierarchy> hierarchies;
};

/// The cgroups of one sandbox, owned: the destructor removes them (remove()).
class SandboxCgroups {
 public:
  /// Creates the sandbox cgroup (and the overhead cgroup unless sandbox_cgroup_only) in every
  /// hierarchy, with missing parents. v1 cpuset directories get their parent's cpuset.cpus and
  /// cpuset.mems (an empty cpuset admits no process). Errors: those of relative_cgroup_path;
  /// a directory that cannot be created ("create cgroup /sys/fs/cgroup/cpu/a/b: Permission
  /// denied"); in both cases nothing created is left behind.
  [[nodiscard]] static SandboxCgroups create(SandboxCgroupOptions options);

  SandboxCgroups(SandboxCgroups&& other) noexcept;
  SandboxCgroups& operator=(SandboxCgroups&& other) noexcept;
  SandboxCgroups(const SandboxCgroups&) = delete;
  SandboxCgroups& operator=(const SandboxCgroups&) = delete;
  ~SandboxCgroups();

  /// Moves process `pid` into the cgroup the sandbox's host processes belong in: the sandbox
  /// cgroup with sandbox_cgroup_only, else the overhead cgroup. For the calling process itself
  /// (the shim) its previous cgroups are remembered so that remove() can move it back. Throws
  /// naming the cgroup.procs file that refused it.
  void add_process(pid_t pid);

  /// Without sandbox_cgroup_only: moves the VMM's vCPU threads into the sandbox cgroup (v1
  /// `tasks`). On v2 they stay in the overhead cgroup (logged). With sandbox_cgroup_only they are
  /// there already; nothing to do.
  void add_vcpu_threads(const std::vector<pid_t>& thread_ids);

  /// Moves the calling process back to the cgroups it came from, then removes every directory
  /// create() made, deepest first, waiting up to `timeout` for exiting processes to leave.
  /// Idempotent; never throws; what cannot be removed is logged.
  void remove(std::chrono::milliseconds timeout = std::chrono::seconds(2)) noexcept;

  /// The sandbox cgroup and overhead cgroup (empty with sandbox_cgroup_only), relative to a
  /// hierarchy's root, as upstream's CgroupState records them.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] const std::filesystem::path& overhead_path() const noexcept { return overhead_path_; }
  /// Absolute directories create() made, in creation order (persisted for `shim delete`).
  [[nodiscard]] const std::vector<std::filesystem::path>& created_directories() const noexcept { return created_; }
  [[nodiscard]] const std::vector<Hierarchy>& hierarchies() const noexcept { return hierarchies_; }

 private:
  SandboxCgroups() = default;

  std::vector<Hierarchy> hierarchies_;
  std::filesystem::path path_;
  std::filesystem::path overhead_path_;
  bool sandbox_cgroup_only_ = true;
  std::vector<std::filesystem::path> created_;
  /// cgroup.procs file -> the shim's cgroup directory before add_process(getpid()).
  std::map<std::filesystem::path, std::filesystem::path> shim_origin_;
};

/// `shim delete` after a dead shim: removes cgroup directories recorded by created_directories(),
/// deepest first, retrying for up to `timeout` while killed processes leave them. Paths outside
/// a cgroup filesystem are refused (skipped and returned). Returns the directories that should
/// have gone and did not; a parent kept because another cgroup is below it is not one of them.
std::vector<std::filesystem::path> remove_cgroup_directories(const std::vector<std::filesystem::path>& directories,
                                                             std::chrono::milliseconds timeout);

/// Whether `path` lies on a cgroup (v1 or v2) filesystem.
[[nodiscard]] bool on_cgroup_filesystem(const std::filesystem::path& path);

}  // namespace kata::resource::cgroups
