// An in-memory TaskRuntime and RuntimeFactory for tests of the shim's TaskService and binary
// protocol. It keeps the seam's documented semantics (already_exists for duplicates, not_found
// for unknown ids, failed_precondition when deleting a running process, many waiters, shutdown
// ends every live process with 137) without a VM. Tests make processes exit, report OOMs, hold
// a Create inside the runtime and inject failures.
#pragma once

#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cgroups/v1/metrics.pb.h"
#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"
#include "kata/runtime/task_runtime.hpp"
#include "kata/shim/runtime_factory.hpp"

namespace kata::testing {

class FakeRuntime {
 public:
  FakeRuntime(Executor executor, shim::SandboxSetup setup) : executor_(executor), setup_(std::move(setup)) {}

  // ---- test knobs ----
  /// create_container fails with this code (after creating nothing).
  std::optional<Errc> fail_create;
  /// When set, create_container waits for it before creating (a slow VM boot).
  std::shared_ptr<AsyncEvent> create_gate;
  /// Set when a create_container is waiting on create_gate.
  std::shared_ptr<AsyncEvent> create_entered;
  /// wait_process of these processes fails (container id / exec id).
  std::vector<runtime::ProcessId> failing_waits;
  pid_t vmm_pid = 4242;
  int shutdown_calls = 0;
  std::vector<std::string> calls;  ///< "create c1", "start c1/e1", "kill c1/ 9", ...
  std::vector<std::pair<std::string, std::string>> updates;  ///< container, resources JSON
  std::vector<std::pair<std::uint32_t, std::uint32_t>> resizes;
  std::vector<runtime::ProcessId> closed_stdin;

  [[nodiscard]] const shim::SandboxSetup& setup() const noexcept { return setup_; }

  /// Makes a started process exit with `status` (waiters resume later, on the executor).
  void exit_process(const runtime::ProcessId& id, std::uint32_t status) {
    auto& process = find(id);
    if (process.state.status != runtime::ProcessStatus::running &&
        process.state.status != runtime::ProcessStatus::paused) {
      fail(Errc::failed_precondition, "{} is not running", name(id));
    }
    finish(process, status);
  }

  /// What the guest's OOM notifier would do: report, then the process dies with 137.
  void oom_kill(const std::string& container_id) {
    setup_.on_oom(container_id);
    exit_process(runtime::ProcessId{.container_id = container_id, .exec_id = {}}, 137);
  }

  // ---- TaskRuntime ----
  Task<pid_t> create_container(runtime::CreateContainerRequest request) {
    calls.push_back("create " + request.container_id);
    if (containers_.contains(request.container_id)) {
      fail(Errc::already_exists, "container {} already exists", request.container_id);
    }
    if (create_gate) {
      auto gate = create_gate;
      if (create_entered) create_entered->set();
      co_await gate->wait();
    }
    if (fail_create) fail(*fail_create, "create container {}: injected failure", request.container_id);
    auto& container = containers_[request.container_id];
    container.bundle = request.bundle;
    container.init = make_process(runtime::ProcessId{.container_id = request.container_id, .exec_id = {}},
                                  request.bundle, request.stdio, next_pid_++);
    co_return vmm_pid;
  }

  Task<pid_t> start_process(runtime::ProcessId id) {
    calls.push_back("start " + name(id));
    auto& process = find(id);
    if (process.state.status != runtime::ProcessStatus::created) {
      fail(Errc::failed_precondition, "{} is not in created state", name(id));
    }
    process.state.status = runtime::ProcessStatus::running;
    co_return process.state.pid;
  }

  Task<void> exec_process(runtime::ExecProcessRequest request) {
    calls.push_back("exec " + name(request.process));
    auto& container = find_container(request.process.container_id);
    if (container.execs.contains(request.process.exec_id)) {
      fail(Errc::already_exists, "exec {} already exists", request.process.exec_id);
    }
    if (!nlohmann::json::accept(request.process_spec_json)) {
      fail(Errc::invalid_argument, "exec {}: the process spec is not JSON", request.process.exec_id);
    }
    container.execs.emplace(request.process.exec_id,
                            make_process(request.process, container.bundle, request.stdio, next_pid_++));
    co_return;
  }

  Task<void> kill_process(runtime::ProcessId id, int signal, bool all) {
    calls.push_back(fmt::format("kill {} {}{}", name(id), signal, all ? " all" : ""));
    auto& process = find(id);
    const bool fatal = signal == SIGKILL || signal == SIGTERM;
    if (fatal && is_live(process)) finish(process, static_cast<std::uint32_t>(128 + signal));
    if (fatal && all) {
      for (auto& [exec_id, exec] : find_container(id.container_id).execs) {
        if (is_live(exec)) finish(exec, static_cast<std::uint32_t>(128 + signal));
      }
    }
    co_return;
  }

  Task<runtime::ExitInfo> wait_process(runtime::ProcessId id) {
    for (const auto& failing : failing_waits) {
      if (failing == id) fail(Errc::unavailable, "wait {}: injected agent failure", name(id));
    }
    auto exited = find(id).exited;  // shared: the process may be deleted while we wait
    co_await exited->wait();
    co_return exits_.at(exited.get());
  }

  Task<runtime::ExitInfo> delete_process(runtime::ProcessId id) {
    calls.push_back("delete " + name(id));
    auto& process = find(id);
    if (is_live(process)) fail(Errc::failed_precondition, "{} is still running", name(id));
    runtime::ExitInfo info{.pid = process.state.pid,
                           .exit_status = process.state.exit_status,
                           .exited_at = process.state.exited_at.value_or(std::chrono::system_clock::time_point{})};
    if (id.is_init()) {
      containers_.erase(id.container_id);
    } else {
      find_container(id.container_id).execs.erase(id.exec_id);
    }
    co_return info;
  }

  [[nodiscard]] runtime::ProcessState state_process(const runtime::ProcessId& id) const {
    return const_cast<FakeRuntime*>(this)->find(id).state;
  }

  [[nodiscard]] std::vector<pid_t> container_pids(std::string_view container_id) const {
    auto& container = const_cast<FakeRuntime*>(this)->find_container(std::string(container_id));
    (void)container;
    return {vmm_pid};
  }

  Task<void> pause_container(std::string_view container_id) {
    calls.push_back("pause " + std::string(container_id));
    find_container(std::string(container_id)).init.state.status = runtime::ProcessStatus::paused;
    co_return;
  }

  Task<void> resume_container(std::string_view container_id) {
    calls.push_back("resume " + std::string(container_id));
    find_container(std::string(container_id)).init.state.status = runtime::ProcessStatus::running;
    co_return;
  }

  Task<std::string> stats_container(std::string_view container_id) {
    auto& container = find_container(std::string(container_id));
    io::containerd::cgroups::v1::Metrics metrics;
    metrics.mutable_pids()->set_current(1 + container.execs.size());
    co_return metrics.SerializeAsString();
  }

  Task<void> update_container(std::string_view container_id, std::string resources) {
    find_container(std::string(container_id));
    updates.emplace_back(std::string(container_id), std::move(resources));
    co_return;
  }

  Task<void> close_stdin(runtime::ProcessId id) {
    find(id);
    closed_stdin.push_back(id);
    co_return;
  }

  Task<void> resize_pty(runtime::ProcessId id, std::uint32_t width, std::uint32_t height) {
    find(id);
    resizes.emplace_back(width, height);
    co_return;
  }

  [[nodiscard]] pid_t task_pid() const { return vmm_pid; }

  Task<void> shutdown() {
    ++shutdown_calls;
    calls.push_back("shutdown");
    for (auto& [id, container] : containers_) {
      if (is_live(container.init)) finish(container.init, 137);
      for (auto& [exec_id, exec] : container.execs) {
        if (is_live(exec)) finish(exec, 137);
      }
    }
    co_return;
  }

 private:
  struct Process {
    runtime::ProcessState state;
    std::shared_ptr<AsyncEvent> exited;
  };
  struct Container {
    std::filesystem::path bundle;
    Process init;
    std::map<std::string, Process, std::less<>> execs;
  };

  static std::string name(const runtime::ProcessId& id) { return id.container_id + "/" + id.exec_id; }
  static bool is_live(const Process& process) {
    return process.state.status == runtime::ProcessStatus::running ||
           process.state.status == runtime::ProcessStatus::paused;
  }

  Process make_process(runtime::ProcessId id, std::filesystem::path bundle, runtime::Stdio stdio, pid_t pid) {
    Process process;
    process.state.process = std::move(id);
    process.state.bundle = std::move(bundle);
    process.state.pid = pid;
    process.state.status = runtime::ProcessStatus::created;
    process.state.stdio = std::move(stdio);
    process.exited = std::make_shared<AsyncEvent>(executor_);
    return process;
  }

  void finish(Process& process, std::uint32_t status) {
    process.state.status = runtime::ProcessStatus::stopped;
    process.state.exit_status = status;
    process.state.exited_at = std::chrono::system_clock::now();
    exits_[process.exited.get()] =
        runtime::ExitInfo{.pid = process.state.pid, .exit_status = status, .exited_at = *process.state.exited_at};
    process.exited->set();
  }

  Container& find_container(const std::string& id) {
    auto it = containers_.find(id);
    if (it == containers_.end()) fail(Errc::not_found, "container {} not found", id);
    return it->second;
  }

  Process& find(const runtime::ProcessId& id) {
    auto& container = find_container(id.container_id);
    if (id.is_init()) return container.init;
    auto it = container.execs.find(id.exec_id);
    if (it == container.execs.end()) fail(Errc::not_found, "exec {} not found in {}", id.exec_id, id.container_id);
    return it->second;
  }

  Executor executor_;
  shim::SandboxSetup setup_;
  std::map<std::string, Container, std::less<>> containers_;
  std::map<const AsyncEvent*, runtime::ExitInfo> exits_;
  pid_t next_pid_ = 1000;
};

static_assert(runtime::TaskRuntime<FakeRuntime>);

/// A RuntimeFactory over FakeRuntime. Its state is process-wide (the factory's operations are
/// static, as the binary protocol calls them); tests reset() it.
struct FakeFactory {
  using runtime_type = FakeRuntime;

  struct Control {
    /// create() fails with this code.
    std::optional<Errc> fail_create_runtime;
    /// Applied to every runtime create() builds, before it is returned.
    std::function<void(FakeRuntime&)> configure;
    /// Every runtime built, in order (owned by the service; valid until it is destroyed).
    std::vector<FakeRuntime*> runtimes;
    std::vector<shim::SandboxSetup> setups;
    std::vector<shim::DeleteContext> cleanups;
    /// Called by cleanup_after_dead_shim after recording.
    std::function<void(const shim::DeleteContext&)> on_cleanup;
  };

  static Control& control() {
    static Control instance;
    return instance;
  }
  static void reset() { control() = Control{}; }

  static Task<std::unique_ptr<FakeRuntime>> create(Executor executor, shim::SandboxSetup setup) {
    auto& c = control();
    c.setups.push_back(setup);
    if (c.fail_create_runtime) fail(*c.fail_create_runtime, "create runtime: injected failure");
    auto runtime = std::make_unique<FakeRuntime>(executor, std::move(setup));
    if (c.configure) c.configure(*runtime);
    c.runtimes.push_back(runtime.get());
    co_return runtime;
  }

  static Task<void> cleanup_after_dead_shim(const shim::DeleteContext& context) {
    auto& c = control();
    c.cleanups.push_back(context);
    if (c.on_cleanup) c.on_cleanup(context);
    co_return;
  }
};

static_assert(shim::RuntimeFactory<FakeFactory>);

}  // namespace kata::testing
