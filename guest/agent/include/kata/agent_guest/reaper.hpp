// Reaping every child of the agent: PID 1 must wait() for orphans, and the same waitpid(-1)
// must hand the exit status of the agent's own processes (container inits, execs) to their owners.
//
// One Reaper exists per process (waitpid(-1) takes any child, so two would steal from each
// other). A dedicated thread blocks in waitpid(); no signal handler and no SIGCHLD masking is
// needed, which keeps the agent's threads free of signal plumbing.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "kata/core/child_process.hpp"

namespace kata::agent_guest {

/// The exit of one watched process; shared between the reaper and the process's owner.
class ExitState {
 public:
  /// Records the status and wakes waiters; runs the callback set with on_exit, if any.
  void complete(ExitStatus status);

  [[nodiscard]] std::optional<ExitStatus> status() const;

  /// Blocks until the process exited. For tests and teardown; RPC handlers use on_exit.
  ExitStatus wait_blocking() const;

  /// Blocks up to `timeout`; nullopt if still running.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout) const;

  /// Calls `callback` once with the status: at once if already exited, else from the reaper
  /// thread. The callback must not block (post to an executor).
  void on_exit(std::function<void(ExitStatus)> callback);

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable exited_;
  std::optional<ExitStatus> status_;
  std::function<void(ExitStatus)> callback_;
};

class Reaper {
 public:
  /// The process-wide reaper; starts its thread on first use and lives until the process ends.
  static Reaper& instance();

  /// Held across "create a child; watch() it", so the child's exit cannot be reaped and dropped
  /// as an orphan's before the owner registered it.
  [[nodiscard]] std::unique_lock<std::mutex> lock_for_spawn();

  /// Registers `pid` (a child created under `lock`). Its exit completes the returned state.
  [[nodiscard]] std::shared_ptr<ExitState> watch(const std::unique_lock<std::mutex>& lock, pid_t pid);

  /// Exits of processes nobody watched (orphans re-parented to us), for diagnostics.
  [[nodiscard]] std::uint64_t orphans_reaped() const noexcept;

  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

 private:
  Reaper();
  void run();

  mutable std::mutex mutex_;
  std::condition_variable child_added_;
  std::uint64_t spawn_generation_ = 0;
  std::uint64_t orphans_ = 0;
  std::unordered_map<pid_t, std::shared_ptr<ExitState>> watched_;
};

}  // namespace kata::agent_guest
