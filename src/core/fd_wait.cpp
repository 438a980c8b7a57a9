#include "kata/core/fd_wait.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>

#include "kata/core/async_event.hpp"

namespace kata {

Task<bool> wait_fd_until(Executor executor, int fd, FdReadiness readiness, std::chrono::steady_clock::time_point deadline) {
  asio::posix::stream_descriptor descriptor(executor, fd);
  asio::steady_timer timer(executor, deadline);
  AsyncEvent both_done(executor);
  int pending = 2;
  bool ready = false;
  auto finish_one = [&] {
    if (--pending == 0) both_done.set();
  };
  timer.async_wait([&](const boost::system::error_code& error) {
    if (!error) descriptor.cancel();
    finish_one();
  });
  const auto type = readiness == FdReadiness::readable ? asio::posix::stream_descriptor::wait_read
                                                       : asio::posix::stream_descriptor::wait_write;
  descriptor.async_wait(type, [&](const boost::system::error_code& error) {
    ready = !error;
    timer.cancel();
    finish_one();
  });
  co_await both_done.wait();
  descriptor.release();  // the caller owns the descriptor
  co_return ready;
}

}  // namespace kata
