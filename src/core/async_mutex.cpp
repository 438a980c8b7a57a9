#include "kata/core/async_mutex.hpp"

namespace kata {

Task<AsyncMutex::Lock> AsyncMutex::lock() {
  if (!locked_) {
    locked_ = true;
    co_return Lock(this);
  }
  asio::steady_timer timer(executor_, std::chrono::steady_clock::time_point::max());
  waiters_.push_back(Waiter{&timer});
  auto position = std::prev(waiters_.end());
  // If this coroutine dies while queued, leave the queue; if it dies after being granted the
  // mutex but before resuming, pass the mutex on rather than keeping it forever.
  struct Registration {
    AsyncMutex& mutex;
    std::list<Waiter>::iterator position;
    bool resumed = false;
    ~Registration() {
      const bool granted = position->granted;
      mutex.waiters_.erase(position);
      if (granted && !resumed) mutex.unlock();
    }
  } registration{*this, position};
  boost::system::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  registration.resumed = true;
  co_return Lock(this);
}

void AsyncMutex::unlock() noexcept {
  for (auto& waiter : waiters_) {
    if (!waiter.granted) {
      waiter.granted = true;  // stays locked_: ownership moves to this waiter
      waiter.timer->cancel();
      return;
    }
  }
  locked_ = false;
}

}  // namespace kata
