#include "kata/resource/cpu_mem/initial_size.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "kata/core/error.hpp"

namespace kata::resource::cpu_mem {

namespace {

constexpr std::int64_t mib = 1024 * 1024;

template <class T>
T annotation_number(const std::map<std::string, std::string>& annotations, std::string_view key) {
  auto it = annotations.find(std::string(key));
  if (it == annotations.end()) return 0;
  T value{};
  const std::string& text = it->second;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  // Upstream treats an unparsable value like a missing one.
  if (ec != std::errc() || ptr != text.data() + text.size()) return 0;
  return value;
}

double vcpus_from_quota(std::int64_t quota, std::uint64_t period) {
  if (quota >= 0 && period > 0) return static_cast<double>(quota) / static_cast<double>(period);
  return 0.0;
}

std::uint32_t memory_mib_from_bytes(std::int64_t bytes) {
  if (bytes <= 0) return 0;
  auto value = static_cast<std::uint64_t>(bytes / mib);
  if (value % 2 != 0) ++value;  // hugepages need 2 MiB alignment
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(value, UINT32_MAX - 1));
}

}  // namespace

std::set<std::uint32_t> parse_cpuset(std::string_view cpuset) {
  std::set<std::uint32_t> cpus;
  auto parse = [&](std::string_view text) {
    std::uint32_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
      fail(Errc::invalid_argument, "linux.resources.cpu.cpus = \"{}\": \"{}\" is not a CPU number", cpuset, text);
    }
    return value;
  };
  std::size_t start = 0;
  while (start < cpuset.size()) {
    auto end = cpuset.find(',', start);
    if (end == std::string_view::npos) end = cpuset.size();
    auto item = cpuset.substr(start, end - start);
    if (auto dash = item.find('-'); dash != std::string_view::npos) {
      auto first = parse(item.substr(0, dash));
      auto last = parse(item.substr(dash + 1));
      if (last < first) fail(Errc::invalid_argument, "linux.resources.cpu.cpus = \"{}\": range {} is reversed", cpuset, item);
      // A bitmap's worth of CPUs at most: a range such as 0-4294967295 is input error, not a size.
      if (last - first >= max_cpuset_cpus) {
        fail(Errc::invalid_argument, "linux.resources.cpu.cpus = \"{}\": range {} is larger than {} CPUs", cpuset, item,
             max_cpuset_cpus);
      }
      for (std::uint32_t cpu = first;; ++cpu) {
        cpus.insert(cpu);
        if (cpu == last) break;
      }
    } else {
      cpus.insert(parse(item));
    }
    start = end + 1;
  }
  return cpus;
}

WorkloadSize workload_from_annotations(const std::map<std::string, std::string>& annotations) {
  WorkloadSize size;
  size.vcpus = vcpus_from_quota(annotation_number<std::int64_t>(annotations, cri_sandbox_cpu_quota),
                                annotation_number<std::uint64_t>(annotations, cri_sandbox_cpu_period));
  size.memory_mib = memory_mib_from_bytes(annotation_number<std::int64_t>(annotations, cri_sandbox_memory));
  return size;
}

WorkloadSize workload_from_oci(const OciLinuxResources& resources) {
  WorkloadSize size;
  const std::int64_t quota = resources.cpu_quota.value_or(0);
  const std::uint64_t period = resources.cpu_period.value_or(0);
  if (quota >= 0 && period > 0) {
    size.vcpus = vcpus_from_quota(quota, period);
  } else if (!resources.cpuset.empty()) {
    size.vcpus = static_cast<double>(parse_cpuset(resources.cpuset).size());
  }
  size.memory_mib = memory_mib_from_bytes(resources.memory_limit.value_or(0));
  return size;
}

WorkloadSize supplement_from_annotations(WorkloadSize size, const std::map<std::string, std::string>& annotations) {
  const WorkloadSize from_annotations = workload_from_annotations(annotations);
  if (size.vcpus == 0.0) size.vcpus = from_annotations.vcpus;
  if (size.memory_mib == 0) size.memory_mib = from_annotations.memory_mib;
  return size;
}

std::uint32_t boot_vcpus(double default_vcpus) {
  // Sums of decimal fractions are not exact in binary; 1e-6 vCPU is far below any CPU quota
  // granularity (1 us per 1 s period).
  return static_cast<std::uint32_t>(std::ceil(default_vcpus - 1e-6));
}

SizingResult setup_config(config::Config& config, const WorkloadSize& workload) {
  config::HypervisorConfig& hv = config.active_hypervisor();
  SizingResult result{.orig_toml_default_mem = hv.memory.default_memory};
  if (config.runtime.static_sandbox_resource_mgmt) {
    if (workload.vcpus > 0.0 || workload.memory_mib > 0) {
      hv.cpu.default_vcpus = std::max(hv.cpu.overhead_vcpus + workload.vcpus, 1.0);
      hv.memory.default_memory = hv.memory.overhead_memory + workload.memory_mib;
      hv.memory.default_maxmemory = std::max(hv.memory.default_maxmemory, hv.memory.default_memory);
    }
    hv.cpu.default_maxvcpus = boot_vcpus(hv.cpu.default_vcpus);
  }
  if (hv.memory.default_memory == 0) {
    fail(Errc::invalid_argument,
         "computed sandbox memory is 0 MiB for [hypervisor.{}]; set default_memory/overhead_memory in the "
         "configuration (or give the workload a memory limit)",
         config.runtime.hypervisor_name);
  }
  return result;
}

}  // namespace kata::resource::cpu_mem
