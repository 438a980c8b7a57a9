// Shared pieces of the TaskService, event and binary-protocol tests: an io_context runner,
// private temp dirs, a polling wait with a generous stuck-guard, and a fake containerd event sink.
#pragma once

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "containerd/events/task.pb.h"
#include "containerd/services/events/ttrpc/v1/events.ttrpc.pb.h"
#include "kata/core/asio.hpp"
#include "kata/core/error.hpp"
#include "kata/shim/events.hpp"
#include "support/async_test.hpp"
#include "kata/ttrpc/server.hpp"

namespace kata::shim::test {

/// Runs `task` on `io` until it completes; rethrows what it threw. The context is stopped
/// afterwards, so background work (a server's accept loop) does not keep it running.
template <class T>
T run(asio::io_context& io, Task<T> task) {
  std::exception_ptr failure;
  std::optional<T> result;
  bool done = false;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) result.emplace(std::move(value));
    done = true;
  });
  while (!done && io.run_one() > 0) {
  }
  if (failure) std::rethrow_exception(failure);
  if (!done) throw std::runtime_error("the io_context ran out of work before the task completed");
  return std::move(*result);
}

inline void run(asio::io_context& io, Task<void> task) {
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  while (!done && io.run_one() > 0) {
  }
  if (failure) std::rethrow_exception(failure);
  if (!done) throw std::runtime_error("the io_context ran out of work before the task completed");
}

/// The shared private temporary directory ($TMPDIR/kata-test-shim-XXXXXX: short, because unix
/// socket paths are limited to 107 bytes).
struct TempDir : kata::testing::TempDir {
  TempDir() : kata::testing::TempDir("shim") {}
};

inline Task<void> sleep_for(std::chrono::steady_clock::duration duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable_t<Executor>{});
}

/// Polls `condition` every millisecond. Not a timing assertion: the limit only turns a hang
/// into a failure.
inline Task<void> wait_until(std::function<bool()> condition, std::string_view what) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) fail(Errc::deadline_exceeded, "still waiting for {}", what);
    co_await sleep_for(std::chrono::milliseconds(1));
  }
}

/// Lets the executor run everything that is ready (posted completions, woken waiters).
inline Task<void> settle() {
  for (int i = 0; i < 50; ++i) co_await sleep_for(std::chrono::microseconds(0));
}

/// containerd's event sink, recording what the shim forwards.
class RecordingEvents final : public containerd::services::events::ttrpc::v1::Events {
 public:
  struct Received {
    std::string topic;
    std::string envelope_namespace;
    std::string metadata_namespace;
    std::string type_url;
    std::string value;
  };

  std::vector<Received> received;
  /// Answer every Forward with this error (after recording nothing).
  std::optional<Errc> reject;

  kata::Task<google::protobuf::Empty> forward(const containerd::services::events::ttrpc::v1::ForwardRequest& request,
                                              const ttrpc::CallContext& context) override {
    if (reject) fail(*reject, "rejected by the test");
    const auto& envelope = request.envelope();
    Received r;
    r.topic = envelope.topic();
    r.envelope_namespace = envelope.namespace_();
    r.metadata_namespace = std::string(
        ttrpc::find_metadata(context.metadata(), namespace_metadata_key).value_or("<missing>"));
    r.type_url = envelope.event().type_url();
    r.value = envelope.event().value();
    received.push_back(std::move(r));
    co_return google::protobuf::Empty();
  }

  [[nodiscard]] std::vector<std::string> topics() const {
    std::vector<std::string> out;
    for (const auto& r : received) out.push_back(r.topic);
    return out;
  }

  /// The TaskExit events, decoded.
  [[nodiscard]] std::vector<containerd::events::TaskExit> exits() const {
    std::vector<containerd::events::TaskExit> out;
    for (const auto& r : received) {
      if (r.topic != topic::task_exit) continue;
      containerd::events::TaskExit exit;
      EXPECT_TRUE(exit.ParseFromString(r.value));
      out.push_back(exit);
    }
    return out;
  }
};

/// A fake containerd event socket: a ttRPC server with RecordingEvents at `path`.
struct EventSink {
  EventSink(Executor executor, const std::filesystem::path& path)
      : events(std::make_shared<RecordingEvents>()), server(executor) {
    containerd::services::events::ttrpc::v1::register_service(server, events);
    server.listen_unix(path);
  }
  std::shared_ptr<RecordingEvents> events;
  ttrpc::Server server;
};

}  // namespace kata::shim::test
