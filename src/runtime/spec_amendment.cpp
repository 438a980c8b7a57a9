#include <algorithm>

#include "cgroups/v1/metrics.pb.h"
#include "kata/runtime/virt_sandbox.hpp"

namespace kata::runtime {

void amend_container_spec(oci::Spec& spec, const std::string& guest_rootfs, const config::RuntimeConfig& runtime) {
  if (!spec.root) spec.root.emplace();
  spec.root->path = guest_rootfs;

  // Host-side hooks already ran (or run) on the host; only startContainer hooks belong in the guest.
  if (spec.hooks) {
    oci::Hooks guest_hooks;
    guest_hooks.start_container = std::move(spec.hooks->start_container);
    spec.hooks = std::move(guest_hooks);
  }

  if (spec.linux_spec) {
    auto& linux_spec = *spec.linux_spec;
    // The agent puts every container in the sandbox's network namespace and gives it a pid and
    // time namespace of its own; namespace paths are host paths that mean nothing in the guest.
    std::erase_if(linux_spec.namespaces, [](const oci::Namespace& ns) {
      return ns.type == "network" || ns.type == "pid" || ns.type == "time";
    });
    for (auto& ns : linux_spec.namespaces) ns.path.clear();
    if (linux_spec.resources) {
      linux_spec.resources->devices.clear();
      linux_spec.resources->pids.reset();
    }
    // Host devices are not the guest's (no VFIO passthrough in the VM unless configured).
    std::erase_if(linux_spec.devices, [&](const oci::Device& device) {
      return device.path.starts_with("/dev/vfio/") && runtime.vfio_mode != "vfio";
    });
    if (runtime.disable_guest_seccomp) linux_spec.seccomp.reset();
  }
}

std::string metrics_from_agent_stats(const grpc::StatsContainerResponse& stats) {
  io::containerd::cgroups::v1::Metrics metrics;
  const auto& cgroup = stats.cgroup_stats();
  if (cgroup.has_cpu_stats()) {
    const auto& usage = cgroup.cpu_stats().cpu_usage();
    auto* cpu = metrics.mutable_cpu()->mutable_usage();
    cpu->set_total(usage.total_usage());
    cpu->set_kernel(usage.usage_in_kernelmode());
    cpu->set_user(usage.usage_in_usermode());
    for (auto per_cpu : usage.percpu_usage()) cpu->add_per_cpu(per_cpu);
    const auto& throttling = cgroup.cpu_stats().throttling_data();
    auto* throttle = metrics.mutable_cpu()->mutable_throttling();
    throttle->set_periods(throttling.periods());
    throttle->set_throttled_periods(throttling.throttled_periods());
    throttle->set_throttled_time(throttling.throttled_time());
  }
  if (cgroup.has_memory_stats()) {
    const auto& memory = cgroup.memory_stats();
    auto* out = metrics.mutable_memory();
    out->set_cache(memory.cache());
    auto copy_entry = [](const grpc::MemoryData& in, io::containerd::cgroups::v1::MemoryEntry* entry) {
      entry->set_usage(in.usage());
      entry->set_max(in.max_usage());
      entry->set_failcnt(in.failcnt());
      entry->set_limit(in.limit());
    };
    copy_entry(memory.usage(), out->mutable_usage());
    copy_entry(memory.swap_usage(), out->mutable_swap());
    copy_entry(memory.kernel_usage(), out->mutable_kernel());
    const auto& detail = memory.stats();
    auto stat = [&](const char* key) -> std::uint64_t {
      auto it = detail.find(key);
      return it == detail.end() ? 0 : it->second;
    };
    out->set_rss(stat("rss"));
    out->set_rss_huge(stat("rss_huge"));
    out->set_mapped_file(stat("mapped_file"));
    out->set_dirty(stat("dirty"));
    out->set_writeback(stat("writeback"));
    out->set_pg_fault(stat("pgfault"));
    out->set_pg_maj_fault(stat("pgmajfault"));
    out->set_inactive_anon(stat("inactive_anon"));
    out->set_active_anon(stat("active_anon"));
  }
  if (cgroup.has_pids_stats()) {
    metrics.mutable_pids()->set_current(cgroup.pids_stats().current());
    metrics.mutable_pids()->set_limit(cgroup.pids_stats().limit());
  }
  return metrics.SerializeAsString();
}

}  // namespace kata::runtime
