// A one-shot event that coroutines can await: "the VMM exited", "the sandbox is drained".
#pragma once

#include <chrono>
#include <list>

#include "kata/core/asio.hpp"

namespace kata {

/// Starts unset; set() wakes every current and future waiter. There is no reset: a new phase
/// needs a new event, which keeps "has this happened?" a question with one answer.
///
/// Thread-safety: all calls happen on the executor given at construction (the shim and the agent
/// run one io_context thread). Waiters may be many; each costs one timer while it waits.
class AsyncEvent {
 public:
  explicit AsyncEvent(Executor executor) : executor_(std::move(executor)) {}
  AsyncEvent(const AsyncEvent&) = delete;
  AsyncEvent& operator=(const AsyncEvent&) = delete;

  /// Marks the event and resumes all waiters (they resume later, never inside set()).
  void set() noexcept;
  [[nodiscard]] bool is_set() const noexcept { return set_; }

  /// Completes once the event is set (immediately if it already is).
  Task<void> wait();

  /// Completes once the event is set or `timeout` passed; returns is_set().
  Task<bool> wait_for(std::chrono::steady_clock::duration timeout);

  [[nodiscard]] const Executor& executor() const noexcept { return executor_; }

 private:
  Task<bool> wait_until(std::chrono::steady_clock::time_point deadline);

  Executor executor_;
  bool set_ = false;
  std::list<asio::steady_timer*> waiters_;
};

}  // namespace kata
