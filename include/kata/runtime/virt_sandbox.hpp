// VirtContainer: every pod in its own VM. VirtSandbox<H, T> is the TaskRuntime a variant's shim
// drives; H is its hypervisor backend (a Hypervisor), T the agent transports it can dial (an
// AgentTransport). Both are fixed at compile time, per variant binary.
//
// Lifecycle (one state machine per sandbox):
//
//   created --first create_container--> starting --VM up, agent ready, CreateSandbox--> running
//   running --shutdown() or VMM death--> stopping --> stopped
//
// A failed start rolls everything back (VMM, virtiofsd, mounts, state dir) before the error
// reaches containerd, and the sandbox returns to `created`, so the same id can be used again at
// once (upstream leaked shims and names here, kata #9597, #11496).
//
// Concurrency: one executor. Lifecycle operations (create, start, delete, shutdown) take the
// lifecycle mutex; state reads (state_process, container_pids, task_pid) never do, so they answer
// while a boot is in progress. All background work (VMM watcher, OOM loop, stdio copies, exit
// waiters) runs inside the sandbox's gate, which shutdown() closes and drains.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kata/agent/kata_agent.hpp"
#include "kata/agent/transport.hpp"
#include "kata/config/schema.hpp"
#include "kata/core/async_event.hpp"
#include "kata/core/async_mutex.hpp"
#include "kata/core/gate.hpp"
#include "kata/core/mount.hpp"
#include "kata/hypervisor/hypervisor.hpp"
#include "kata/oci/spec.hpp"
#include "kata/persist/store.hpp"
#include "kata/resource/cgroups/sandbox_cgroups.hpp"
#include "kata/resource/cpu_mem/dynamic_resources.hpp"
#include "kata/resource/network/network.hpp"
#include "kata/resource/rootfs/block_rootfs.hpp"
#include "kata/resource/share_fs/shared_fs.hpp"
#include "kata/resource/volume/volumes.hpp"
#include "kata/runtime/process_io.hpp"
#include "kata/runtime/task_runtime.hpp"

namespace kata::runtime {

/// Everything a sandbox is built from (the factory computes it from config.json + TOML).
struct VirtSandboxSettings {
  std::string sandbox_id;
  /// containerd namespace (logging drivers get it as CONTAINER_NAMESPACE).
  std::string namespace_name;
  /// Loaded, annotated and sized configuration.
  config::Config config;
  /// /run/kata: the sandbox's state directory is <state_root>/<sandbox_id>.
  std::filesystem::path state_root = "/run/kata";
  /// Root of the shared directories (resource::host_shared_root in production).
  std::filesystem::path shared_root{resource::host_shared_root};
  /// The pod's network namespace (empty: the shim's own).
  std::filesystem::path network_namespace;
  std::string hostname;
  std::vector<std::string> dns;
  /// Size of the sandbox's /dev/shm tmpfs in the guest (resource::sandbox_shm_size of the
  /// sandbox container's spec).
  std::uint64_t shm_size = resource::default_shm_size;
  // --- cgroups ---
  /// The sandbox spec's linux.cgroupsPath (empty: kata_sandboxed_pod/<sandbox_id>).
  std::string cgroups_path;
  /// Whether the sandbox places its host processes in cgroups (kata/resource/cgroups/); the
  /// shim sets it, tests of the runtime that must not move the test process leave it off.
  bool host_cgroups = false;
  // --- end cgroups ---
  /// How long booting may take, VM start to agent ready.
  std::chrono::milliseconds boot_timeout{60'000};
  OomHandler on_oom;
};

/// Spec changes every container needs before it goes to the agent (upstream's amend_spec): the
/// rootfs becomes the shared guest path, only startContainer hooks remain (the others run on the
/// host), network/pid/time namespace entries go (the agent places the container in the
/// sandbox's), other namespace paths are host paths and are cleared, device and pids cgroup
/// rules are the guest's business, and guest seccomp is dropped when disabled.
void amend_container_spec(oci::Spec& spec, const std::string& guest_rootfs, const config::RuntimeConfig& runtime);

/// The io.containerd.cgroups.v1.Metrics that containerd's Stats expects, from the agent's stats.
[[nodiscard]] std::string metrics_from_agent_stats(const grpc::StatsContainerResponse& stats);

template <hypervisor::Hypervisor H, agent::AgentTransport T>
class VirtSandbox {
 public:
  VirtSandbox(Executor executor, VirtSandboxSettings settings);
  VirtSandbox(const VirtSandbox&) = delete;
  VirtSandbox& operator=(const VirtSandbox&) = delete;
  /// shutdown() must have completed (the gate asserts it); the destructor releases what remains
  /// synchronously as a last resort.
  ~VirtSandbox();

  // TaskRuntime
  Task<pid_t> create_container(CreateContainerRequest request);
  Task<pid_t> start_process(const ProcessId& process);
  Task<void> exec_process(ExecProcessRequest request);
  Task<void> kill_process(const ProcessId& process, int signal, bool all);
  Task<ExitInfo> wait_process(const ProcessId& process);
  Task<ExitInfo> delete_process(const ProcessId& process);
  [[nodiscard]] ProcessState state_process(const ProcessId& process) const;
  [[nodiscard]] std::vector<pid_t> container_pids(std::string_view container) const;
  Task<void> pause_container(std::string_view container);
  Task<void> resume_container(std::string_view container);
  Task<std::string> stats_container(std::string_view container);
  Task<void> update_container(std::string_view container, std::string resources);
  Task<void> close_stdin(const ProcessId& process);
  Task<void> resize_pty(const ProcessId& process, std::uint32_t width, std::uint32_t height);
  [[nodiscard]] pid_t task_pid() const;
  Task<void> shutdown();

  /// The backend, for tests and the management API.
  [[nodiscard]] H& hypervisor() noexcept { return vm_; }

 private:
  enum class State { created, starting, running, stopping, stopped };

  struct Process {
    ProcessId id;
    Stdio stdio;
    ProcessStatus status = ProcessStatus::created;
    std::string exec_spec_json;  // execs only
    std::optional<ExitInfo> exit;
    std::unique_ptr<AsyncEvent> exited;
    std::shared_ptr<ProcessIo> io;
  };
  using ProcessPtr = std::shared_ptr<Process>;

  struct Container {
    std::string id;
    std::filesystem::path bundle;
    ProcessPtr init;
    std::map<std::string, ProcessPtr, std::less<>> execs;
    ScopedMount rootfs_layer;  // containerd's snapshot mounted at <bundle>/rootfs, if given
    resource::SharedPath rootfs_share;
    // --- volumes (resource/volume) ---
    resource::ContainerVolumes volumes;        // holds the container's shares
    std::vector<std::string> attached_devices;  // block/direct volumes, detached after RemoveContainer
    // --- end volumes ---
  };

  Task<void> ensure_running();
  Task<void> boot();
  Task<void> release_vm_resources() noexcept;
  Task<void> watch_vmm(std::uint64_t generation);
  Task<void> watch_oom(std::uint64_t generation);
  void vm_gone() noexcept;
  void persist_state();
  Task<void> run_process(ProcessPtr process);
  void finish_process(Process& process, std::uint32_t status) noexcept;
  [[nodiscard]] Container& find_container(std::string_view id);
  [[nodiscard]] const Container& find_container(std::string_view id) const;
  [[nodiscard]] const ProcessPtr& find_process(const ProcessId& id) const;
  [[nodiscard]] agent::KataAgent& agent();
  [[nodiscard]] static ProcessPtr make_process(ProcessId id, Stdio stdio, Executor executor);
  // --- volumes (resource/volume) ---
  Task<void> attach_block_volumes(resource::ContainerVolumes& volumes, std::vector<std::string>& attached);
  Task<void> detach_block_volumes(std::vector<std::string> attached) noexcept;
  // --- end volumes ---

  Executor executor_;
  VirtSandboxSettings settings_;
  std::filesystem::path state_dir_;
  persist::Store store_;
  H vm_;
  Gate gate_;
  AsyncMutex lifecycle_;
  State state_ = State::created;
  std::optional<resource::SharedFs> shared_fs_;
  std::optional<resource::VolumeManager> volumes_;  // volumes (resource/volume); refers to shared_fs_
  resource::network::PodNetwork network_;  // [network] the pod netns's NICs (docs/network.md)
  std::optional<agent::KataAgent> agent_;
  bool state_dir_created_ = false;
  std::uint64_t generation_ = 0;  // boot attempts; watchers of an old attempt ignore its VMM's exit
  std::map<std::string, std::unique_ptr<Container>, std::less<>> containers_;
  std::optional<AsyncEvent> shutdown_done_;
  // --- cpu_mem: dynamic sizing (kata/resource/cpu_mem/dynamic_resources.hpp) ---
  resource::cpu_mem::DynamicResources<H> cpu_mem_;
  /// Gives a container's CPU/memory limits back to the sizing policy after it is gone (or its
  /// creation failed). Never throws: a failed shrink is logged, the VM keeps its size.
  Task<void> release_container_resources(const std::string& container) noexcept;
  // --- end cpu_mem ---
  // --- cgroups ---
  std::optional<resource::cgroups::SandboxCgroups> cgroups_;
  /// Creates the pod's cgroups and moves the shim in (so virtiofsd and the VMM start there).
  void enter_cgroups();
  /// Moves the shim back and removes the cgroups; never throws.
  void leave_cgroups() noexcept;
  // --- end cgroups ---
};

}  // namespace kata::runtime

#include "kata/runtime/impl/virt_sandbox.hpp"
