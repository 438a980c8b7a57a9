// The seam between the shim v2 TaskService (containerd's wire protocol) and a runtime that runs
// containers (VirtContainer: a VM per pod). The service translates containerd.task.v2 requests
// into these plain types and back; a runtime never sees protobuf task types, and the service
// never sees a VM.
//
// ## TaskRuntime
//
// A type `R` satisfies TaskRuntime if, given `r` (R&), `cr` (const R&), `create`
// (CreateContainerRequest), `exec` (ExecProcessRequest), `process` (const ProcessId&), `container`
// (std::string_view), `signal` (int), `all` (bool), `resources` (std::string: OCI LinuxResources
// JSON), `width`/`height` (std::uint32_t):
//
// | expression | type | semantics |
// |---|---|---|
// | `r.create_container(std::move(create))` | `Task<pid_t>` | Creates the container (the first one boots the sandbox VM). Returns the task pid reported to containerd (the VMM pid). On failure nothing of this container is left behind and the same id can be created again at once. already_exists for a known id. |
// | `r.start_process(process)` | `Task<pid_t>` | Starts the init process or a created exec; starts the stdio copies. not_found for unknown ids. |
// | `r.exec_process(std::move(exec))` | `Task<void>` | Records an exec (started by start_process). already_exists ("exec <id> already exists") for a duplicate exec id; invalid_argument for a malformed process spec. |
// | `r.kill_process(process, signal, all)` | `Task<void>` | Signals the process (all: every process of the container). Killing an already-exited process with SIGKILL/SIGTERM succeeds. |
// | `r.wait_process(process)` | `Task<ExitInfo>` | Completes when the process has exited AND its output has been flushed to the stdio FIFOs. Any number of waiters. If the VM dies, every live process completes with exit status 255 (or 137 when killed). |
// | `r.delete_process(process)` | `Task<ExitInfo>` | Forgets an exited (or never started) process and releases its resources; failed_precondition while it runs. Deleting the last container does not stop the VM; the service decides with shutdown(). |
// | `cr.state_process(process)` | `ProcessState` | Synchronous and non-blocking: never waits behind lifecycle operations (containerd's task.state timeout is 2 s; upstream hung here, kata #13441). not_found for unknown ids. |
// | `cr.container_pids(container)` | `std::vector<pid_t>` | Host-visible pids of the container (the VMM pid). |
// | `r.pause_container(container)`, `r.resume_container(container)` | `Task<void>` | Freezes/thaws the container's processes in the guest. |
// | `r.stats_container(container)` | `Task<std::string>` | Serialized `io.containerd.cgroups.v1.Metrics` (the service wraps it in an Any). |
// | `r.update_container(container, resources)` | `Task<void>` | Applies new OCI LinuxResources (hotplug in dynamic sizing mode, guest cgroups). |
// | `r.close_stdin(process)` | `Task<void>` | Closes the process's stdin once everything written so far has been delivered. |
// | `r.resize_pty(process, width, height)` | `Task<void>` | Resizes the process's terminal. |
// | `cr.task_pid()` | `pid_t` | The VMM pid (Connect's task_pid); -1 before the sandbox runs. |
// | `r.shutdown()` | `Task<void>` | Stops the VM, waits for every background task (the runtime's gate) and releases every host resource (processes, mounts, sockets, state dir). Idempotent; concurrent callers all complete when it is done. |
//
// Events: TaskCreate/TaskStart/TaskDelete are the service's (it knows when a call returned);
// TaskExit is published by the service after it awaited wait_process, which keeps containerd's
// order (start before exit) and exactly-once by construction. OOM is the runtime's: it calls the
// OomHandler given at construction with the container id.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kata/core/asio.hpp"

namespace kata::runtime {

/// A process of the task API: the container's init (exec_id empty) or one of its execs.
struct ProcessId {
  std::string container_id;
  std::string exec_id;
  [[nodiscard]] bool is_init() const noexcept { return exec_id.empty() || exec_id == container_id; }
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

/// containerd's stdio: FIFO paths (or binary:// / file:// logger URIs); empty means none.
struct Stdio {
  std::string stdin_path;
  std::string stdout_path;
  std::string stderr_path;
  bool terminal = false;
};

/// containerd.types.Mount: the container's rootfs layers as containerd prepared them.
struct RootfsMount {
  std::string type;
  std::string source;
  std::string target;
  std::vector<std::string> options;
};

struct CreateContainerRequest {
  std::string container_id;
  std::filesystem::path bundle;  ///< holds config.json (the OCI spec)
  std::vector<RootfsMount> rootfs;
  Stdio stdio;
  /// runtimeoptions.v1.Options.config_path from CreateTaskRequest.options, if any.
  std::string config_path;
};

struct ExecProcessRequest {
  ProcessId process;
  Stdio stdio;
  std::string process_spec_json;  ///< OCI runtime-spec Process, as containerd sends it
};

/// containerd.v1.types.Status values.
enum class ProcessStatus : int { unknown = 0, created = 1, running = 2, stopped = 3, paused = 4, pausing = 5 };

struct ProcessState {
  ProcessId process;
  std::filesystem::path bundle;
  pid_t pid = 0;
  ProcessStatus status = ProcessStatus::unknown;
  Stdio stdio;
  std::uint32_t exit_status = 0;
  std::optional<std::chrono::system_clock::time_point> exited_at;
};

struct ExitInfo {
  pid_t pid = 0;
  std::uint32_t exit_status = 0;
  std::chrono::system_clock::time_point exited_at{};
};

/// Called by a runtime when the guest reports an OOM kill in a container.
using OomHandler = std::function<void(const std::string& container_id)>;

template <class R>
concept TaskRuntime = requires(R& r, const R& cr, CreateContainerRequest create, ExecProcessRequest exec,
                               const ProcessId& process, std::string_view container, int signal, bool all,
                               std::string resources, std::uint32_t width, std::uint32_t height) {
  { r.create_container(std::move(create)) } -> std::same_as<Task<pid_t>>;
  { r.start_process(process) } -> std::same_as<Task<pid_t>>;
  { r.exec_process(std::move(exec)) } -> std::same_as<Task<void>>;
  { r.kill_process(process, signal, all) } -> std::same_as<Task<void>>;
  { r.wait_process(process) } -> std::same_as<Task<ExitInfo>>;
  { r.delete_process(process) } -> std::same_as<Task<ExitInfo>>;
  { cr.state_process(process) } -> std::same_as<ProcessState>;
  { cr.container_pids(container) } -> std::same_as<std::vector<pid_t>>;
  { r.pause_container(container) } -> std::same_as<Task<void>>;
  { r.resume_container(container) } -> std::same_as<Task<void>>;
  { r.stats_container(container) } -> std::same_as<Task<std::string>>;
  { r.update_container(container, std::move(resources)) } -> std::same_as<Task<void>>;
  { r.close_stdin(process) } -> std::same_as<Task<void>>;
  { r.resize_pty(process, width, height) } -> std::same_as<Task<void>>;
  { cr.task_pid() } -> std::same_as<pid_t>;
  { r.shutdown() } -> std::same_as<Task<void>>;
};

}  // namespace kata::runtime
