// Template bodies of kata/shim/task_service.hpp.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <optional>
#include <vector>

#include "kata/core/error.hpp"
#include "kata/shim/messages.hpp"

namespace kata::shim {

namespace detail {

/// Logs a failed RPC: NotFound is routine (containerd probes), anything else is worth a warning.
inline void log_rpc_failure(const log::Logger& logger, std::string_view rpc, const std::string& id,
                            const std::string& exec_id, const std::exception_ptr& error) {
  const auto level = code_of(error) == Errc::not_found ? log::Level::debug : log::Level::warning;
  logger.log(level, "{} id={} exec_id={} failed: {}", rpc, id, exec_id, describe(error));
}

}  // namespace detail

template <RuntimeFactory Factory>
TaskService<Factory>::TaskService(Executor executor, TaskServiceOptions options, std::shared_ptr<EventPublisher> events,
                                  log::Logger logger)
    : executor_(executor),
      options_(std::move(options)),
      events_(std::move(events)),
      logger_(std::move(logger)),
      creation_mutex_(executor),
      watchers_(executor, "task service"),
      shutdown_requested_(executor),
      stopped_(executor) {}

template <RuntimeFactory Factory>
auto TaskService<Factory>::require_runtime(const std::string& container_id) const -> std::shared_ptr<runtime_type> {
  if (!runtime_) fail(Errc::not_found, "container {} not found", container_id);
  return runtime_;
}

template <RuntimeFactory Factory>
auto TaskService<Factory>::key_of(const runtime::ProcessId& process) -> ProcessKey {
  return {process.container_id, process.is_init() ? std::string() : process.exec_id};
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::StateResponse> TaskService<Factory>::state(
    const containerd::task::v2::StateRequest& request, const ttrpc::CallContext&) {
  try {
    const auto process = process_id("state", request.id(), request.exec_id());
    const auto instance = require_runtime(request.id());
    co_return to_state_response(std::as_const(*instance).state_process(process));
  } catch (...) {
    detail::log_rpc_failure(logger_, "state", request.id(), request.exec_id(), std::current_exception());
    throw;
  }
}

template <RuntimeFactory Factory>
SandboxSetup TaskService<Factory>::sandbox_setup(const runtime::CreateContainerRequest& request) const {
  SandboxSetup setup;
  setup.sandbox_id = options_.sandbox_id;
  setup.bundle = request.bundle;
  setup.namespace_name = options_.namespace_name;
  setup.config_path = request.config_path.empty() ? options_.default_config_path : request.config_path;
  // Weak: a runtime (or a copy of its setup) must not keep the publisher alive past the serve
  // loop, whose io_context the publisher's timers belong to.
  setup.on_oom = [events = std::weak_ptr<EventPublisher>(events_)](const std::string& container_id) {
    if (auto publisher = events.lock()) publisher->publish(topic::task_oom, task_oom_event(container_id));
  };
  return setup;
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::CreateTaskResponse> TaskService<Factory>::create(
    const containerd::task::v2::CreateTaskRequest& request, const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    auto converted = to_create_request(request);
    if (stopping_) fail(Errc::unavailable, "create {}: the shim is shutting down", request.id());
    if (containers_.contains(request.id()) || creating_.contains(request.id())) {
      fail(Errc::already_exists, "container {} already exists", request.id());
    }
    creating_.insert(request.id());
    std::shared_ptr<runtime_type> instance = runtime_;
    // The first Create builds the runtime and creates its container under the creation lock:
    // a concurrent Create (a pod container racing its sandbox) waits for the sandbox instead of
    // finding a runtime that is still booting. Nothing read-only ever takes this lock.
    std::optional<AsyncMutex::Lock> first_create;
    bool built_here = false;
    pid_t pid = -1;
    std::exception_ptr create_failure;
    try {
      if (!instance) {
        first_create.emplace(co_await creation_mutex_.lock());
        instance = runtime_;
        if (stopping_) fail(Errc::unavailable, "create {}: the shim is shutting down", request.id());
        if (!instance) {
          logger_.info("creating the runtime for sandbox {}", options_.sandbox_id);
          auto setup = sandbox_setup(converted);
          std::unique_ptr<runtime_type> built = co_await Factory::create(executor_, std::move(setup));
          if (!built) fail(Errc::internal, "create {}: the runtime factory returned no runtime", request.id());
          instance = std::shared_ptr<runtime_type>(std::move(built));
          runtime_ = instance;
          built_here = true;
        }
      }
      pid = co_await instance->create_container(std::move(converted));
    } catch (...) {
      create_failure = std::current_exception();
    }
    creating_.erase(request.id());
    if (create_failure) {
      // A runtime built for this Create holds nothing else: tear it down, so that a retry (the
      // same id, at once) starts from scratch instead of inheriting a half-made sandbox.
      if (built_here && containers_.empty()) {
        logger_.warn("first container {} failed; shutting the new runtime down", request.id());
        try {
          co_await instance->shutdown();
        } catch (const std::exception& error) {
          logger_.error("shutting down the runtime after a failed create: {}", describe(error));
        }
        if (runtime_ == instance) runtime_.reset();
      }
      std::rethrow_exception(create_failure);
    }
    containers_.insert(request.id());
    events_->publish(topic::task_create, task_create_event(request, pid));
    containerd::task::v2::CreateTaskResponse response;
    response.set_pid(static_cast<std::uint32_t>(std::max<pid_t>(pid, 0)));
    co_return response;
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "create", request.id(), "", failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::StartResponse> TaskService<Factory>::start(
    const containerd::task::v2::StartRequest& request, const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    const auto process = process_id("start", request.id(), request.exec_id());
    const auto instance = require_runtime(request.id());
    const auto key = key_of(process);
    if (exits_.contains(key)) {
      fail(Errc::failed_precondition, "start {}: the process was already started", key.second.empty() ? key.first : key.second);
    }
    // Claimed before the first suspension, so a concurrent duplicate Start cannot spawn a
    // second watcher (and a second TaskExit).
    auto published = std::make_shared<AsyncEvent>(executor_);
    exits_.emplace(key, published);
    pid_t pid = -1;
    std::exception_ptr start_failure;
    try {
      pid = co_await instance->start_process(process);
    } catch (...) {
      start_failure = std::current_exception();
    }
    if (start_failure) {
      exits_.erase(key);
      std::rethrow_exception(start_failure);
    }
    if (process.is_init()) {
      events_->publish(topic::task_start, task_start_event(process, pid));
    } else {
      events_->publish(topic::task_exec_started, task_exec_started_event(process, pid));
    }
    try {
      watchers_.spawn(watch_exit(instance, process, pid, published), [logger = logger_](std::exception_ptr error) {
        logger.error("exit watcher failed: {}", describe(error));
      });
    } catch (const std::exception& error) {
      // Only during stop(): the runtime is going away and reports no exit any more.
      logger_.warn("start {}: not watching the process's exit: {}", request.id(), describe(error));
    }
    containerd::task::v2::StartResponse response;
    response.set_pid(static_cast<std::uint32_t>(std::max<pid_t>(pid, 0)));
    co_return response;
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "start", request.id(), request.exec_id(), failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<void> TaskService<Factory>::watch_exit(std::shared_ptr<runtime_type> instance, runtime::ProcessId process,
                                                  pid_t pid, std::shared_ptr<AsyncEvent> published) {
  runtime::ExitInfo exit;
  std::exception_ptr failure;
  try {
    exit = co_await instance->wait_process(process);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    // containerd waits for this event; an unknown end is reported as 255, like upstream.
    logger_.error("waiting for {} {} failed, reporting exit 255: {}", process.container_id, process.exec_id,
                  describe(failure));
    exit = runtime::ExitInfo{.pid = pid, .exit_status = 255, .exited_at = std::chrono::system_clock::now()};
  }
  if (process.is_init()) {
    std::vector<std::shared_ptr<AsyncEvent>> execs;
    for (const auto& [key, event] : exits_) {
      if (key.first == process.container_id && !key.second.empty() && !event->is_set()) execs.push_back(event);
    }
    for (const auto& event : execs) co_await event->wait();
  }
  events_->publish(topic::task_exit, task_exit_event(process, exit));
  published->set();
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::DeleteResponse> TaskService<Factory>::delete_(
    const containerd::task::v2::DeleteRequest& request, const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    const auto process = process_id("delete", request.id(), request.exec_id());
    const auto instance = require_runtime(request.id());
    const auto key = key_of(process);
    std::shared_ptr<AsyncEvent> published;
    if (auto it = exits_.find(key); it != exits_.end()) published = it->second;
    // An exited process's TaskExit may still be on its way (its watcher has not resumed yet):
    // TaskDelete must not overtake it.
    if (published && !published->is_set() &&
        std::as_const(*instance).state_process(process).status == runtime::ProcessStatus::stopped) {
      co_await published->wait();
    }
    const runtime::ExitInfo exit = co_await instance->delete_process(process);
    if (published && !published->is_set()) co_await published->wait();
    exits_.erase(key);
    if (process.is_init()) {
      std::erase_if(exits_, [&](const auto& entry) { return entry.first.first == process.container_id; });
      containers_.erase(process.container_id);
      events_->publish(topic::task_delete, task_delete_event(process.container_id, exit));
    }
    co_return to_delete_response(exit);
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "delete", request.id(), request.exec_id(), failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::PidsResponse> TaskService<Factory>::pids(
    const containerd::task::v2::PidsRequest& request, const ttrpc::CallContext&) {
  try {
    if (request.id().empty()) fail(Errc::invalid_argument, "pids: id must not be empty");
    const auto instance = require_runtime(request.id());
    containerd::task::v2::PidsResponse response;
    for (pid_t pid : std::as_const(*instance).container_pids(request.id())) {
      response.add_processes()->set_pid(static_cast<std::uint32_t>(pid));
    }
    co_return response;
  } catch (...) {
    detail::log_rpc_failure(logger_, "pids", request.id(), "", std::current_exception());
    throw;
  }
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::pause(const containerd::task::v2::PauseRequest& request,
                                                                const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    if (request.id().empty()) fail(Errc::invalid_argument, "pause: id must not be empty");
    const auto instance = require_runtime(request.id());
    co_await instance->pause_container(request.id());
    events_->publish(topic::task_paused, task_paused_event(request.id()));
    co_return google::protobuf::Empty();
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "pause", request.id(), "", failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::resume(const containerd::task::v2::ResumeRequest& request,
                                                                 const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    if (request.id().empty()) fail(Errc::invalid_argument, "resume: id must not be empty");
    const auto instance = require_runtime(request.id());
    co_await instance->resume_container(request.id());
    events_->publish(topic::task_resumed, task_resumed_event(request.id()));
    co_return google::protobuf::Empty();
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "resume", request.id(), "", failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::checkpoint(
    const containerd::task::v2::CheckpointTaskRequest& request, const ttrpc::CallContext&) {
  logger_.debug("checkpoint id={} refused: not supported", request.id());
  fail(Errc::not_supported, "checkpoint {}: checkpoint is not supported by kata", request.id());
  co_return google::protobuf::Empty();
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::kill(const containerd::task::v2::KillRequest& request,
                                                               const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    const auto process = process_id("kill", request.id(), request.exec_id());
    const auto instance = require_runtime(request.id());
    co_await instance->kill_process(process, static_cast<int>(request.signal()), request.all());
    co_return google::protobuf::Empty();
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "kill", request.id(), request.exec_id(), failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::exec(const containerd::task::v2::ExecProcessRequest& request,
                                                               const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    auto converted = to_exec_request(request);
    const auto instance = require_runtime(request.id());
    const auto process = converted.process;
    co_await instance->exec_process(std::move(converted));
    events_->publish(topic::task_exec_added, task_exec_added_event(process));
    co_return google::protobuf::Empty();
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "exec", request.id(), request.exec_id(), failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::resize_pty(
    const containerd::task::v2::ResizePtyRequest& request, const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    const auto process = process_id("resize_pty", request.id(), request.exec_id());
    const auto instance = require_runtime(request.id());
    co_await instance->resize_pty(process, request.width(), request.height());
    co_return google::protobuf::Empty();
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "resize_pty", request.id(), request.exec_id(), failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::close_io(const containerd::task::v2::CloseIORequest& request,
                                                                   const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    const auto process = process_id("close_io", request.id(), request.exec_id());
    const auto instance = require_runtime(request.id());
    if (request.stdin()) co_await instance->close_stdin(process);
    co_return google::protobuf::Empty();
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "close_io", request.id(), request.exec_id(), failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::update(const containerd::task::v2::UpdateTaskRequest& request,
                                                                 const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    if (request.id().empty()) fail(Errc::invalid_argument, "update: id must not be empty");
    if (!request.has_resources() || request.resources().value().empty()) {
      fail(Errc::invalid_argument, "update {}: the request carries no resources", request.id());
    }
    const auto instance = require_runtime(request.id());
    std::string resources = request.resources().value();
    co_await instance->update_container(request.id(), std::move(resources));
    co_return google::protobuf::Empty();
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "update", request.id(), "", failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::WaitResponse> TaskService<Factory>::wait(
    const containerd::task::v2::WaitRequest& request, const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    const auto process = process_id("wait", request.id(), request.exec_id());
    const auto instance = require_runtime(request.id());
    const runtime::ExitInfo exit = co_await instance->wait_process(process);
    // Reply after the TaskExit was queued: a client that deletes as soon as Wait returns then
    // sees the events in containerd's order.
    if (auto it = exits_.find(key_of(process)); it != exits_.end()) {
      const auto published = it->second;
      co_await published->wait();
    }
    containerd::task::v2::WaitResponse response;
    response.set_exit_status(exit.exit_status);
    set_timestamp(*response.mutable_exited_at(), exit.exited_at);
    co_return response;
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "wait", request.id(), request.exec_id(), failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::StatsResponse> TaskService<Factory>::stats(
    const containerd::task::v2::StatsRequest& request, const ttrpc::CallContext&) {
  std::exception_ptr failure;
  try {
    if (request.id().empty()) fail(Errc::invalid_argument, "stats: id must not be empty");
    const auto instance = require_runtime(request.id());
    std::string metrics = co_await instance->stats_container(request.id());
    containerd::task::v2::StatsResponse response;
    response.mutable_stats()->set_type_url(std::string(cgroups_metrics_type_url));
    response.mutable_stats()->set_value(std::move(metrics));
    co_return response;
  } catch (...) {
    failure = std::current_exception();
  }
  detail::log_rpc_failure(logger_, "stats", request.id(), "", failure);
  std::rethrow_exception(failure);
}

template <RuntimeFactory Factory>
kata::Task<containerd::task::v2::ConnectResponse> TaskService<Factory>::connect(
    const containerd::task::v2::ConnectRequest& request, const ttrpc::CallContext&) {
  containerd::task::v2::ConnectResponse response;
  response.set_shim_pid(static_cast<std::uint32_t>(::getpid()));
  const pid_t task_pid = runtime_ ? std::as_const(*runtime_).task_pid() : 0;
  response.set_task_pid(static_cast<std::uint32_t>(std::max<pid_t>(task_pid, 0)));
  logger_.debug("connect id={} task_pid={}", request.id(), task_pid);
  co_return response;
}

template <RuntimeFactory Factory>
kata::Task<google::protobuf::Empty> TaskService<Factory>::shutdown(const containerd::task::v2::ShutdownRequest& request,
                                                                   const ttrpc::CallContext&) {
  // Like containerd's runc shim: a shim still serving containers stays, unless told `now`.
  // SIGTERM is ignored by the serving shim, so this is its only regular way out.
  if (request.now() || (containers_.empty() && creating_.empty())) {
    logger_.info("shutdown requested (id={}, now={})", request.id(), request.now());
    // The sandbox goes before the reply: containerd closes its connection once Shutdown returns
    // and runs `shim delete`, which would otherwise find this process still tearing the sandbox
    // down and kill it halfway. stop() runs on its own (the serve loop's later call joins it),
    // so the reply is bounded even if the runtime hangs.
    asio::co_spawn(executor_, stop_owned(this->shared_from_this()), asio::detached);
    (void)co_await stopped_.wait_for(shutdown_reply_bound);
    request_shutdown();
  } else {
    logger_.debug("shutdown id={} ignored: {} containers remain", request.id(), containers_.size());
  }
  co_return google::protobuf::Empty();
}

template <RuntimeFactory Factory>
kata::Task<void> TaskService<Factory>::stop_owned(std::shared_ptr<TaskService> self) {
  co_await self->stop();
}

template <RuntimeFactory Factory>
kata::Task<void> TaskService<Factory>::wait_for_shutdown_request() {
  co_await shutdown_requested_.wait();
}

template <RuntimeFactory Factory>
void TaskService<Factory>::request_shutdown() noexcept {
  shutdown_requested_.set();
}

template <RuntimeFactory Factory>
kata::Task<void> TaskService<Factory>::stop() {
  if (stopping_) {  // idempotent: a second caller waits for the first
    co_await stopped_.wait();
    co_return;
  }
  stopping_ = true;
  {
    // A first Create still building the runtime finishes first, so its runtime is shut down too.
    auto lock = co_await creation_mutex_.lock();
  }
  if (auto instance = runtime_) {
    logger_.info("shutting the runtime down");
    try {
      co_await instance->shutdown();
    } catch (const std::exception& error) {
      logger_.error("runtime shutdown failed: {}", describe(error));
    }
  }
  co_await watchers_.close();
  stopped_.set();
}

}  // namespace kata::shim
