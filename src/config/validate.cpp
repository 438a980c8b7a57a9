// validate_config: upstream's ConfigPlugin::validate per backend, the validate of every
// hypervisor group, runtime and agent; plus the active hypervisor/agent selection, which
// upstream only discovers later when the sandbox is created.
#include <algorithm>
#include <array>
#include <cmath>
#include <regex>

#include <fmt/format.h>

#include "kata/config/loader.hpp"
#include "kata/core/error.hpp"
#include "validation.hpp"

namespace kata::config {

namespace {

using detail::require_existing_path;

constexpr std::array<std::string_view, 5> block_drivers{"virtio-scsi", "virtio-blk-pci", "virtio-blk-ccw",
                                                        "virtio-blk-mmio", "virtio-pmem"};

bool contains(const auto& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

std::string join_list(const auto& list) {
  std::string out;
  for (std::string_view value : list) {
    if (!out.empty()) out += ", ";
    out += value;
  }
  return out;
}

void check_vcpu_limit(const HypervisorConfig& hv, const HypervisorPlugin& plugin, const std::string& section) {
  if (hv.cpu.default_vcpus > 0.0 && static_cast<std::uint32_t>(hv.cpu.default_vcpus) > plugin.max_vcpus) {
    fail(Errc::invalid_argument, "{} default_vcpus = {}: {} supports at most {} vCPUs", section, hv.cpu.default_vcpus,
         plugin.name, plugin.max_vcpus);
  }
  if (hv.cpu.default_maxvcpus > plugin.max_vcpus) {
    fail(Errc::invalid_argument, "{} default_maxvcpus = {}: {} supports at most {} vCPUs", section,
         hv.cpu.default_maxvcpus, plugin.name, plugin.max_vcpus);
  }
}

void check_min_memory(const HypervisorConfig& hv, const HypervisorPlugin& plugin, const std::string& section) {
  if (hv.memory.default_memory < plugin.min_memory_mib) {
    fail(Errc::invalid_argument, "{} default_memory = {} MiB: {} needs at least {} MiB", section,
         hv.memory.default_memory, plugin.name, plugin.min_memory_mib);
  }
}

void check_boot_assets(const HypervisorConfig& hv, const std::string& section, bool allow_no_rootfs) {
  if (hv.boot.kernel.empty()) fail(Errc::invalid_argument, "{} kernel is empty; set the guest kernel path", section);
  if (hv.boot.image.empty() && hv.boot.initrd.empty() && !allow_no_rootfs) {
    fail(Errc::invalid_argument, "{} image and initrd are both empty; set exactly one of them", section);
  }
}

void check_no_mmio_for_confidential(const HypervisorConfig& hv, const std::string& section) {
  if (hv.security.confidential_guest && hv.boot.vm_rootfs_driver == "virtio-blk-mmio") {
    fail(Errc::invalid_argument,
         "{} vm_rootfs_driver = \"virtio-blk-mmio\" with confidential_guest = true: virtio-mmio is not hardened "
         "for confidential guests; use virtio-blk-pci",
         section);
  }
}

void check_no_jailer(const HypervisorConfig& hv, const std::string& section, std::string_view backend) {
  if (!hv.jailer_path.empty()) fail(Errc::invalid_argument, "{} jailer_path must be empty: {} has no jailer", section, backend);
  if (!hv.valid_jailer_paths.empty()) {
    fail(Errc::invalid_argument, "{} valid_jailer_paths must be empty: {} has no jailer", section, backend);
  }
}

void validate_backend(std::string_view name, const HypervisorConfig& hv, const HypervisorPlugin& plugin,
                      const LoadOptions& options, const std::string& section) {
  if (name == hypervisor_qemu || name == hypervisor_clh) {
    check_no_jailer(hv, section, name);
    check_no_mmio_for_confidential(hv, section);
    if (name == hypervisor_qemu && !hv.block_device.disable_block_device_use &&
        hv.block_device.block_device_driver == "virtio-blk-mmio") {
      fail(Errc::invalid_argument,
           "{} block_device_driver = \"virtio-blk-mmio\" is not supported by qemu; allowed: virtio-scsi, "
           "virtio-blk-pci, virtio-blk-ccw, virtio-pmem",
           section);
    }
    // s390x Secure Execution boots a kernel with its rootfs built in.
    const bool se_guest = name == hypervisor_qemu && hv.security.confidential_guest &&
                          hv.boot.vm_rootfs_driver.ends_with("ccw");
    check_boot_assets(hv, section, se_guest);
    check_vcpu_limit(hv, plugin, section);
    if (hv.device.default_bridges > detail::max_bridges) {
      fail(Errc::invalid_argument, "{} default_bridges = {}: at most {}", section, hv.device.default_bridges,
           detail::max_bridges);
    }
    check_min_memory(hv, plugin, section);
    if (name == hypervisor_qemu && hv.memory.enable_guest_swap) {
      fail(Errc::invalid_argument, "{} enable_guest_swap = true is not supported by qemu", section);
    }
  } else if (name == hypervisor_dragonball) {
    auto must_be_empty = [&](bool empty, std::string_view key, std::string_view why) {
      if (!empty) fail(Errc::invalid_argument, "{} {} must not be set: {}", section, key, why);
    };
    must_be_empty(hv.path.empty(), "path", "dragonball is built into the shim");
    must_be_empty(hv.valid_hypervisor_paths.empty(), "valid_hypervisor_paths", "dragonball is built into the shim");
    must_be_empty(hv.ctlpath.empty(), "ctlpath", "dragonball is built into the shim");
    must_be_empty(hv.valid_ctlpaths.empty(), "valid_ctlpaths", "dragonball is built into the shim");
    must_be_empty(!hv.enable_iothreads, "enable_iothreads", "dragonball has no IO threads");
    must_be_empty(hv.boot.firmware.empty(), "firmware", "dragonball boots the kernel directly");
    must_be_empty(!hv.device.enable_iommu && !hv.device.enable_iommu_platform, "enable_iommu/enable_iommu_platform",
                  "dragonball has no vIOMMU");
    must_be_empty(hv.device.default_bridges == 0 && hv.device.pcie_root_port == 0 && hv.device.pcie_switch_port == 0,
                  "default_bridges/pcie_root_port/pcie_switch_port", "dragonball has no PCI hotplug");
    must_be_empty(hv.machine.machine_type.empty(), "machine_type", "dragonball has a single machine model");
    must_be_empty(hv.machine.pflashes.empty(), "pflashes", "dragonball has no flash devices");
    must_be_empty(!hv.security.rootless, "rootless", "dragonball does not run rootless");
    require_existing_path(hv.jailer_path, options.path_check, section, "jailer_path");
    const auto& driver = hv.block_device.block_device_driver;
    if (!hv.block_device.disable_block_device_use && driver != "virtio-blk-pci" && driver != "virtio-blk-mmio" &&
        driver != "virtio-pmem") {
      fail(Errc::invalid_argument,
           "{} block_device_driver = \"{}\" is not supported by dragonball; allowed: virtio-blk-pci, "
           "virtio-blk-mmio, virtio-pmem",
           section, driver);
    }
    check_boot_assets(hv, section, false);
    check_vcpu_limit(hv, plugin, section);
    if (hv.shared_fs.shared_fs && *hv.shared_fs.shared_fs != "virtio-fs" && *hv.shared_fs.shared_fs != "inline-virtio-fs") {
      fail(Errc::invalid_argument,
           "{} shared_fs = \"{}\" is not supported by dragonball; allowed: inline-virtio-fs, virtio-fs, none", section,
           *hv.shared_fs.shared_fs);
    }
    check_min_memory(hv, plugin, section);
  } else if (name == hypervisor_firecracker) {
    if (hv.path.empty()) fail(Errc::invalid_argument, "{} path is empty; set the firecracker binary", section);
    if (hv.boot.kernel.empty()) fail(Errc::invalid_argument, "{} kernel is empty; set the guest kernel path", section);
    if (hv.boot.image.empty()) {
      fail(Errc::invalid_argument, "{} image is empty; firecracker boots from a rootfs image (initrd is not supported)",
           section);
    }
    check_vcpu_limit(hv, plugin, section);
    check_min_memory(hv, plugin, section);
  } else if (name == hypervisor_remote) {
    if (hv.memory.default_maxmemory != options.host.memory_mib) {
      fail(Errc::invalid_argument,
           "{} default_maxmemory = {}: remote has no memory hotplug; leave it 0 (= host memory, {} MiB)", section,
           hv.memory.default_maxmemory, options.host.memory_mib);
    }
    if (hv.cpu.default_maxvcpus != options.host.cpus) {
      fail(Errc::invalid_argument, "{} default_maxvcpus = {}: remote has no CPU hotplug; leave it 0 (= host CPUs, {})",
           section, hv.cpu.default_maxvcpus, options.host.cpus);
    }
    if (!hv.boot.initrd.empty()) fail(Errc::invalid_argument, "{} initrd must be empty: remote does not support it", section);
    if (!hv.boot.rootfs_type.empty()) {
      fail(Errc::invalid_argument, "{} rootfs_type must be empty: remote does not support it", section);
    }
    if (hv.block_device.block_device_driver == "nvdimm") {
      fail(Errc::invalid_argument, "{} block_device_driver = \"nvdimm\" is not supported by remote", section);
    }
    check_min_memory(hv, plugin, section);
  }
}

void validate_hypervisor(std::string_view name, const HypervisorConfig& hv, const LoadOptions& options) {
  const std::string section = detail::section_label("hypervisor", name);
  const HypervisorPlugin* plugin = find_hypervisor_plugin(name);
  if (plugin == nullptr) {
    fail(Errc::invalid_argument, "unknown hypervisor section {}; known hypervisors: {}", section,
         known_hypervisor_names());
  }
  const PathCheck check = options.path_check;
  validate_backend(name, hv, *plugin, options, section);

  const auto& block = hv.block_device;
  if (!block.disable_block_device_use) {
    if (!contains(block_drivers, block.block_device_driver)) {
      fail(Errc::invalid_argument, "{} block_device_driver = \"{}\" is not supported; allowed: {}", section,
           block.block_device_driver, join_list(block_drivers));
    }
    require_existing_path(block.vhost_user_store_path, check, section, "vhost_user_store_path");
    for (auto [key, size] : {std::pair{"block_device_logical_sector_size", block.block_device_logical_sector_size},
                             std::pair{"block_device_physical_sector_size", block.block_device_physical_sector_size}}) {
      if (!detail::valid_sector_size(size)) {
        fail(Errc::invalid_argument, "{} {} = {}: must be 0 or a power of two between 512 and 65536", section, key, size);
      }
    }
    if (block.block_device_logical_sector_size != 0 && block.block_device_physical_sector_size != 0 &&
        block.block_device_logical_sector_size > block.block_device_physical_sector_size) {
      fail(Errc::invalid_argument,
           "{} block_device_logical_sector_size = {} is larger than block_device_physical_sector_size = {}", section,
           block.block_device_logical_sector_size, block.block_device_physical_sector_size);
    }
  }

  for (auto [key, value] : {std::pair{"kernel", &hv.boot.kernel}, std::pair{"image", &hv.boot.image},
                            std::pair{"initrd", &hv.boot.initrd}, std::pair{"firmware", &hv.boot.firmware},
                            std::pair{"path", &hv.path}, std::pair{"ctlpath", &hv.ctlpath},
                            std::pair{"jailer_path", &hv.jailer_path},
                            std::pair{"prefetch_list_path", &hv.prefetch_list_path},
                            std::pair{"entropy_source", &hv.machine.entropy_source}}) {
    require_existing_path(*value, check, section, key);
  }
  if (!hv.boot.image.empty() && !hv.boot.initrd.empty()) {
    fail(Errc::invalid_argument, "{} image and initrd are both set; a guest boots from exactly one of them", section);
  }
  if (!contains(block_drivers, hv.boot.vm_rootfs_driver)) {
    fail(Errc::invalid_argument, "{} vm_rootfs_driver = \"{}\" is not supported; allowed: {}", section,
         hv.boot.vm_rootfs_driver, join_list(block_drivers));
  }
  if (!hv.boot.kernel_verity_params.empty()) {
    with_context([&] { return fmt::format("{} kernel_verity_params", section); },
                 [&] { detail::check_kernel_verity_params(hv.boot.kernel_verity_params); });
  }
  for (const auto& extra : hv.guest_extension_images) {
    if (extra.name.empty()) fail(Errc::invalid_argument, "{} guest_extension_images entry without a name", section);
    if (!std::all_of(extra.name.begin(), extra.name.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; })) {
      fail(Errc::invalid_argument,
           "{} guest_extension_images name \"{}\": only ASCII letters, digits, '-' and '_' are allowed", section,
           extra.name);
    }
    require_existing_path(extra.path, check, section, "guest_extension_images path");
    if (!extra.verity_params.empty()) {
      with_context([&] { return fmt::format("{} guest_extension_images \"{}\"", section, extra.name); },
                   [&] { detail::check_kernel_verity_params(extra.verity_params); });
    }
  }

  if (hv.cpu.default_vcpus > hv.cpu.default_maxvcpus) {
    fail(Errc::invalid_argument, "{} default_vcpus = {} is greater than default_maxvcpus = {}", section,
         hv.cpu.default_vcpus, hv.cpu.default_maxvcpus);
  }
  if (hv.device.default_bridges > detail::max_bridges) {
    fail(Errc::invalid_argument, "{} default_bridges = {}: at most {}", section, hv.device.default_bridges,
         detail::max_bridges);
  }
  if (hv.device.pcie_root_port > 0 && hv.device.pcie_switch_port > 0) {
    fail(Errc::invalid_argument, "{} pcie_root_port and pcie_switch_port are both set; use only one of them", section);
  }
  for (const auto& pflash : hv.machine.pflashes) require_existing_path(pflash, check, section, "pflashes");
  if (hv.memory.default_memory == 0) fail(Errc::invalid_argument, "{} default_memory is 0; the guest needs memory", section);
  if (hv.memory.memory_slots == 0) fail(Errc::invalid_argument, "{} memory_slots is 0; at least 1 is needed", section);
  if (hv.memory.hugepage_type != "hugetlbfs" && hv.memory.hugepage_type != "thp") {
    fail(Errc::invalid_argument, "{} hugepage_type = \"{}\" is not supported; allowed: hugetlbfs, thp", section,
         hv.memory.hugepage_type);
  }

  const auto& shared = hv.shared_fs;
  if (shared.shared_fs) {
    const std::string& kind = *shared.shared_fs;
    if (kind != "virtio-fs" && kind != "inline-virtio-fs" && kind != "virtio-fs-nydus") {
      fail(Errc::invalid_argument,
           "{} shared_fs = \"{}\" is not supported; allowed: virtio-fs, inline-virtio-fs, virtio-fs-nydus, none",
           section, kind);
    }
    if (kind != "inline-virtio-fs") require_existing_path(shared.virtio_fs_daemon, check, section, "virtio_fs_daemon");
    if (shared.virtio_fs_cache != "never" && shared.virtio_fs_cache != "auto" && shared.virtio_fs_cache != "always") {
      fail(Errc::invalid_argument, "{} virtio_fs_cache = \"{}\" is not supported; allowed: never, auto, always", section,
           shared.virtio_fs_cache);
    }
    if (shared.virtio_fs_is_dax && shared.virtio_fs_cache_size == 0) {
      fail(Errc::invalid_argument, "{} virtio_fs_is_dax = true needs a DAX window: set virtio_fs_cache_size (MiB)",
           section);
    }
  }
}

void validate_shared_mount(const SharedMount& mount) {
  static const std::regex absolute_path(R"(^(/[-\w.]+)+/?$)");
  for (auto [key, value] : {std::pair{"name", &mount.name}, std::pair{"src_ctr", &mount.src_ctr},
                            std::pair{"src_path", &mount.src_path}, std::pair{"dst_ctr", &mount.dst_ctr},
                            std::pair{"dst_path", &mount.dst_path}}) {
    if (value->empty()) fail(Errc::invalid_argument, "[runtime] shared_mounts: {} must not be empty", key);
  }
  for (auto [key, value] : {std::pair{"src_path", &mount.src_path}, std::pair{"dst_path", &mount.dst_path}}) {
    if (!std::regex_match(*value, absolute_path)) {
      fail(Errc::invalid_argument,
           "[runtime] shared_mounts \"{}\": {} = \"{}\" must be an absolute path of letters, digits, '-', '_' and '.'",
           mount.name, key, *value);
    }
    if (value->find("/../") != std::string::npos || value->ends_with("/..")) {
      fail(Errc::invalid_argument, "[runtime] shared_mounts \"{}\": {} must not contain '..'", mount.name, key);
    }
  }
}

void validate_runtime(const Config& config, const LoadOptions& options) {
  const RuntimeConfig& runtime = config.runtime;
  if (runtime.hypervisor_name.empty()) {
    fail(Errc::invalid_argument, "[runtime] hypervisor_name is empty; known hypervisors: {}", known_hypervisor_names());
  }
  if (find_hypervisor_plugin(runtime.hypervisor_name) == nullptr) {
    fail(Errc::invalid_argument, "[runtime] hypervisor_name = \"{}\" is not a known hypervisor; known hypervisors: {}",
         runtime.hypervisor_name, known_hypervisor_names());
  }
  if (!config.hypervisor.contains(runtime.hypervisor_name)) {
    fail(Errc::invalid_argument, "[runtime] hypervisor_name = \"{}\" but there is no [hypervisor.{}] section",
         runtime.hypervisor_name, runtime.hypervisor_name);
  }
  constexpr std::array<std::string_view, 4> net_models{"tcfilter", "macvtap", "none", "l3forwarding"};
  if (!runtime.internetworking_model.empty() && !contains(net_models, runtime.internetworking_model)) {
    fail(Errc::invalid_argument, "[runtime] internetworking_model = \"{}\" is not supported; allowed: {}",
         runtime.internetworking_model, join_list(net_models));
  }
  if (!runtime.vfio_mode.empty() && runtime.vfio_mode != "vfio" && runtime.vfio_mode != "guest-kernel") {
    fail(Errc::invalid_argument, "[runtime] vfio_mode = \"{}\" is not supported; allowed: guest-kernel, vfio",
         runtime.vfio_mode);
  }
  constexpr std::array<std::string_view, 3> emptydir_modes{"shared-fs", "block-encrypted", "block-plain"};
  if (!contains(emptydir_modes, runtime.emptydir_mode)) {
    fail(Errc::invalid_argument, "[runtime] emptydir_mode = \"{}\" is not supported; allowed: {}", runtime.emptydir_mode,
         join_list(emptydir_modes));
  }
  for (const auto& mount : runtime.shared_mounts) validate_shared_mount(mount);
  for (const auto& bind : runtime.sandbox_bind_mounts) {
    std::string path = bind;
    if (bind.ends_with(":ro") || bind.ends_with(":rw")) path.resize(path.size() - 3);
    require_existing_path(path, options.path_check, "[runtime]", "sandbox_bind_mounts");
  }
}

void validate_agent(std::string_view name, const AgentConfig& agent) {
  const std::string section = detail::section_label("agent", name);
  if (agent.dial_timeout_ms == 0) {
    fail(Errc::invalid_argument, "{} dial_timeout_ms = 0: it is the pause between connection attempts; use >= 1",
         section);
  }
  // reconnect_timeout_ms is the whole budget: below one dial pause not even one attempt fits.
  if (agent.reconnect_timeout_ms < agent.dial_timeout_ms) {
    fail(Errc::invalid_argument,
         "{} reconnect_timeout_ms = {} is less than dial_timeout_ms = {}; the connection budget must allow at least "
         "one attempt (set reconnect_timeout_ms >= dial_timeout_ms)",
         section, agent.reconnect_timeout_ms, agent.dial_timeout_ms);
  }
}

}  // namespace

void validate_config(const Config& config, const LoadOptions& options) {
  for (const auto& [name, hv] : config.hypervisor) validate_hypervisor(name, hv, options);
  validate_runtime(config, options);
  for (const auto& [name, agent] : config.agent) validate_agent(name, agent);
}

}  // namespace kata::config
