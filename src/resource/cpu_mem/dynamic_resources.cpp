#include "kata/resource/cpu_mem/dynamic_resources.hpp"

#include <algorithm>

namespace kata::resource::cpu_mem {

namespace {
constexpr std::uint64_t mib = 1024 * 1024;
}  // namespace

SandboxDemand::SandboxDemand(double default_vcpus, std::uint32_t default_memory_mib)
    : default_vcpus_(default_vcpus), default_memory_mib_(default_memory_mib) {}

void SandboxDemand::apply(const std::string& container, ResourceOp op, const std::optional<oci::Resources>& resources) {
  if (op == ResourceOp::remove) {
    cpu_.erase(container);
    memory_bytes_.erase(container);
    return;
  }
  if (!resources) return;

  if (const auto& cpu = resources->cpu) {
    CpuDemand demand;
    demand.quota = cpu->quota.value_or(-1);
    demand.period = cpu->period.value_or(0);
    demand.cpuset = parse_cpuset(cpu->cpus);  // may throw: nothing is changed yet
    auto it = cpu_.find(container);
    // A cpuset-only update does not undo an earlier quota: the quota decides the vCPU count.
    const bool keeps_quota = op == ResourceOp::update && it != cpu_.end() && it->second.quota > 0 && demand.quota < 0;
    if (!keeps_quota) cpu_.insert_or_assign(container, std::move(demand));
  }

  std::uint64_t bytes = 0;
  for (const auto& hugepages : resources->hugepage_limits) bytes += hugepages.limit;
  if (resources->memory && resources->memory->limit.value_or(0) > 0) {
    bytes += static_cast<std::uint64_t>(*resources->memory->limit);
  }
  memory_bytes_.insert_or_assign(container, bytes);
}

double SandboxDemand::vcpus() const {
  if (cpu_.empty()) return default_vcpus_;
  // Quotas over different periods are rewritten to the largest period before they are added:
  // that keeps precision in the integral part (upstream's reasoning, cpu.rs).
  std::uint64_t max_period = 0;
  for (const auto& [id, cpu] : cpu_) max_period = std::max(max_period, cpu.period);
  double total_quota = 0.0;
  std::set<std::uint32_t> cpuset;
  for (const auto& [id, cpu] : cpu_) {
    cpuset.insert(cpu.cpuset.begin(), cpu.cpuset.end());
    if (cpu.quota >= 0 && cpu.period > 0) {
      total_quota += static_cast<double>(cpu.quota) * (static_cast<double>(max_period) / static_cast<double>(cpu.period));
    }
  }
  if (total_quota == 0.0 && !cpuset.empty()) return static_cast<double>(cpuset.size());
  if (total_quota > 0.0 && max_period > 0) return total_quota / static_cast<double>(max_period) + default_vcpus_;
  return std::max(default_vcpus_, 1.0);
}

std::uint32_t SandboxDemand::memory_mib() const {
  std::uint64_t bytes = 0;
  for (const auto& [id, container_bytes] : memory_bytes_) bytes += container_bytes;
  const std::uint64_t total = default_memory_mib_ + bytes / mib;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(total, UINT32_MAX));
}

std::uint32_t required_vcpus(double vcpus) { return std::max<std::uint32_t>(1, boot_vcpus(vcpus)); }

}  // namespace kata::resource::cpu_mem
