// A FIFO mutex for coroutines: makes a request/response exchange on a VMM control channel atomic.
//
// Upstream's Cloud Hypervisor client let concurrent callers share one HTTP/1.1 connection; two
// exchanges interleaved, a reply was parsed as part of another, and pod deletion hung (kata
// #12858). Every control channel here (QMP, CH/Firecracker HTTP, remote ttRPC) takes this lock
// around write-request + read-complete-response, so at most one exchange is outstanding.
#pragma once

#include <list>

#include "kata/core/asio.hpp"

namespace kata {

/// Waiters acquire in arrival order. Thread-safety: use from one executor.
class AsyncMutex {
 public:
  /// Ownership of the mutex; unlocking happens on destruction and hands the mutex straight to the
  /// next waiter, so no newcomer can overtake a queued one.
  class Lock {
   public:
    Lock(Lock&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
    Lock& operator=(Lock&&) = delete;
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    ~Lock() {
      if (mutex_ != nullptr) mutex_->unlock();
    }

   private:
    friend class AsyncMutex;
    explicit Lock(AsyncMutex* mutex) noexcept : mutex_(mutex) {}
    AsyncMutex* mutex_;
  };

  explicit AsyncMutex(Executor executor) : executor_(std::move(executor)) {}
  AsyncMutex(const AsyncMutex&) = delete;
  AsyncMutex& operator=(const AsyncMutex&) = delete;

  /// Completes when the caller owns the mutex.
  Task<Lock> lock();

  [[nodiscard]] bool is_locked() const noexcept { return locked_; }
  [[nodiscard]] std::size_t waiting() const noexcept { return waiters_.size(); }

 private:
  struct Waiter {
    asio::steady_timer* timer;
    bool granted = false;
  };
  void unlock() noexcept;

  Executor executor_;
  bool locked_ = false;
  std::list<Waiter> waiters_;
};

}  // namespace kata
