// Static sandbox sizing: how big the VM is when it is created (upstream runtime-rs
// resource/src/cpu_mem/initial_size.rs, InitialSizeManager).
//
// With [runtime] static_sandbox_resource_mgmt = true the VM gets the workload's CPU and memory
// limits on top of the hypervisor's overhead at creation, and nothing is hotplugged later. In
// dynamic mode the configuration is left alone: containers are added by hotplug as they are
// created, and adding them here too would count them twice.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "kata/config/schema.hpp"

namespace kata::resource::cpu_mem {

/// containerd CRI annotations on a pod sandbox (there are no CRI-O equivalents upstream).
inline constexpr std::string_view cri_sandbox_cpu_quota = "io.kubernetes.cri.sandbox-cpu-quota";
inline constexpr std::string_view cri_sandbox_cpu_period = "io.kubernetes.cri.sandbox-cpu-period";
inline constexpr std::string_view cri_sandbox_memory = "io.kubernetes.cri.sandbox-memory";

/// The part of an OCI spec's linux.resources that sizing reads (single-container sandboxes:
/// `ctr run`, `docker run`).
struct OciLinuxResources {
  /// linux.resources.cpu.quota (microseconds per period; negative = unlimited).
  std::optional<std::int64_t> cpu_quota;
  /// linux.resources.cpu.period (microseconds).
  std::optional<std::uint64_t> cpu_period;
  /// linux.resources.cpu.cpus, e.g. "0-2,4".
  std::string cpuset;
  /// linux.resources.memory.limit in bytes (negative = unlimited).
  std::optional<std::int64_t> memory_limit;
};

/// The workload's demand.
struct WorkloadSize {
  /// Fractional vCPUs (quota / period, or the cpuset size).
  double vcpus = 0.0;
  /// MiB, rounded up to an even number (2 MiB alignment for hugepages).
  std::uint32_t memory_mib = 0;
};

/// The largest cpuset range parse_cpuset accepts (the kernel's NR_CPUS ceiling).
inline constexpr std::uint32_t max_cpuset_cpus = 8192;

/// The CPUs of a cpuset list such as "0-2,4" (linux.resources.cpu.cpus). Throws
/// Errc::invalid_argument naming the list and the bad item: not a number, a reversed range, a
/// range wider than max_cpuset_cpus.
[[nodiscard]] std::set<std::uint32_t> parse_cpuset(std::string_view cpuset);

/// From the CRI annotations of a pod sandbox; a missing or unparsable annotation counts as 0.
[[nodiscard]] WorkloadSize workload_from_annotations(const std::map<std::string, std::string>& annotations);

/// From linux.resources of a single container. CPU: quota/period when quota >= 0 and
/// period > 0, else the number of CPUs in cpuset, else 0. Throws Errc::invalid_argument for a
/// malformed cpuset (naming it).
[[nodiscard]] WorkloadSize workload_from_oci(const OciLinuxResources& resources);

/// Fills vcpus / memory_mib that are still 0 from the CRI annotations (sandbox specs whose
/// sizing exists only in annotations).
[[nodiscard]] WorkloadSize supplement_from_annotations(WorkloadSize size,
                                                       const std::map<std::string, std::string>& annotations);

/// What setup_config decided.
struct SizingResult {
  /// The hypervisor's default_memory from the file before sizing, which later memory hotplug
  /// arithmetic (dynamic mode) starts from.
  std::uint32_t orig_toml_default_mem = 0;
};

/// Adjusts the active hypervisor section of `config` for `workload`:
/// - dynamic mode (static_sandbox_resource_mgmt = false): untouched;
/// - static mode with a limit (vcpus > 0 or memory > 0):
///     default_vcpus = max(overhead_vcpus + vcpus, 1.0)
///     default_memory = overhead_memory + memory_mib
///     default_maxmemory = max(default_maxmemory, default_memory);
/// - static mode always: default_maxvcpus = ceil(default_vcpus) (no CPU hotplug headroom).
/// Throws Errc::invalid_argument when the resulting default_memory is 0, and Errc::not_found if
/// runtime.hypervisor_name has no section.
SizingResult setup_config(config::Config& config, const WorkloadSize& workload);

/// vCPUs the VMM boots with for a fractional default_vcpus (ceil, tolerant of rounding noise
/// such as 0.2 + 1.8 = 2.0000000000000004).
[[nodiscard]] std::uint32_t boot_vcpus(double default_vcpus);

}  // namespace kata::resource::cpu_mem
