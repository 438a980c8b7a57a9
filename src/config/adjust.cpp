// adjust_config: upstream's ConfigPlugin::adjust_config for each backend followed by the
// adjust_config of every hypervisor group, the runtime and the agent. It fills defaults and
// clamps to the host; it rejects only what cannot be given a meaning (an unknown AIO mode, a
// path that does not exist).
#include <fnmatch.h>

#include <algorithm>
#include <charconv>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <system_error>

#include <fmt/format.h>

#include "kata/config/loader.hpp"
#include "kata/core/error.hpp"
#include "validation.hpp"

namespace kata::config {

namespace detail {

std::string section_label(std::string_view kind, std::string_view name) {
  return fmt::format("[{}.{}]", kind, name);
}

void resolve_path(std::string& value, PathCheck check, std::string_view section, std::string_view key) {
  if (value.empty() || check == PathCheck::lexical) return;
  std::error_code ec;
  auto canonical = std::filesystem::canonical(value, ec);
  if (ec) fail(Errc::not_found, "{} {} = \"{}\": {}", section, key, value, ec.message());
  value = canonical.string();
}

void require_existing_path(const std::string& value, PathCheck check, std::string_view section, std::string_view key) {
  std::string copy = value;
  resolve_path(copy, check, section, key);
}

std::string join(std::initializer_list<std::string_view> values) {
  std::string out;
  for (auto value : values) {
    if (!out.empty()) out += ", ";
    out += value;
  }
  return out;
}

bool matches_any_glob(const std::vector<std::string>& globs, const std::string& path) {
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& glob) { return ::fnmatch(glob.c_str(), path.c_str(), 0) == 0; });
}

void check_kernel_verity_params(std::string_view params) {
  std::map<std::string, std::string, std::less<>> values;
  std::size_t start = 0;
  while (start <= params.size()) {
    auto end = params.find(',', start);
    if (end == std::string_view::npos) end = params.size();
    auto field = params.substr(start, end - start);
    while (!field.empty() && field.front() == ' ') field.remove_prefix(1);
    while (!field.empty() && field.back() == ' ') field.remove_suffix(1);
    if (!field.empty()) {
      auto eq = field.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        fail(Errc::invalid_argument, "kernel_verity_params entry \"{}\" is not key=value", field);
      }
      values[std::string(field.substr(0, eq))] = std::string(field.substr(eq + 1));
    }
    start = end + 1;
  }
  auto require = [&](std::string_view name) -> const std::string& {
    auto it = values.find(name);
    if (it == values.end() || it->second.empty()) fail(Errc::invalid_argument, "kernel_verity_params: missing {}", name);
    return it->second;
  };
  require("root_hash");
  require("salt");
  for (std::string_view name : {"data_blocks", "data_block_size", "hash_block_size"}) {
    const std::string& text = require(name);
    std::uint64_t number = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc() || ptr != text.data() + text.size()) {
      fail(Errc::invalid_argument, "kernel_verity_params {} = \"{}\": not an unsigned integer", name, text);
    }
    if (number == 0) fail(Errc::invalid_argument, "kernel_verity_params {}: must be non-zero", name);
    if (name != "data_blocks" && number % 512 != 0) {
      fail(Errc::invalid_argument, "kernel_verity_params {} = {}: must be a multiple of 512", name, number);
    }
  }
}

bool valid_sector_size(std::uint32_t size) {
  return size == 0 || (size >= 512 && size <= 65536 && (size & (size - 1)) == 0);
}

}  // namespace detail

namespace {

using detail::resolve_path;

constexpr std::string_view default_kernel = "vmlinuz";
constexpr std::string_view default_entropy_source = "/dev/urandom";
constexpr std::string_view default_template_path = "/run/vc/vm/template";

std::string trim_comma_list(std::string_view list) {
  std::string out;
  std::size_t start = 0;
  while (start <= list.size()) {
    auto end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    auto item = list.substr(start, end - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
    if (start != 0) out += ',';
    out += item;
    start = end + 1;
  }
  return out;
}

template <class T>
void default_if_empty(T& value, const auto& fallback) {
  if (value == T{}) value = T(fallback);
}

// Per-backend defaults (upstream hypervisor/{qemu,ch,dragonball,firecracker,remote}.rs).
void adjust_backend(std::string_view name, HypervisorConfig& hv, RuntimeConfig& runtime, PathCheck check,
                    const std::string& section) {
  if (name == hypervisor_qemu || name == hypervisor_clh) {
    const bool qemu = name == hypervisor_qemu;
    default_if_empty(hv.path, qemu ? "/usr/bin/qemu-system-x86_64" : "/usr/bin/cloud-hypervisor");
    resolve_path(hv.path, check, section, "path");
    resolve_path(hv.ctlpath, check, section, "ctlpath");
    if (qemu) {
      default_if_empty(hv.boot.rootfs_type, "ext4");
      default_if_empty(hv.machine.machine_type, "q35");
    }
    default_if_empty(hv.boot.kernel, default_kernel);
    default_if_empty(hv.device.default_bridges, qemu ? 1U : 2U);
    default_if_empty(hv.machine.entropy_source, default_entropy_source);
    default_if_empty(hv.memory.default_memory, 128U);
    default_if_empty(hv.memory.memory_slots, 128U);
    default_if_empty(hv.factory.template_path, default_template_path);
  } else if (name == hypervisor_dragonball) {
    resolve_path(hv.jailer_path, check, section, "jailer_path");
    default_if_empty(hv.boot.kernel, default_kernel);
    hv.cpu.default_maxvcpus = std::min<std::uint32_t>(hv.cpu.default_maxvcpus, 256);
    if (static_cast<std::uint32_t>(hv.cpu.default_vcpus) > hv.cpu.default_maxvcpus) {
      hv.cpu.default_vcpus = hv.cpu.default_maxvcpus;
    }
    default_if_empty(hv.machine.entropy_source, default_entropy_source);
    default_if_empty(hv.memory.default_memory, 128U);
    default_if_empty(hv.memory.memory_slots, 128U);
    default_if_empty(hv.factory.template_path, default_template_path);
  } else if (name == hypervisor_firecracker) {
    default_if_empty(hv.boot.kernel, "vmlinux");
    default_if_empty(hv.machine.entropy_source, default_entropy_source);
    default_if_empty(hv.memory.default_memory, 128U);
  } else if (name == hypervisor_remote) {
    default_if_empty(hv.remote.hypervisor_socket, "/run/peerpod/hypervisor.sock");
    resolve_path(hv.remote.hypervisor_socket, check, section, "hypervisor_socket");
    default_if_empty(hv.remote.hypervisor_timeout, 600);
    default_if_empty(hv.memory.default_memory, 64U);
    default_if_empty(hv.memory.memory_slots, 128U);
    default_if_empty(hv.factory.template_path, default_template_path);
    // Peer pods get their network from the cloud provider; upstream forces this whenever a
    // remote section exists.
    runtime.internetworking_model = "none";
    runtime.disable_new_netns = false;
  }
}

void adjust_block_device(BlockDeviceInfo& block, PathCheck check, const std::string& section) {
  if (block.disable_block_device_use) {
    block.block_device_driver.clear();
    block.enable_vhost_user_store = false;
    block.memory_offset = 0;
    return;
  }
  default_if_empty(block.block_device_driver, "virtio-blk-pci");
  if (block.block_device_aio.empty()) {
    block.block_device_aio = "io_uring";
  } else if (block.block_device_aio != "io_uring" && block.block_device_aio != "native" &&
             block.block_device_aio != "threads") {
    fail(Errc::invalid_argument, "{} block_device_aio = \"{}\" is not supported; allowed: io_uring, native, threads",
         section, block.block_device_aio);
  }
  default_if_empty(block.num_queues, 1U);
  default_if_empty(block.queue_size, 128U);
  if (!block.enable_vhost_user_store) {
    block.vhost_user_store_path.clear();
  } else {
    default_if_empty(block.vhost_user_store_path, "/var/run/vhost-user");
  }
  resolve_path(block.vhost_user_store_path, check, section, "vhost_user_store_path");
}

void adjust_cpu(CpuInfo& cpu, const HostResources& host) {
  cpu.cpu_features = trim_comma_list(cpu.cpu_features);
  const auto cpus = host.cpus;
  if (cpu.default_maxvcpus == 0 || cpu.default_maxvcpus > cpus) cpu.default_maxvcpus = cpus;
  if (cpu.default_vcpus < 0.0 || cpu.default_vcpus > cpus) {
    cpu.default_vcpus = cpus;
  } else if (cpu.default_vcpus == 0.0) {
    cpu.default_vcpus = 1.0;
  }
  if (cpu.default_vcpus > cpu.default_maxvcpus) cpu.default_vcpus = cpu.default_maxvcpus;
}

void adjust_memory(MemoryInfo& memory, const HostResources& host) {
  const auto host_mib = static_cast<std::uint32_t>(std::min<std::uint64_t>(host.memory_mib, UINT32_MAX));
  if (memory.default_memory > host_mib) memory.default_memory = host_mib;
  if (memory.default_maxmemory == 0 || memory.default_maxmemory > host_mib) memory.default_maxmemory = host_mib;
}

void adjust_shared_fs(SharedFsInfo& shared, PathCheck check, const std::string& section,
                      std::vector<std::string>& warnings) {
  if (shared.shared_fs == "none") {
    shared.shared_fs.reset();
    return;
  }
  if (shared.shared_fs == "") shared.shared_fs = "virtio-fs";
  if (!shared.shared_fs) return;
  const std::string& kind = *shared.shared_fs;
  if (kind != "virtio-fs" && kind != "inline-virtio-fs" && kind != "virtio-fs-nydus") return;  // validate rejects
  // inline-virtio-fs runs the server inside the VMM: no daemon binary.
  if (kind != "inline-virtio-fs") resolve_path(shared.virtio_fs_daemon, check, section, "virtio_fs_daemon");
  if (shared.virtio_fs_cache.empty()) shared.virtio_fs_cache = "never";
  if (shared.virtio_fs_cache == "none") {
    warnings.push_back(fmt::format("{} virtio_fs_cache = \"none\" is deprecated; using \"never\"", section));
    shared.virtio_fs_cache = "never";
  }
  if (shared.virtio_fs_is_dax && shared.virtio_fs_cache_size == 0) shared.virtio_fs_cache_size = 1024;
  if (!shared.virtio_fs_is_dax && shared.virtio_fs_cache_size != 0) shared.virtio_fs_is_dax = true;
}

void adjust_hypervisor(std::string_view name, HypervisorConfig& hv, RuntimeConfig& runtime,
                       const LoadOptions& options, std::vector<std::string>& warnings) {
  const std::string section = detail::section_label("hypervisor", name);
  const PathCheck check = options.path_check;
  adjust_backend(name, hv, runtime, check, section);

  adjust_block_device(hv.block_device, check, section);

  resolve_path(hv.boot.kernel, check, section, "kernel");
  resolve_path(hv.boot.image, check, section, "image");
  resolve_path(hv.boot.initrd, check, section, "initrd");
  resolve_path(hv.boot.firmware, check, section, "firmware");
  default_if_empty(hv.boot.vm_rootfs_driver, "virtio-blk-pci");

  for (auto& extra : hv.guest_extension_images) {
    resolve_path(extra.path, check, section, fmt::format("guest_extension_images \"{}\" path", extra.name));
  }
  adjust_cpu(hv.cpu, options.host);
  hv.device.default_bridges = std::min(hv.device.default_bridges, detail::max_bridges);
  hv.machine.machine_accelerators = trim_comma_list(hv.machine.machine_accelerators);
  for (auto& pflash : hv.machine.pflashes) resolve_path(pflash, check, section, "pflashes");
  resolve_path(hv.machine.entropy_source, check, section, "entropy_source");
  adjust_memory(hv.memory, options.host);
  default_if_empty(hv.network.network_queues, 1U);
  hv.network.network_queues = std::min(hv.network.network_queues, detail::max_network_queues);
  adjust_shared_fs(hv.shared_fs, check, section, warnings);
  resolve_path(hv.prefetch_list_path, check, section, "prefetch_list_path");
}

void adjust_runtime(RuntimeConfig& runtime, PathCheck check) {
  default_if_empty(runtime.internetworking_model, "tcfilter");
  default_if_empty(runtime.emptydir_mode, "shared-fs");
  for (auto& bind : runtime.sandbox_bind_mounts) {
    std::string path = bind;
    std::string mode;
    if (bind.ends_with(":ro") || bind.ends_with(":rw")) {
      path = bind.substr(0, bind.size() - 3);
      mode = bind.substr(bind.size() - 3);
    }
    resolve_path(path, check, "[runtime]", "sandbox_bind_mounts");
    bind = path + mode;
  }
}

}  // namespace

void adjust_config(Config& config, const LoadOptions& options, std::vector<std::string>& warnings) {
  for (auto& [name, hv] : config.hypervisor) {
    if (find_hypervisor_plugin(name) == nullptr) {
      fail(Errc::invalid_argument, "unknown hypervisor section [hypervisor.{}]; known hypervisors: {}", name,
           known_hypervisor_names());
    }
    adjust_hypervisor(name, hv, config.runtime, options, warnings);
  }
  adjust_runtime(config.runtime, options.path_check);
}

}  // namespace kata::config
