#include "kata/runtime/virt_container.hpp"

#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <sstream>

#include "kata/config/loader.hpp"
#include "kata/core/child_process.hpp"
#include "kata/log/log.hpp"
#include "kata/oci/k8s.hpp"
#include "kata/persist/process.hpp"
#include "kata/resource/cgroups/sandbox_cgroups.hpp"
#include "kata/resource/cpu_mem/initial_size.hpp"
#include "kata/resource/network/network.hpp"
#include "kata/resource/volume/volumes.hpp"

namespace kata::runtime::virt_container {
namespace {

resource::cpu_mem::WorkloadSize workload_of(const oci::Spec& spec, oci::ContainerType type) {
  namespace cpu_mem = resource::cpu_mem;
  if (type == oci::ContainerType::pod_sandbox) return cpu_mem::workload_from_annotations(spec.annotations);
  cpu_mem::OciLinuxResources resources;
  if (spec.linux_spec && spec.linux_spec->resources) {
    const auto& r = *spec.linux_spec->resources;
    if (r.cpu) {
      resources.cpu_quota = r.cpu->quota;
      resources.cpu_period = r.cpu->period;
      resources.cpuset = r.cpu->cpus;
    }
    if (r.memory) resources.memory_limit = r.memory->limit;
  }
  return cpu_mem::supplement_from_annotations(cpu_mem::workload_from_oci(resources), spec.annotations);
}

// Mount points below `prefix`, deepest first, from this process's mount table.
std::vector<std::string> mounts_below(const std::filesystem::path& prefix) {
  std::vector<std::string> found;
  std::ifstream table("/proc/self/mountinfo");
  std::string line;
  const std::string root = prefix.string();
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, source_root, mount_point;
    fields >> id >> parent >> device >> source_root >> mount_point;
    if (mount_point == root || mount_point.starts_with(root + "/")) found.push_back(mount_point);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return found;
}

}  // namespace

VirtSandboxSettings settings_for(const shim::SandboxSetup& setup, const oci::Spec& spec, std::string_view hypervisor_name) {
  auto log = log::Logger("runtime").with("sandbox", setup.sandbox_id);
  const config::ConfigSource source = config::ConfigSource::from_environment(setup.config_path);
  config::LoadedConfig loaded = config::load_sandbox_config(source, spec.annotations, config::LoadOptions{});
  for (const auto& warning : loaded.warnings) log.warn("{}: {}", loaded.file.string(), warning);

  config::Config& config = loaded.config;
  if (!config.runtime.name.empty() && config.runtime.name != "virt_container") {
    fail(Errc::not_supported, "{}: [runtime] name = \"{}\": only virt_container is implemented", loaded.file.string(),
         config.runtime.name);
  }
  if (config.runtime.hypervisor_name != hypervisor_name) {
    fail(Errc::invalid_argument, "{}: [runtime] hypervisor_name = \"{}\", but this shim is built for {} (install the {} variant or use its configuration)",
         loaded.file.string(), config.runtime.hypervisor_name, hypervisor_name, config.runtime.hypervisor_name);
  }
  log::set_level(log::effective_level(config.runtime.enable_debug, config.runtime.log_level));

  const oci::Classification classification = oci::classify(spec);
  resource::cpu_mem::setup_config(config, workload_of(spec, classification.type));

  VirtSandboxSettings settings;
  settings.sandbox_id = setup.sandbox_id;
  settings.namespace_name = setup.namespace_name;
  settings.hostname = spec.hostname;
  const oci::NetworkNamespace netns = oci::network_namespace(spec);
  if (netns.kind == oci::NetworkNamespace::Kind::existing) settings.network_namespace = netns.path;
  settings.on_oom = setup.on_oom;
  settings.shm_size = resource::sandbox_shm_size(spec.mounts);
  if (spec.linux_spec) settings.cgroups_path = spec.linux_spec->cgroups_path;
  settings.host_cgroups = true;
  settings.config = std::move(config);
  log.info("configuration {} ({} drop-ins), {} vCPUs, {} MiB", loaded.file.string(), loaded.drop_ins.size(),
           resource::cpu_mem::boot_vcpus(settings.config.active_hypervisor().cpu.default_vcpus),
           settings.config.active_hypervisor().memory.default_memory);
  return settings;
}

void cleanup_after_dead_shim(const shim::DeleteContext& context, const std::filesystem::path& state_root,
                             const std::filesystem::path& shared_root) {
  auto log = log::Logger("runtime").with("sandbox", context.sandbox_id);
  const persist::Store store(state_root);
  std::optional<persist::LoadedState> loaded;
  try {
    loaded = store.load(context.sandbox_id);
  } catch (const std::exception& e) {
    log.warn("state of {} is unreadable, cleaning up what can be found: {}", context.sandbox_id, describe(e));
  }
  if (loaded) {
    for (const auto& process : loaded->state.cleanup.processes) {
      // The pidfd pins the process; the start time proves it is still the one we recorded.
      try {
        UniqueFd pidfd = open_pidfd(process.pid);
        if (!persist::is_same_process(process)) continue;
        ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
        log.info("killed {} (pid {}) left by the dead shim", process.role, process.pid);
      } catch (const Error&) {
        // Already gone.
      }
    }
    // [network] taps and ingress qdiscs in the pod netns (the taps die with the VMM anyway).
    std::map<std::string, std::vector<std::string>> links_by_netns;
    for (const auto& link : loaded->state.cleanup.links) links_by_netns[link.netns].push_back(link.name);
    for (const auto& [netns, links] : links_by_netns) {
      if (!netns.empty()) resource::network::remove_leftovers(netns, links);
    }
  }
  if (loaded) {
    // The pod's cgroups, once the processes killed above have left them.
    std::vector<std::filesystem::path> cgroup_dirs;
    for (const auto& dir : loaded->state.cleanup.directories) {
      if (resource::cgroups::on_cgroup_filesystem(dir)) cgroup_dirs.emplace_back(dir);
    }
    for (const auto& dir : resource::cgroups::remove_cgroup_directories(cgroup_dirs, std::chrono::seconds(2))) {
      log.warn("cgroup {} is still there", dir.string());
    }
  }
  const auto shared_dir = shared_root / context.sandbox_id;
  for (const auto& mount_point : mounts_below(shared_dir)) ::umount2(mount_point.c_str(), MNT_DETACH);
  if (!context.bundle.empty()) {
    for (const auto& mount_point : mounts_below(context.bundle / "rootfs")) ::umount2(mount_point.c_str(), MNT_DETACH);
  }
  std::error_code ignored;
  if (mounts_below(shared_dir).empty()) std::filesystem::remove_all(shared_dir, ignored);
  try {
    store.remove(context.sandbox_id);
  } catch (const std::exception& e) {
    log.warn("remove state of {}: {}", context.sandbox_id, describe(e));
  }
}

}  // namespace kata::runtime::virt_container
