// Guest cgroups for containers, on the unified (v2) hierarchy.
//
// The agent mounts cgroup2 at /sys/fs/cgroup at boot and uses v2 only: the guest kernel
// (Debian 6.1) has every controller the runtime needs on v2 (cpu, cpuset, memory, pids,
// hugetlb), freezing is cgroup.freeze instead of a separate freezer hierarchy, and OOM kills are
// counted in memory.events, which inotify reports without an eventfd per cgroup. Upstream's agent
// also speaks v1; a guest we build never needs it (docs/agent.md).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {

/// linux.resources of the OCI spec, the part a guest cgroup enforces.
struct CgroupResources {
  std::optional<std::int64_t> memory_limit;        ///< bytes; -1 = unlimited        -> memory.max
  std::optional<std::int64_t> memory_reservation;  ///< bytes                         -> memory.low
  std::optional<std::int64_t> memory_swap;         ///< OCI memory+swap; -1 = unlimited -> memory.swap.max
  std::optional<std::int64_t> cpu_quota;           ///< µs per period; -1 = unlimited -> cpu.max
  std::optional<std::uint64_t> cpu_period;         ///< µs (default 100000)           -> cpu.max
  std::optional<std::uint64_t> cpu_shares;         ///< v1 shares, converted          -> cpu.weight
  std::optional<std::string> cpuset_cpus;          ///<                               -> cpuset.cpus
  std::optional<std::string> cpuset_mems;          ///<                               -> cpuset.mems
  std::optional<std::int64_t> pids_limit;          ///< -1 = unlimited                -> pids.max
};

/// OCI's v1 cpu shares [2, 262144] mapped onto v2 cpu.weight [1, 10000], as runc and crun do.
[[nodiscard]] std::uint64_t cpu_shares_to_weight(std::uint64_t shares) noexcept;

struct CgroupStats {
  std::uint64_t cpu_usage_usec = 0;
  std::uint64_t cpu_user_usec = 0;
  std::uint64_t cpu_system_usec = 0;
  std::uint64_t cpu_throttled_periods = 0;
  std::uint64_t cpu_throttled_usec = 0;
  std::optional<std::uint64_t> memory_usage;      ///< memory.current (needs the memory controller)
  std::optional<std::uint64_t> memory_limit;      ///< memory.max; nullopt also when "max"
  std::optional<std::uint64_t> memory_max_usage;  ///< memory.peak (kernels >= 5.19)
  std::uint64_t memory_anon = 0;
  std::uint64_t memory_file = 0;
  std::uint64_t oom_events = 0;                   ///< memory.events "oom_kill"
  std::optional<std::uint64_t> pids_current;
  std::optional<std::uint64_t> pids_limit;
};

/// Enables, in `dir`'s cgroup.subtree_control, each of cpu, cpuset, memory, pids and hugetlb that
/// `dir` is offered (cgroup.controllers), so its children get the limit files.
void enable_cgroup_controllers(const std::filesystem::path& dir);

/// The cgroup v2 mount point, from /proc/self/mountinfo; nullopt without one.
[[nodiscard]] std::optional<std::filesystem::path> find_cgroup2_mount();

/// One cgroup directory, created by create() and removed by the destructor (members are killed
/// with cgroup.kill first, so removal cannot fail with EBUSY because of a stray process).
class Cgroup {
 public:
  /// Creates `parent`/`name`. Missing intermediate directories are created and get every
  /// controller they are offered enabled (see enable_cgroup_controllers), so the new cgroup's limit
  /// files exist; they are shared by siblings and left in place on destruction. `parent` itself is
  /// never changed: what it offers is the caller's decision (the agent enables the root's
  /// controllers once at boot). Throws kata::Error(already_exists) if the cgroup exists.
  static Cgroup create(const std::filesystem::path& parent, const std::string& name);

  Cgroup() = default;
  Cgroup(Cgroup&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  Cgroup& operator=(Cgroup&& other) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup();

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// Writes the set limits. A limit whose controller is not enabled throws
  /// Errc::not_supported naming the controller and the cgroup; nothing is written for unset ones.
  void apply(const CgroupResources& resources) const;

  /// Moves a process in (cgroup.procs).
  void add_process(pid_t pid) const;
  [[nodiscard]] std::vector<pid_t> processes() const;

  /// Freezes every member and waits until the kernel reports the cgroup frozen (cgroup.events),
  /// up to `timeout`; thaw() undoes it. Throws Errc::deadline_exceeded if it does not settle.
  void freeze(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  void thaw(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  [[nodiscard]] bool frozen() const;

  /// SIGKILLs every member (cgroup.kill).
  void kill() const;

  [[nodiscard]] CgroupStats stats() const;

  /// An inotify descriptor that becomes readable when memory.events changes (an OOM kill is
  /// counted there); read oom_events from stats() to see whether it was one.
  [[nodiscard]] UniqueFd watch_memory_events() const;

 private:
  explicit Cgroup(std::filesystem::path path) : path_(std::move(path)) {}
  void remove() noexcept;

  std::filesystem::path path_;
};

}  // namespace kata::agent_guest
