#include "kata/hypervisor/qemu/command_line.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kata::hypervisor::qemu {
namespace {

constexpr std::uint64_t mib = 1024 * 1024;

bool opens_read_write(const char* path) noexcept {
  const int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

/// QEMU's option parser splits on ',' and reads ",," as a literal comma.
std::string escaped(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out.push_back(c);
    if (c == ',') out.push_back(',');
  }
  return out;
}

std::string escaped_path(const std::filesystem::path& path) { return escaped(path.string()); }

std::string pci_address(unsigned slot) { return fmt::format("bus=pcie.0,addr={:02x}", slot); }

bool uses_virtio_fs(const LaunchPlan& plan) {
  for (const auto& fs : plan.share_fs) {
    if (fs.kind == ShareFsDevice::Kind::virtio_fs) return true;
  }
  return false;
}

// ceil, tolerant of binary rounding as kata::resource::cpu_mem::boot_vcpus (static sizing's
// 2 plus rounding noise must boot 2 vCPUs, the default_maxvcpus it set).
std::uint32_t boot_vcpus(const config::HypervisorConfig& config) {
  return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::ceil(config.cpu.default_vcpus - 1e-6)));
}

// vhost-user devices (virtio-fs) map guest RAM into the daemon, so every RAM region must be a
// shared memfd; otherwise plain anonymous RAM.
std::string memory_backend_type(const config::HypervisorConfig& config, const LaunchPlan& plan) {
  return uses_virtio_fs(plan) || config.memory.enable_hugepages ? "memory-backend-memfd" : "memory-backend-ram";
}

std::string memory_backend_options(const config::HypervisorConfig& config, const LaunchPlan& plan) {
  std::string options;
  if (uses_virtio_fs(plan) || config.memory.enable_hugepages) options += ",share=on";
  if (config.memory.enable_hugepages && config.memory.hugepage_type != "thp") options += ",hugetlb=on,hugetlbsize=2M";
  if (config.memory.enable_mem_prealloc) options += ",prealloc=on";
  return options;
}

void add(std::vector<std::string>& argv, std::string option, std::string value) {
  argv.push_back(std::move(option));
  argv.push_back(std::move(value));
}

std::string blockdev_json(const std::string& node_name, const std::filesystem::path& path, bool read_only,
                          bool host_device, const config::BlockDeviceInfo& info) {
  nlohmann::json file = {{"driver", host_device ? "host_device" : "file"}, {"filename", path.string()}};
  if (!info.block_device_aio.empty()) file["aio"] = info.block_device_aio;
  nlohmann::json node = {{"driver", "raw"}, {"node-name", node_name}, {"read-only", read_only}, {"file", file}};
  if (info.block_device_cache_set) {
    node["cache"] = {{"direct", info.block_device_cache_direct}, {"no-flush", info.block_device_cache_noflush}};
  }
  return node.dump();
}

}  // namespace

std::string_view to_string(Accelerator accelerator) noexcept {
  return accelerator == Accelerator::kvm ? "kvm" : "tcg";
}

HostFeatures HostFeatures::probe() noexcept {
  return HostFeatures{.kvm = opens_read_write("/dev/kvm"), .vhost_vsock = opens_read_write("/dev/vhost-vsock")};
}

Accelerator choose_accelerator(const HostFeatures& host) noexcept {
  return host.kvm ? Accelerator::kvm : Accelerator::tcg;
}

std::string rootfs_attachment(const config::HypervisorConfig& config) {
  if (config.boot.image.empty()) return {};
  const std::string& driver = config.boot.vm_rootfs_driver;
  if ((driver.empty() || driver == "virtio-pmem") && !config.block_device.disable_image_nvdimm) return "nvdimm";
  return "virtio-blk-pci";
}

std::string kernel_command_line(const VmContext& context) {
  const auto& config = context.config;
  std::vector<std::string> params = {"reboot=k", "panic=1", "systemd.unit=kata-containers.target",
                                     "systemd.mask=systemd-networkd.service", "systemd.mask=systemd-networkd.socket"};
  // Hot-added memory (pc-dimm, virtio-mem) comes online in the kernel as it arrives. Onlining it
  // from the agent races ACPI: OnlineCPUMem can run before the new blocks exist in sysfs, and a
  // kernel without MEMORY_HOTPLUG_DEFAULT_ONLINE (Debian's) would leave them offline.
  if (config.memory.default_maxmemory > config.memory.default_memory) params.push_back("memhp_default_state=online");
  const std::string attachment = rootfs_attachment(config);
  if (!attachment.empty()) {
    const bool pmem = attachment == "nvdimm";
    const std::string fs_type = config.boot.rootfs_type.empty() ? "ext4" : config.boot.rootfs_type;
    params.push_back(pmem ? "root=/dev/pmem0p1" : "root=/dev/vda1");
    if (fs_type == "ext4") {
      params.push_back(pmem ? "rootflags=dax,data=ordered,errors=remount-ro ro" : "rootflags=data=ordered,errors=remount-ro ro");
    } else {
      params.push_back(pmem ? "rootflags=dax ro" : "ro");
    }
    params.push_back("rootfstype=" + fs_type);
  }
  if (!config.boot.kernel_params.empty()) params.push_back(config.boot.kernel_params);
  params.insert(params.end(), context.agent_kernel_params.begin(), context.agent_kernel_params.end());
  params.push_back(config.debug.enable_debug ? "console=ttyS0" : "quiet");
  return fmt::format("{}", fmt::join(params, " "));
}

std::vector<std::string> build_command_line(const VmContext& context, const LaunchPlan& plan) {
  const auto& config = context.config;
  std::vector<std::string> argv;
  add(argv, "-name", "sandbox-" + context.sandbox_id);
  for (const char* knob : {"-no-user-config", "-nodefaults", "-nographic", "-no-reboot"}) argv.emplace_back(knob);
  add(argv, "-vga", "none");

  const std::string attachment = rootfs_attachment(config);
  const bool nvdimm = attachment == "nvdimm";
  std::string machine = fmt::format("q35,accel={}", to_string(plan.accelerator));
  if (!config.machine.machine_accelerators.empty()) machine += "," + config.machine.machine_accelerators;
  if (nvdimm) machine += ",nvdimm=on";
  machine += ",memory-backend=kata-memory";
  add(argv, "-machine", machine);

  std::string cpu = plan.accelerator == Accelerator::kvm ? "host" : "max";
  if (!config.cpu.cpu_features.empty()) cpu += "," + config.cpu.cpu_features;
  add(argv, "-cpu", cpu);

  const std::uint32_t vcpus = boot_vcpus(config);
  add(argv, "-smp", fmt::format("{},maxcpus={}", vcpus, std::max(vcpus, config.cpu.default_maxvcpus)));

  // Device memory (hotplug DIMMs, virtio-mem, the nvdimm rootfs) lives between -m and maxmem.
  const std::uint64_t memory = config.memory.default_memory;
  const std::uint64_t image_mib = nvdimm ? (plan.rootfs_image_bytes + mib - 1) / mib : 0;
  const std::uint64_t max_memory = std::max<std::uint64_t>(config.memory.default_maxmemory, memory) + image_mib;
  if (max_memory > memory) {
    const std::uint32_t slots = std::max<std::uint32_t>(config.memory.memory_slots, 1) + (nvdimm ? 1 : 0);
    add(argv, "-m", fmt::format("{}M,slots={},maxmem={}M", memory, slots, max_memory));
  } else {
    add(argv, "-m", fmt::format("{}M", memory));
  }
  add(argv, "-object", fmt::format("{},id=kata-memory,size={}M{}", memory_backend_type(config, plan), memory,
                                   memory_backend_options(config, plan)));

  add(argv, "-rtc", "base=utc,driftfix=slew");
  if (plan.accelerator == Accelerator::kvm) add(argv, "-global", "kvm-pit.lost_tick_policy=discard");
  if (config.security.seccomp_sandbox && !config.security.seccomp_sandbox->empty()) {
    add(argv, "-sandbox", *config.security.seccomp_sandbox);
  }

  add(argv, "-chardev", fmt::format("socket,id=qmp,fd={},server=on,wait=off", plan.qmp_fd));
  add(argv, "-mon", "chardev=qmp,mode=control");
  add(argv, "-chardev", fmt::format("file,id=console,path={}", escaped_path(plan.console_log)));
  add(argv, "-serial", "chardev:console");

  add(argv, "-kernel", escaped_path(config.boot.kernel));
  if (!config.boot.initrd.empty()) add(argv, "-initrd", escaped_path(config.boot.initrd));
  add(argv, "-append", kernel_command_line(context));

  // Root ports first: QEMU fails a device whose explicit address is already taken, so the
  // fixed addresses go in before anything else could claim them.
  for (std::size_t i = 0; i < plan.root_ports.size(); ++i) {
    const auto& port = plan.root_ports[i];
    add(argv, "-device", fmt::format("pcie-root-port,id={},chassis=1,slot={},{}", port.id, i + 1, pci_address(port.slot)));
  }

  std::visit(
      [&](const auto& channel) {
        using Channel = std::decay_t<decltype(channel)>;
        if constexpr (std::is_same_v<Channel, VsockChannel>) {
          add(argv, "-device", fmt::format("vhost-vsock-pci,id=agent-vsock,guest-cid={},vhostfd={},{}", channel.guest_cid,
                                           channel.vhost_fd, pci_address(agent_channel_slot)));
        } else {
          add(argv, "-device", fmt::format("virtio-serial-pci,id=agent-serial,{}", pci_address(agent_channel_slot)));
          add(argv, "-chardev", fmt::format("socket,id=agent-channel,path={},server=on,wait=off", escaped_path(channel.socket)));
          add(argv, "-device", "virtserialport,bus=agent-serial.0,chardev=agent-channel,name=agent.channel.0");
          if (channel.log_socket) {
            add(argv, "-chardev", fmt::format("socket,id=agent-log,path={},server=on,wait=off", escaped_path(*channel.log_socket)));
            add(argv, "-device", "virtserialport,bus=agent-serial.0,chardev=agent-log,name=agent.log.0");
          }
        }
      },
      plan.agent_channel);

  if (!config.machine.entropy_source.empty()) {
    add(argv, "-object", fmt::format("rng-random,id=rng0,filename={}", escaped_path(config.machine.entropy_source)));
    add(argv, "-device", fmt::format("virtio-rng-pci,id=rng,rng=rng0,{}", pci_address(rng_slot)));
  }

  if (config.memory.enable_virtio_mem && config.memory.default_maxmemory > memory) {
    // No prealloc here: the region is the whole hotplug range, plugged on demand.
    add(argv, "-object", fmt::format("{},id=virtiomem-memory,size={}M{}", memory_backend_type(config, plan),
                                     config.memory.default_maxmemory - memory,
                                     memory_backend_type(config, plan) == "memory-backend-memfd" ? ",share=on" : ""));
    add(argv, "-device", fmt::format("virtio-mem-pci,id=virtiomem0,memdev=virtiomem-memory,requested-size=0,{}",
                                     pci_address(virtio_mem_slot)));
  }

  if (nvdimm) {
    add(argv, "-object", fmt::format("memory-backend-file,id=rootfs-memory,mem-path={},size={},readonly=on,share=on",
                                     escaped_path(config.boot.image), plan.rootfs_image_bytes));
    add(argv, "-device", "nvdimm,id=rootfs,memdev=rootfs-memory,unarmed=on");
  } else if (!attachment.empty()) {
    add(argv, "-blockdev", blockdev_json("rootfs", config.boot.image, true, false, config.block_device));
    add(argv, "-device", fmt::format("virtio-blk-pci,id=rootfs-blk,drive=rootfs,{}", pci_address(rootfs_block_slot)));
  }

  for (const auto& block : plan.block_devices) {
    add(argv, "-blockdev", blockdev_json(block.node_name, block.path, block.read_only, block.host_device, config.block_device));
    add(argv, "-device", fmt::format("virtio-blk-pci,id={},drive={},{}", block.qdev_id, block.node_name, pci_address(block.slot)));
  }

  for (const auto& net : plan.network_devices) {
    std::vector<std::string> fds;
    for (int fd : net.tap_fds) fds.push_back(std::to_string(fd));
    if (fds.size() == 1) {
      add(argv, "-netdev", fmt::format("tap,id={},fd={},vhost=off", net.netdev_id, fds.front()));
    } else {
      add(argv, "-netdev", fmt::format("tap,id={},fds={},vhost=off", net.netdev_id, fmt::join(fds, ":")));
    }
    // romfile= skips loading the iPXE option ROM nobody boots from.
    std::string device = fmt::format("virtio-net-pci,id={},netdev={},mac={},romfile=", net.qdev_id, net.netdev_id, net.mac);
    if (fds.size() > 1) device += fmt::format(",mq=on,vectors={}", 2 * fds.size() + 2);
    add(argv, "-device", device + "," + pci_address(net.slot));
  }

  for (const auto& fs : plan.share_fs) {
    if (fs.kind == ShareFsDevice::Kind::virtio_fs) {
      add(argv, "-chardev", fmt::format("socket,id={}-chardev,path={}", fs.id, escaped_path(fs.daemon_socket)));
      add(argv, "-device", fmt::format("vhost-user-fs-pci,id={},chardev={}-chardev,tag={},queue-size={},{}", fs.id, fs.id,
                                       escaped(fs.mount_tag), fs.queue_size, pci_address(fs.slot)));
    } else {
      add(argv, "-fsdev", fmt::format("local,id={}-fsdev,path={},security_model=none,multidevs=remap", fs.id,
                                      escaped_path(fs.shared_dir)));
      add(argv, "-device", fmt::format("virtio-9p-pci,id={},fsdev={}-fsdev,mount_tag={},{}", fs.id, fs.id,
                                       escaped(fs.mount_tag), pci_address(fs.slot)));
    }
  }
  return argv;
}

}  // namespace kata::hypervisor::qemu
