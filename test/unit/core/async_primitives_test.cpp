#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kata/core/async_event.hpp"
#include "kata/core/async_mutex.hpp"
#include "kata/core/error.hpp"
#include "kata/core/gate.hpp"

namespace kata {
namespace {

using namespace std::chrono_literals;

void run(asio::io_context& io) {
  io.run();
  io.restart();
}

TEST(AsyncEvent, WakesAllWaitersAndLaterOnesPassStraightThrough) {
  asio::io_context io;
  AsyncEvent event(io.get_executor());
  int woken = 0;
  for (int i = 0; i < 3; ++i) {
    asio::co_spawn(io, [&]() -> Task<void> { co_await event.wait(); ++woken; }, asio::detached);
  }
  asio::co_spawn(io, [&]() -> Task<void> { event.set(); co_return; }, asio::detached);
  run(io);
  EXPECT_EQ(woken, 3);
  asio::co_spawn(io, [&]() -> Task<void> { co_await event.wait(); ++woken; }, asio::detached);
  run(io);
  EXPECT_EQ(woken, 4);
}

TEST(AsyncEvent, WaitForTimesOutWhenNotSet) {
  asio::io_context io;
  AsyncEvent event(io.get_executor());
  std::optional<bool> result;
  asio::co_spawn(io, [&]() -> Task<void> { result = co_await event.wait_for(10ms); }, asio::detached);
  run(io);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(Gate, CloseWaitsForWorkInsideAndRefusesNewWork) {
  asio::io_context io;
  Gate gate(io.get_executor(), "sandbox abc");
  AsyncEvent release(io.get_executor());
  std::vector<std::string> order;
  // A named coroutine lambda: a temporary one would be destroyed while its frame still uses its
  // captures.
  auto work = [&]() -> Task<void> {
    co_await release.wait();
    order.push_back("work done");
  };
  gate.spawn(work());
  asio::co_spawn(io, [&]() -> Task<void> {
    co_await gate.close();
    order.push_back("closed");
  }, asio::detached);
  asio::co_spawn(io, [&]() -> Task<void> {
    // close() is pending now: new work must be refused with a clear error.
    try {
      (void)gate.enter();
      order.push_back("entered");
    } catch (const Error& e) {
      order.push_back(e.what());
      EXPECT_EQ(e.code(), Errc::unavailable);
    }
    release.set();
    co_return;
  }, asio::detached);
  run(io);
  EXPECT_EQ(order, (std::vector<std::string>{"sandbox abc is shutting down", "work done", "closed"}));
  EXPECT_EQ(gate.in_flight(), 0u);
}

TEST(Gate, SpawnedFailureReachesHandlerNotTerminate) {
  asio::io_context io;
  Gate gate(io.get_executor(), "g");
  std::string seen;
  gate.spawn([]() -> Task<void> { fail(Errc::internal, "watcher broke"); co_return; }(),
             [&](std::exception_ptr e) { seen = describe(e); });
  asio::co_spawn(io, gate.close(), asio::detached);
  run(io);
  EXPECT_EQ(seen, "watcher broke");
}

TEST(AsyncMutex, ExchangesNeverInterleaveAndOrderIsFifo) {
  asio::io_context io;
  AsyncMutex mutex(io.get_executor());
  std::string transcript;
  auto exchange = [&](char id) -> Task<void> {
    auto lock = co_await mutex.lock();
    transcript += id;  // "request"
    asio::steady_timer pause(io, 1ms);
    co_await pause.async_wait(asio::use_awaitable);
    transcript += id;  // "response": must directly follow its own request
  };
  for (char id : std::string("abcd")) asio::co_spawn(io, exchange(id), asio::detached);
  run(io);
  EXPECT_EQ(transcript, "aabbccdd");
  EXPECT_FALSE(mutex.is_locked());
  EXPECT_EQ(mutex.waiting(), 0u);
}

}  // namespace
}  // namespace kata
