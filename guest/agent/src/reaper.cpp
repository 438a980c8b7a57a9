#include "kata/agent_guest/reaper.hpp"

#include <sys/wait.h>

#include <cerrno>
#include <thread>

#include "kata/agent_guest/log.hpp"

namespace kata::agent_guest {

void ExitState::complete(ExitStatus status) {
  std::function<void(ExitStatus)> callback;
  {
    const std::lock_guard lock(mutex_);
    status_ = status;
    callback = std::move(callback_);
  }
  exited_.notify_all();
  if (callback) callback(status);
}

std::optional<ExitStatus> ExitState::status() const {
  const std::lock_guard lock(mutex_);
  return status_;
}

ExitStatus ExitState::wait_blocking() const {
  std::unique_lock lock(mutex_);
  exited_.wait(lock, [&] { return status_.has_value(); });
  return *status_;
}

std::optional<ExitStatus> ExitState::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  exited_.wait_for(lock, timeout, [&] { return status_.has_value(); });
  return status_;
}

void ExitState::on_exit(std::function<void(ExitStatus)> callback) {
  std::optional<ExitStatus> already;
  {
    const std::lock_guard lock(mutex_);
    if (status_) {
      already = status_;
    } else {
      callback_ = std::move(callback);
    }
  }
  if (already) callback(*already);
}

Reaper& Reaper::instance() {
  // Never destroyed: its thread blocks in waitpid() for the life of the process.
  static Reaper* const reaper = new Reaper();
  return *reaper;
}

Reaper::Reaper() { std::thread([this] { run(); }).detach(); }

std::unique_lock<std::mutex> Reaper::lock_for_spawn() {
  std::unique_lock lock(mutex_);
  ++spawn_generation_;
  child_added_.notify_all();
  return lock;
}

std::shared_ptr<ExitState> Reaper::watch(const std::unique_lock<std::mutex>& lock, pid_t pid) {
  (void)lock;  // proof that the caller holds mutex_
  auto state = std::make_shared<ExitState>();
  watched_[pid] = state;
  return state;
}

std::uint64_t Reaper::orphans_reaped() const noexcept {
  const std::lock_guard lock(mutex_);
  return orphans_;
}

void Reaper::run() {
  for (;;) {
    std::uint64_t generation = 0;
    {
      const std::lock_guard lock(mutex_);
      generation = spawn_generation_;
    }
    int raw = 0;
    const pid_t pid = ::waitpid(-1, &raw, __WALL);
    if (pid < 0) {
      if (errno == EINTR) continue;
      // ECHILD: nothing to wait for until someone spawns (orphans only come from our children).
      std::unique_lock lock(mutex_);
      child_added_.wait(lock, [&] { return spawn_generation_ != generation; });
      continue;
    }
    const ExitStatus status = WIFSIGNALED(raw) ? ExitStatus{0, WTERMSIG(raw)} : ExitStatus{WEXITSTATUS(raw), 0};
    std::shared_ptr<ExitState> state;
    {
      const std::lock_guard lock(mutex_);
      if (auto it = watched_.find(pid); it != watched_.end()) {
        state = std::move(it->second);
        watched_.erase(it);
      } else {
        ++orphans_;
      }
    }
    if (state) {
      state->complete(status);
    } else {
      log(LogLevel::debug, "reaped orphan {} (exit {})", pid, status.as_exit_code());
    }
  }
}

}  // namespace kata::agent_guest
