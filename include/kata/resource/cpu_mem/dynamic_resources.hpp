// Dynamic sandbox sizing (static_sandbox_resource_mgmt = false): the VM grows and shrinks with
// the CPU and memory limits of the containers it runs (upstream runtime-rs
// resource/src/cpu_mem/{cpu,mem}.rs and ResourceManager::update_linux_resource).
//
// Two parts:
// - SandboxDemand, plain arithmetic: what the containers' limits add up to;
// - DynamicResources<H>, the policy that turns a change of that sum into hotplug requests to the
//   hypervisor H and an OnlineCPUMem request to the guest agent.
//
// In static mode (initial_size.hpp) the VM is sized once at creation and DynamicResources does
// nothing. docs/resources.md has the rules and worked examples.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "kata/agent.pb.h"
#include "kata/config/schema.hpp"
#include "kata/core/async_mutex.hpp"
#include "kata/core/error.hpp"
#include "kata/hypervisor/hypervisor.hpp"
#include "kata/log/log.hpp"
#include "kata/oci/spec.hpp"
#include "kata/resource/cpu_mem/initial_size.hpp"

namespace kata::resource::cpu_mem {

/// What happened to a container's resources (upstream ResourceUpdateOp).
enum class ResourceOp { add, update, remove };

/// The CPU and memory the containers of one sandbox ask for, on top of the hypervisor's defaults.
///
/// vCPUs (upstream CpuResource::calc_cpu_resources):
/// - no container has CPU limits: default_vcpus;
/// - quotas: the quotas are rewritten to the largest period among the containers and summed;
///   vCPUs = sum / largest period + default_vcpus (fractional; the caller rounds up);
/// - only cpusets: the size of their union (default_vcpus not added);
/// - neither: max(default_vcpus, 1).
/// A container with quota >= 0 and period > 0 contributes quota/period; quota < 0 (unlimited)
/// contributes nothing. On update, a cpuset-only change does not replace an earlier quota
/// (upstream: the quota has priority when counting vCPUs).
///
/// Memory (upstream MemResource): default_memory + (sum of memory limits and hugepage limits in
/// bytes) / MiB. A negative (unlimited) memory limit contributes nothing.
class SandboxDemand {
 public:
  SandboxDemand(double default_vcpus, std::uint32_t default_memory_mib);

  /// Records (add, update) or forgets (remove) `container`'s limits. `resources` absent means the
  /// container states none: nothing is recorded for it (as upstream). Throws
  /// Errc::invalid_argument for a malformed cpuset, leaving the demand unchanged.
  void apply(const std::string& container, ResourceOp op, const std::optional<oci::Resources>& resources);

  [[nodiscard]] double vcpus() const;
  [[nodiscard]] std::uint32_t memory_mib() const;
  [[nodiscard]] bool empty() const noexcept { return cpu_.empty() && memory_bytes_.empty(); }

 private:
  struct CpuDemand {
    std::int64_t quota = -1;
    std::uint64_t period = 0;
    std::set<std::uint32_t> cpuset;
  };

  double default_vcpus_;
  std::uint32_t default_memory_mib_;
  std::map<std::string, CpuDemand, std::less<>> cpu_;
  std::map<std::string, std::uint64_t, std::less<>> memory_bytes_;
};

/// vCPUs a VM needs for a fractional demand: ceil (tolerant of binary rounding), at least 1.
[[nodiscard]] std::uint32_t required_vcpus(double vcpus);

/// An agent that can online hot-added resources: `agent.online_cpu_mem(request)` returns
/// Task<void> (agent::KataAgent; a recording fake in tests).
template <class A>
concept CpuMemOnliner = requires(A& agent, const grpc::OnlineCPUMemRequest& request) {
  { agent.online_cpu_mem(request) } -> std::same_as<Task<void>>;
};

/// The dynamic sizing policy of one sandbox over hypervisor H.
///
/// apply(vm, agent, container, op, resources):
/// - static mode (static_sandbox_resource_mgmt = true): completes at once, changes nothing;
/// - otherwise records the change in the SandboxDemand and, when the rounded-up vCPU count or the
///   memory total differs from what the VM has:
///   * vCPUs (if H supports cpu_hotplug): add never shrinks and remove never grows the VM (a
///     container leaving must not add CPUs, one arriving must not take them away); update does
///     either. H clamps to [boot vCPUs, default_maxvcpus]; a clamped count is logged;
///   * memory (if H supports memory_hotplug): resize_memory(total); H grows by pc-dimm or moves
///     virtio-mem's requested size; shrinking happens only with virtio-mem, pc-dimm memory stays
///     (documented in docs/resources.md);
///   * then one OnlineCPUMem{wait: true, nb_cpus: vCPUs added, cpu_only: memory did not grow}, so
///     the container starts on a guest that already runs the CPUs it was promised.
/// Completes when H and the guest are done. Errors: H's or the agent's, with the context
/// "resize the sandbox for container <id>"; the demand is then restored to what it was, so a
/// failed create does not count a container that does not exist. Calls are serialised (one
/// change at a time); H and the agent must outlive the call.
template <hypervisor::Hypervisor H>
class DynamicResources {
 public:
  /// `hypervisor` is the sandbox's (already sized) hypervisor section.
  DynamicResources(Executor executor, const config::HypervisorConfig& hypervisor, bool static_mode)
      : static_mode_(static_mode),
        demand_(hypervisor.cpu.default_vcpus, hypervisor.memory.default_memory),
        vcpus_(required_vcpus(hypervisor.cpu.default_vcpus)),
        memory_mib_(hypervisor.memory.default_memory),
        lock_(std::move(executor)) {}

  template <CpuMemOnliner A>
  Task<void> apply(H& vm, A& agent, std::string container, ResourceOp op, std::optional<oci::Resources> resources);

  /// The VM's vCPUs and memory as far as this policy has changed them.
  [[nodiscard]] std::uint32_t vcpus() const noexcept { return vcpus_; }
  [[nodiscard]] std::uint32_t memory_mib() const noexcept { return memory_mib_; }
  [[nodiscard]] const SandboxDemand& demand() const noexcept { return demand_; }

 private:
  bool static_mode_;
  SandboxDemand demand_;
  std::uint32_t vcpus_;
  std::uint32_t memory_mib_;
  AsyncMutex lock_;
};

template <hypervisor::Hypervisor H>
template <CpuMemOnliner A>
Task<void> DynamicResources<H>::apply(H& vm, A& agent, std::string container, ResourceOp op,
                                      std::optional<oci::Resources> resources) {
  if (static_mode_) co_return;
  auto guard = co_await lock_.lock();
  const SandboxDemand before = demand_;
  std::exception_ptr failure;
  try {
    demand_.apply(container, op, resources);
    auto log = log::Logger("resource").with("container", container);

    std::uint32_t added_vcpus = 0;
    if constexpr (hypervisor::supports<H, hypervisor::capability::cpu_hotplug>) {
      const std::uint32_t wanted = required_vcpus(demand_.vcpus());
      const bool allowed = (op == ResourceOp::add && wanted > vcpus_) || (op == ResourceOp::remove && wanted < vcpus_) ||
                           (op == ResourceOp::update && wanted != vcpus_);
      if (allowed) {
        const hypervisor::VcpuResize resized = co_await vm.resize_vcpus(wanted);
        if (resized.new_vcpus != wanted) {
          log.warn("the containers ask for {} vCPUs ({:.3f}); the VM has {} (default_maxvcpus and boot vCPUs bound it)",
                   wanted, demand_.vcpus(), resized.new_vcpus);
        }
        if (resized.new_vcpus > resized.old_vcpus) added_vcpus = resized.new_vcpus - resized.old_vcpus;
        log.info("vCPUs {} -> {} ({:.3f} asked)", resized.old_vcpus, resized.new_vcpus, demand_.vcpus());
        vcpus_ = resized.new_vcpus;
      }
    }

    bool memory_grew = false;
    if constexpr (hypervisor::supports<H, hypervisor::capability::memory_hotplug>) {
      const std::uint32_t wanted = demand_.memory_mib();
      if (wanted != memory_mib_) {
        const hypervisor::MemoryResize resized = co_await vm.resize_memory(wanted);
        memory_grew = resized.new_mib > resized.old_mib;
        log.info("memory {} -> {} MiB ({} MiB asked)", resized.old_mib, resized.new_mib, wanted);
        // Remember the demand, not the VM's size: pc-dimm keeps memory it cannot give back, and
        // asking again for the same total would only repeat a no-op.
        memory_mib_ = wanted;
      }
    }

    if (added_vcpus > 0 || memory_grew) {
      grpc::OnlineCPUMemRequest online;
      online.set_wait(true);
      online.set_nb_cpus(added_vcpus);
      online.set_cpu_only(!memory_grew);
      co_await agent.online_cpu_mem(online);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) co_return;
  demand_ = before;
  try {
    std::rethrow_exception(failure);
  } catch (...) {
    rethrow_with_context(fmt::format("resize the sandbox for container {}", container));
  }
}

}  // namespace kata::resource::cpu_mem
