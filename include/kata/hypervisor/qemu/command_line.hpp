// The QEMU command line, as a pure function of the VM context and a launch plan.
//
// Everything the shim decides before QEMU runs (which accelerator, which agent channel, which
// descriptor numbers the child gets, where each PCI device sits) is in LaunchPlan; the builder
// only formats. That keeps the whole argv unit-testable without a host, and makes the guest PCI
// path of every cold-plugged device known before launch: the builder gives each device an explicit
// slot on pcie.0 instead of letting QEMU pick one.
//
// Slot layout on pcie.0 (q35; 00 is the host bridge, 1f the ICH9 functions):
//   01 agent channel (virtio-serial-pci or vhost-vsock-pci)   02 virtio-rng-pci
//   03 virtio-mem-pci                                         04 rootfs image as virtio-blk-pci
//   05.. cold-plugged devices, ascending        .. 1e pcie-root-ports for hotplug, descending
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kata/hypervisor/vm.hpp"

namespace kata::hypervisor::qemu {

enum class Accelerator { kvm, tcg };

[[nodiscard]] std::string_view to_string(Accelerator accelerator) noexcept;

/// What the host offers QEMU. Probed once per VM (cheap: two open(2) calls); tests inject it.
struct HostFeatures {
  bool kvm = false;          ///< /dev/kvm opens read-write
  bool vhost_vsock = false;  ///< /dev/vhost-vsock opens read-write

  [[nodiscard]] static HostFeatures probe() noexcept;
};

/// KVM when the host has it; TCG otherwise. `machine_accelerators` does not change this choice:
/// like upstream, it holds extra -machine options ("kernel_irqchip=on,nosmm"), which are passed on.
[[nodiscard]] Accelerator choose_accelerator(const HostFeatures& host) noexcept;

// Fixed slots (see the layout above).
inline constexpr unsigned agent_channel_slot = 0x01;
inline constexpr unsigned rng_slot = 0x02;
inline constexpr unsigned virtio_mem_slot = 0x03;
inline constexpr unsigned rootfs_block_slot = 0x04;
inline constexpr unsigned first_cold_plug_slot = 0x05;
inline constexpr unsigned last_root_port_slot = 0x1e;
/// Root ports reserved when the config's pcie_root_port is 0, so block and NIC hotplug work.
inline constexpr std::uint32_t default_root_ports = 4;

/// vhost-vsock: the guest CID is claimed on `vhost_fd` (a descriptor number in the child) before launch.
struct VsockChannel {
  std::uint32_t guest_cid = 0;
  int vhost_fd = -1;
};

/// virtio-serial: port agent.channel.0 behind a unix socket server QEMU creates; optionally a
/// second port agent.log.0 for the guest's log stream.
struct SerialChannel {
  std::filesystem::path socket;
  std::optional<std::filesystem::path> log_socket;
};

using AgentChannel = std::variant<VsockChannel, SerialChannel>;

/// A pcie-root-port hotplugged devices go onto; the device behind it is at slot 00.
struct RootPort {
  std::string id;  ///< "rp0"
  unsigned slot = 0;
};

struct PlannedBlock {
  std::string qdev_id;    ///< QEMU device id ("blk0"); caller ids are not valid QEMU ids in general
  std::string node_name;  ///< block node ("drive-blk0"), at most 31 characters
  std::filesystem::path path;
  bool read_only = false;
  bool host_device = false;  ///< a block special file (driver host_device) rather than a regular file
  unsigned slot = 0;
};

struct PlannedNetwork {
  std::string qdev_id;    ///< "net0"
  std::string netdev_id;  ///< "netdev-net0"
  std::string mac;
  std::vector<int> tap_fds;  ///< descriptor numbers in the child, one per queue
  unsigned slot = 0;
};

struct PlannedShareFs {
  std::string id;  ///< "fs0"
  ShareFsDevice::Kind kind = ShareFsDevice::Kind::virtio_fs;
  std::string mount_tag;
  std::filesystem::path daemon_socket;
  std::filesystem::path shared_dir;
  std::uint32_t queue_size = 1024;
  unsigned slot = 0;
};

/// Everything decided before launch.
struct LaunchPlan {
  Accelerator accelerator = Accelerator::tcg;
  AgentChannel agent_channel;
  /// Listening QMP socket the shim bound itself, as a descriptor number in the child.
  int qmp_fd = -1;
  /// The guest serial console is written here (a file; QEMU appends).
  std::filesystem::path console_log;
  /// Size of config.boot.image in bytes, needed for its nvdimm backend (virtio-pmem rootfs).
  std::uint64_t rootfs_image_bytes = 0;
  std::vector<RootPort> root_ports;
  std::vector<PlannedBlock> block_devices;
  std::vector<PlannedNetwork> network_devices;
  std::vector<PlannedShareFs> share_fs;
};

/// How config.boot.image is attached: "nvdimm" (vm_rootfs_driver virtio-pmem, the x86 default,
/// unless disable_image_nvdimm) or "virtio-blk-pci". Empty when there is no image.
[[nodiscard]] std::string rootfs_attachment(const config::HypervisorConfig& config);

/// The guest kernel command line: upstream's base parameters, the rootfs parameters, the
/// configured kernel_params, the agent's parameters, then console parameters.
[[nodiscard]] std::string kernel_command_line(const VmContext& context);

/// argv[1..] for QEMU (argv[0] is the program path, added by ChildProcess).
///
/// Requirements, checked by the caller (Qemu::prepare_vm) and assumed here: kernel set,
/// machine_type empty or "q35", at most one of initrd/image, memory and vCPU counts adjusted
/// (default_vcpus > 0, default_memory > 0).
[[nodiscard]] std::vector<std::string> build_command_line(const VmContext& context, const LaunchPlan& plan);

}  // namespace kata::hypervisor::qemu
