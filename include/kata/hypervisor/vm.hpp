// Vocabulary shared by every hypervisor backend and its callers: how the VM is identified, which
// devices it gets, and how the host reaches the guest agent.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "kata/config/schema.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::hypervisor {

// ---------------------------------------------------------------------------------------------
// Agent addresses: where the guest agent's ttRPC server is reachable from the host.

/// vhost-vsock (QEMU on a host with /dev/vhost-vsock): AF_VSOCK connect to (cid, port).
struct VsockAddress {
  std::uint32_t guest_cid = 0;
  std::uint32_t port = 0;
  friend bool operator==(const VsockAddress&, const VsockAddress&) = default;
};

/// Hybrid vsock (Cloud Hypervisor, Firecracker, Dragonball): a unix socket on the host; the
/// client writes "connect <port>\n" and reads an "OK ..." line before the stream is raw.
struct HybridVsockAddress {
  std::filesystem::path socket;
  std::uint32_t port = 0;
  friend bool operator==(const HybridVsockAddress&, const HybridVsockAddress&) = default;
};

/// A virtio-serial port whose QEMU chardev is a unix socket server on the host. Used where
/// vhost-vsock is absent (our lab): one byte stream, ttRPC multiplexes calls on it.
struct SerialPortAddress {
  std::filesystem::path socket;
  friend bool operator==(const SerialPortAddress&, const SerialPortAddress&) = default;
};

/// Remote hypervisor (peer pods): a unix socket returned by the remote service.
struct RemoteAddress {
  std::filesystem::path socket;
  friend bool operator==(const RemoteAddress&, const RemoteAddress&) = default;
};

using AgentAddress = std::variant<VsockAddress, HybridVsockAddress, SerialPortAddress, RemoteAddress>;

/// Upstream-style URL for logs and the management API: vsock://3:1024, hvsock:///run/..:1024,
/// serial:///run/.., remote:///run/...
[[nodiscard]] std::string to_url(const AgentAddress& address);

// ---------------------------------------------------------------------------------------------
// The VM a backend is asked to run.

/// Everything a backend needs to build and own one VM. The config is the adjusted, sized
/// [hypervisor.<name>] section (annotations and static sizing already applied).
struct VmContext {
  std::string sandbox_id;
  /// /run/kata/<sandbox_id>: sockets and per-VM files live here; created by the caller.
  std::filesystem::path state_dir;
  /// Network namespace the VMM runs in (the pod's); empty means the shim's own.
  std::filesystem::path network_namespace;
  config::HypervisorConfig config;
  /// [agent.kata] server_port: where the agent listens inside the guest (vsock port).
  std::uint32_t agent_port = 1024;
  /// Extra guest kernel parameters from the agent configuration (agent.log=debug, ...).
  std::vector<std::string> agent_kernel_params;
};

// ---------------------------------------------------------------------------------------------
// Devices. Passed by value to add_device: the backend takes ownership of any descriptor inside.

struct BlockDevice {
  std::string id;                 ///< unique per sandbox; the backend's device id
  std::filesystem::path path;     ///< file or block device on the host
  bool read_only = false;
  /// virtio-blk-pci, virtio-scsi, virtio-blk-mmio, virtio-pmem (config block_device_driver).
  std::string driver = "virtio-blk-pci";
};

struct NetworkDevice {
  std::string id;
  std::string guest_mac;           ///< the endpoint's (veth's) MAC, so the CNI bridge sees it
  std::string host_interface;      ///< tap name, for logs and state
  std::vector<UniqueFd> tap_fds;   ///< one per queue, opened in the pod netns
};

struct ShareFsDevice {
  enum class Kind { virtio_fs, virtio_9p };
  Kind kind = Kind::virtio_fs;
  std::string mount_tag = "kataShared";
  std::filesystem::path daemon_socket;  ///< virtio-fs: the vhost-user socket of virtiofsd
  std::filesystem::path shared_dir;     ///< virtio-9p: the host directory QEMU serves
  std::uint32_t queue_size = 1024;
};

struct VfioDevice {
  std::string id;
  std::string host_bdf;  ///< "0000:3b:00.0"
};

using Device = std::variant<BlockDevice, NetworkDevice, ShareFsDevice, VfioDevice>;

/// Where an attached device appears in the guest, for the agent's Storage/Device messages.
struct DeviceAttachment {
  std::string id;
  std::string guest_pci_path;  ///< "02/01" (bridge slot / device slot), empty if not PCI
  std::string virt_path;       ///< "/dev/vda" where the backend knows it
};

struct VcpuResize {
  std::uint32_t old_vcpus = 0;
  std::uint32_t new_vcpus = 0;
};

struct MemoryResize {
  std::uint32_t old_mib = 0;
  std::uint32_t new_mib = 0;
};

}  // namespace kata::hypervisor
