// The containerd.task.v2.Task service: containerd's task API on top of a TaskRuntime.
//
// One TaskService serves one shim (one sandbox). It creates the runtime through the
// RuntimeFactory on the first Create, translates every request into the runtime seam's plain
// types (messages.hpp) and publishes the task events containerd expects, in containerd's order.
//
// RPCs (containerd runtime/v2/task/shim.proto; runtime-rs crates/service):
//
// | RPC | runtime call | reply / event |
// |---|---|---|
// | Create | first: Factory::create, then create_container | {pid}; /tasks/create |
// | Start | start_process | {pid}; /tasks/start (init) or /tasks/exec-started (exec), then a watcher awaits wait_process and publishes /tasks/exit |
// | Delete | delete_process | {pid, exit_status, exited_at}; /tasks/delete for an init process |
// | Exec | exec_process | Empty; /tasks/exec-added |
// | State | state_process (synchronous) | StateResponse |
// | Pids | container_pids (synchronous) | one ProcessInfo per pid |
// | Pause / Resume | pause_container / resume_container | Empty; /tasks/paused, /tasks/resumed |
// | Kill | kill_process | Empty |
// | ResizePty | resize_pty | Empty |
// | CloseIO | close_stdin when stdin is set | Empty |
// | Update | update_container (resources JSON) | Empty |
// | Wait | wait_process | {exit_status, exited_at} |
// | Stats | stats_container | Any{"io.containerd.cgroups.v1.Metrics", ...} |
// | Connect | task_pid | {shim_pid = getpid(), task_pid} |
// | Shutdown | stop() (bounded at 10 s) before the reply, when it exits | Empty; exits when `now` or no container remains |
// | Checkpoint | none | Unimplemented |
//
// Errors: a failure reaches containerd as the ttRPC status of its kata::Errc (NotFound for an
// unknown id, AlreadyExists for a duplicate, InvalidArgument for a malformed request,
// Unimplemented for Checkpoint) with the whole context chain as message. A malformed request
// never affects other calls: the service keeps serving.
//
// Event order, per process, by construction:
//   - TaskCreate is queued when create_container returned, before the reply;
//   - TaskStart / TaskExecStarted is queued when start_process returned, and only then is the
//     exit watcher spawned, so TaskExit can only follow it;
//   - TaskExit is published by that one watcher, exactly once per started process; an init
//     process's exit waits for the exits of the container's started execs (containerd's rule:
//     the init exit is the container's last);
//   - Delete of a started process waits until its TaskExit was queued before queuing TaskDelete.
//   A failing wait_process still yields one TaskExit (status 255), so containerd never waits
//   for an exit that will not come.
//
// Concurrency: everything runs on one executor. Read-only RPCs (State, Pids, Connect, and Stats
// apart from its runtime call) take no lock and never wait behind a lifecycle operation; the
// only lock is held by the first Create while the runtime is being built, and only other
// Creates (and stop()) wait for it.
//
// Lifetime: create with std::make_shared (handlers and watchers share ownership). stop() must
// complete before the executor's io_context is destroyed.
#pragma once

#include <chrono>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "kata/core/async_event.hpp"
#include "kata/core/async_mutex.hpp"
#include "kata/core/gate.hpp"
#include "kata/log/log.hpp"
#include "kata/shim/events.hpp"
#include "kata/shim/runtime_factory.hpp"

namespace kata::shim {

struct TaskServiceOptions {
  /// The shim's -id (the sandbox id).
  std::string sandbox_id;
  /// The shim's -namespace.
  std::string namespace_name;
  /// config_path that `start` read from its stdin; used when a Create carries no options.
  std::string default_config_path;
};

template <RuntimeFactory Factory>
class TaskService final : public containerd::task::v2::Task,
                          public std::enable_shared_from_this<TaskService<Factory>> {
 public:
  using runtime_type = typename Factory::runtime_type;

  TaskService(Executor executor, TaskServiceOptions options, std::shared_ptr<EventPublisher> events,
              log::Logger logger = log::Logger("service"));
  TaskService(const TaskService&) = delete;
  TaskService& operator=(const TaskService&) = delete;
  ~TaskService() override = default;

  // containerd.task.v2.Task. Requests stay valid until the returned task completes.
  kata::Task<containerd::task::v2::StateResponse> state(const containerd::task::v2::StateRequest& request,
                                                  const ttrpc::CallContext& context) override;
  kata::Task<containerd::task::v2::CreateTaskResponse> create(const containerd::task::v2::CreateTaskRequest& request,
                                                        const ttrpc::CallContext& context) override;
  kata::Task<containerd::task::v2::StartResponse> start(const containerd::task::v2::StartRequest& request,
                                                  const ttrpc::CallContext& context) override;
  kata::Task<containerd::task::v2::DeleteResponse> delete_(const containerd::task::v2::DeleteRequest& request,
                                                     const ttrpc::CallContext& context) override;
  kata::Task<containerd::task::v2::PidsResponse> pids(const containerd::task::v2::PidsRequest& request,
                                                const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> pause(const containerd::task::v2::PauseRequest& request,
                                      const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> resume(const containerd::task::v2::ResumeRequest& request,
                                       const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> checkpoint(const containerd::task::v2::CheckpointTaskRequest& request,
                                           const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> kill(const containerd::task::v2::KillRequest& request,
                                     const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> exec(const containerd::task::v2::ExecProcessRequest& request,
                                     const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> resize_pty(const containerd::task::v2::ResizePtyRequest& request,
                                           const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> close_io(const containerd::task::v2::CloseIORequest& request,
                                         const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> update(const containerd::task::v2::UpdateTaskRequest& request,
                                       const ttrpc::CallContext& context) override;
  kata::Task<containerd::task::v2::WaitResponse> wait(const containerd::task::v2::WaitRequest& request,
                                                const ttrpc::CallContext& context) override;
  kata::Task<containerd::task::v2::StatsResponse> stats(const containerd::task::v2::StatsRequest& request,
                                                  const ttrpc::CallContext& context) override;
  kata::Task<containerd::task::v2::ConnectResponse> connect(const containerd::task::v2::ConnectRequest& request,
                                                      const ttrpc::CallContext& context) override;
  kata::Task<google::protobuf::Empty> shutdown(const containerd::task::v2::ShutdownRequest& request,
                                         const ttrpc::CallContext& context) override;

  /// Completes once the shim should exit: a Shutdown RPC with `now` or with no container left,
  /// or request_shutdown().
  [[nodiscard]] kata::Task<void> wait_for_shutdown_request();
  /// Asks the serve loop to exit (SIGINT during development, tests).
  void request_shutdown() noexcept;
  [[nodiscard]] bool shutdown_requested() const noexcept { return shutdown_requested_.is_set(); }

  /// Refuses new Creates, shuts the runtime down (its live processes exit, and their watchers
  /// publish TaskExit) and waits until every watcher finished. Idempotent; completes when the
  /// runtime's shutdown() completed.
  [[nodiscard]] kata::Task<void> stop();

  /// The runtime once the first Create built it; nullptr before (and after a failed first
  /// Create). For tests and diagnostics.
  [[nodiscard]] runtime_type* runtime() const noexcept { return runtime_.get(); }

  /// Containers created and not yet deleted.
  [[nodiscard]] std::size_t container_count() const noexcept { return containers_.size(); }

 private:
  using ProcessKey = std::pair<std::string, std::string>;  // container id, exec id

  [[nodiscard]] std::shared_ptr<runtime_type> require_runtime(const std::string& container_id) const;
  [[nodiscard]] static ProcessKey key_of(const runtime::ProcessId& process);
  [[nodiscard]] SandboxSetup sandbox_setup(const runtime::CreateContainerRequest& request) const;
  kata::Task<void> watch_exit(std::shared_ptr<runtime_type> instance, runtime::ProcessId process, pid_t pid,
                        std::shared_ptr<AsyncEvent> published);

  Executor executor_;
  TaskServiceOptions options_;
  std::shared_ptr<EventPublisher> events_;
  log::Logger logger_;

  std::shared_ptr<runtime_type> runtime_;
  AsyncMutex creation_mutex_;
  std::set<std::string, std::less<>> containers_;
  std::set<std::string, std::less<>> creating_;
  /// One entry per started process until it is deleted: set once its TaskExit was queued.
  std::map<ProcessKey, std::shared_ptr<AsyncEvent>> exits_;
  Gate watchers_;
  // How long a Shutdown reply waits for the sandbox to be gone (the serve loop bounds stop()
  // at 10 s as well).
  static constexpr std::chrono::seconds shutdown_reply_bound{10};
  static kata::Task<void> stop_owned(std::shared_ptr<TaskService> self);

  AsyncEvent shutdown_requested_;
  bool stopping_ = false;
  AsyncEvent stopped_;
};

}  // namespace kata::shim

#include "kata/shim/impl/task_service.hpp"
