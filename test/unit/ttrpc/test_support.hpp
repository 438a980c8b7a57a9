// Helpers shared by the ttRPC tests: an io_context runner, temp dirs, raw socket peers.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "kata/core/asio.hpp"
#include "support/async_test.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::ttrpc::test {

using kata::testing::run;

/// TempDir with this suite's name in the path.
class TempDir : public kata::testing::TempDir {
 public:
  TempDir() : kata::testing::TempDir("ttrpc") {}
};

struct SocketPair {
  UniqueFd first;
  UniqueFd second;
};

inline SocketPair make_socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair failed");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

/// Suspends the calling coroutine for `duration`.
inline Task<void> sleep_for(std::chrono::steady_clock::duration duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable_t<Executor>{});
}

inline std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

}  // namespace kata::ttrpc::test
