// The QEMU backend: a type satisfying kata::hypervisor::Hypervisor (hypervisor.hpp documents
// every operation's semantics; this header adds what is specific to QEMU).
//
// QEMU is configured before start: devices added before start_vm are cold-plugged on its command
// line (command_line.hpp), devices added later are hotplugged over QMP (qmp.hpp) onto reserved
// pcie-root-ports. The shim binds the QMP socket itself and hands the listening descriptor to
// QEMU, so there is no window in which QEMU runs but its control socket does not exist yet.
//
// Files under ctx.state_dir (all removed by cleanup(), and by a failed start_vm):
//   qmp.sock        QMP listener (bound by the shim)
//   agent.sock      virtio-serial agent channel (QEMU's chardev server), when there is no vhost-vsock
//   agent-log.sock  the guest log port agent.log.0, with enable_debug and virtio-serial
//   console.log     the guest serial console (kernel output with enable_debug)
//   qemu.log        QEMU's stderr; its tail is quoted in start errors
//
// Not supported (not_supported errors naming qemu): VFIO passthrough, block drivers other than
// virtio-blk-pci, hotplug of shared filesystems, hot-unplug of cold-plugged devices,
// shrinking pc-dimm memory, machine types other than q35.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kata/core/async_mutex.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/hypervisor/capabilities.hpp"
#include "kata/hypervisor/hypervisor.hpp"
#include "kata/hypervisor/qemu/command_line.hpp"
#include "kata/hypervisor/qemu/qmp.hpp"

namespace kata::hypervisor::qemu {

class Qemu {
 public:
  static constexpr std::string_view name = "qemu";
  static constexpr auto capabilities =
      capability_set<capability::block_device, capability::block_device_hotplug, capability::network_hotplug,
                     capability::cpu_hotplug, capability::memory_hotplug, capability::pause_resume,
                     capability::fs_sharing>;

  /// How long stop_vm lets QEMU act on QMP "quit" before SIGKILL.
  static constexpr std::chrono::milliseconds stop_grace{std::chrono::seconds(3)};
  /// How long remove_device waits for the guest to release a device (DEVICE_DELETED).
  static constexpr std::chrono::milliseconds unplug_timeout{std::chrono::seconds(10)};
  /// Hotplugged memory is added in multiples of the x86 guest memory block size.
  static constexpr std::uint32_t memory_block_mib = 128;

  /// Probes the host (HostFeatures::probe) and plans the agent channel: vhost-vsock with a
  /// claimed random CID when /dev/vhost-vsock is usable, virtio-serial otherwise. Never fails:
  /// a vsock device that refuses every CID leaves virtio-serial.
  Qemu(Executor executor, VmContext context);
  /// As above with the host's features given (tests, `kata-ctl check`).
  Qemu(Executor executor, VmContext context, HostFeatures host);
  Qemu(const Qemu&) = delete;
  Qemu& operator=(const Qemu&) = delete;
  /// Kills and reaps a QEMU that is still running; leaves files for cleanup().
  ~Qemu();

  /// Validates the configuration (the QEMU binary, kernel, initrd and image must exist; errors
  /// name the key and the path), creates state_dir if needed and removes leftovers of an earlier
  /// VM with the same id. Errors: invalid_argument, not_found.
  Task<void> prepare_vm();
  Task<DeviceAttachment> add_device(Device device);
  Task<void> remove_device(std::string_view id);
  /// Errors (each after QEMU was killed and reaped and the files above removed): the spawn error;
  /// "qemu exited with ... during startup: <stderr tail>"; deadline_exceeded for `timeout`.
  Task<void> start_vm(std::chrono::milliseconds timeout);
  Task<void> stop_vm();
  Task<ExitStatus> wait_vm();
  Task<void> pause_vm();
  Task<void> resume_vm();
  /// Clamped to [boot vCPUs, default_maxvcpus]: boot vCPUs cannot be unplugged. Unplug is a
  /// request (device_del) the guest completes by ejecting the CPU; under TCG nothing is unplugged
  /// (QEMU 7.2 aborts when a vCPU is plugged again into an emptied slot) and new_vcpus says so.
  Task<VcpuResize> resize_vcpus(std::uint32_t count);
  /// pc-dimm (object-add + device_add) in multiples of memory_block_mib, or the virtio-mem
  /// device's requested-size with enable_virtio_mem. Never below the boot size; at most
  /// default_maxmemory (out_of_range when not even one block fits).
  Task<MemoryResize> resize_memory(std::uint32_t mib);
  Task<std::map<std::uint32_t, pid_t>> vcpu_thread_ids();
  Task<void> cleanup();

  /// Runs a read-only QMP query ("query-status", "query-pci", ...) for diagnostics and the
  /// management API. invalid_argument for commands not named query-*.
  Task<nlohmann::json> query(std::string command);

  [[nodiscard]] AgentAddress agent_address() const;
  [[nodiscard]] bool is_running() const;
  [[nodiscard]] pid_t vmm_pid() const;
  [[nodiscard]] std::vector<pid_t> pids() const;
  /// {"hypervisor_type": "qemu", "id", "pid", "pid_start_time" (/proc/<pid>/stat field 22, so
  /// `shim delete` never kills a recycled pid), "state_dir", "netns", "sockets": {...}}.
  [[nodiscard]] nlohmann::json save_state() const;

  [[nodiscard]] const VmContext& context() const noexcept { return context_; }

 private:
  enum class Phase { created, prepared, starting, running, stopped };
  struct Runtime;

  struct QueuedNetwork {
    PlannedNetwork plan;
    std::vector<UniqueFd> tap_fds;
  };
  /// A device added after start, and what removing it must undo.
  struct Hotplugged {
    enum class Kind { block, network } kind;
    std::string qdev_id;
    std::string backend_id;  ///< block node or netdev
    std::size_t root_port;
  };

  void require_running(std::string_view operation) const;
  [[nodiscard]] unsigned take_cold_slot(std::string_view id);
  [[nodiscard]] std::vector<std::filesystem::path> owned_files() const;
  [[nodiscard]] bool shares_memory() const;
  Task<DeviceAttachment> queue_device(Device device, const std::string& id);
  Task<DeviceAttachment> hotplug_block(BlockDevice device, std::string id);
  Task<DeviceAttachment> hotplug_network(NetworkDevice device, std::string id);
  Task<void> launch(std::chrono::steady_clock::time_point deadline);
  void remove_files() noexcept;
  static Task<void> watch_exit(std::shared_ptr<Runtime> runtime, Executor executor);

  Executor executor_;
  VmContext context_;
  HostFeatures host_;
  AgentChannel channel_;
  UniqueFd vhost_vsock_;
  Phase phase_ = Phase::created;

  std::filesystem::path qmp_socket_;
  std::filesystem::path console_log_;
  std::filesystem::path stderr_log_;

  std::set<std::string, std::less<>> ids_;
  std::uint32_t next_number_ = 0;
  unsigned next_cold_slot_ = first_cold_plug_slot;
  std::vector<RootPort> root_ports_;
  std::vector<bool> root_port_busy_;
  std::vector<PlannedBlock> cold_blocks_;
  std::vector<QueuedNetwork> cold_networks_;
  std::vector<PlannedShareFs> cold_share_fs_;
  /// Caller id -> QEMU id of each cold-plugged device.
  std::map<std::string, std::string, std::less<>> cold_devices_;
  std::uint64_t rootfs_image_bytes_ = 0;
  std::map<std::string, Hotplugged, std::less<>> hotplugged_;

  /// Serialises multi-command QMP sequences (hotplug, resize) so two of them never race for the
  /// same CPU slot or DIMM; each single command is already atomic in QmpClient.
  AsyncMutex sequence_lock_;
  std::uint32_t dimm_count_ = 0;
  std::uint32_t hotplugged_mib_ = 0;

  std::shared_ptr<Runtime> runtime_;
};

static_assert(Hypervisor<Qemu>);

}  // namespace kata::hypervisor::qemu
