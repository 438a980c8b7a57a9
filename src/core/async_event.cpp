#include "kata/core/async_event.hpp"

namespace kata {

void AsyncEvent::set() noexcept {
  if (set_) return;
  set_ = true;
  for (auto* timer : waiters_) timer->cancel();
}

Task<void> AsyncEvent::wait() { co_await wait_until(std::chrono::steady_clock::time_point::max()); }

Task<bool> AsyncEvent::wait_for(std::chrono::steady_clock::duration timeout) {
  return wait_until(std::chrono::steady_clock::now() + timeout);
}

Task<bool> AsyncEvent::wait_until(std::chrono::steady_clock::time_point deadline) {
  if (set_) co_return true;
  asio::steady_timer timer(executor_, deadline);
  waiters_.push_front(&timer);
  // Unregisters even if this coroutine is destroyed while suspended (io_context torn down).
  struct Registration {
    std::list<asio::steady_timer*>& list;
    std::list<asio::steady_timer*>::iterator position;
    ~Registration() { list.erase(position); }
  } registration{waiters_, waiters_.begin()};
  boost::system::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  co_return set_;
}

}  // namespace kata
