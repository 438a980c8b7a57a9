// Our ttRPC runtime against containerd's Go ttRPC 1.1.1, in both directions, over the test
// service kata.test.Echo (test/conformance/proto/kata/test/echo.proto):
//   - GoServerTest: our Client calls the Go server (echopeer serve);
//   - GoClientTest: the Go client (echopeer check) runs its checks against our Server.
// Cases: unary calls, status codes, metadata, deadlines, 100 concurrent calls, payloads near the
// 4 MiB message limit.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "conformance/go_peer.hpp"
#include "kata/core/error.hpp"
#include "kata/test/echo.pb.h"
#include "kata/ttrpc/client.hpp"
#include "kata/ttrpc/server.hpp"

namespace kata::conformance {
namespace {

using namespace std::chrono_literals;
using ttrpc::CallOptions;
using ttrpc::Client;

constexpr std::string_view service = "kata.test.Echo";
// Largest body that still fits the 4 MiB message limit once wrapped (as in echopeer).
constexpr std::size_t near_limit = (4u << 20) - 1024;

std::string pattern(std::size_t length) {
  std::string data(length, '\0');
  for (std::size_t i = 0; i < length; ++i) data[i] = static_cast<char>((i * 7 + 3) % 251);
  return data;
}

template <class Message>
Message parse(const std::string& bytes) {
  Message message;
  if (!message.ParseFromString(bytes)) throw std::runtime_error("unparsable " + message.GetTypeName());
  return message;
}

Task<kata::test::EchoResponse> echo(Client& client, std::string payload, CallOptions options = {}) {
  kata::test::EchoRequest request;
  request.set_payload(std::move(payload));
  co_return parse<kata::test::EchoResponse>(
      co_await client.call(service, "Echo", request.SerializeAsString(), std::move(options)));
}

/// The error a call failed with, or nullopt when it succeeded.
template <class Awaitable>
Task<std::optional<std::pair<Errc, std::string>>> failure_of(Awaitable call) {
  try {
    co_await std::move(call);
  } catch (const std::exception& e) {
    co_return std::pair{code_of(e), std::string(e.what())};
  }
  co_return std::nullopt;
}

class GoServerTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::filesystem::path socket_ = dir_.path() / "echo.sock";
  GoServer peer_{KATA_CONFORMANCE_ECHOPEER, {"serve", socket_.string()}};
  asio::io_context io_;

  template <class T>
  T with_client(std::function<Task<T>(Client&)> body) {
    return run(io_, [&]() -> Task<T> {
      Client client = co_await Client::connect_unix(io_.get_executor(), socket_);
      co_return co_await body(client);
    }());
  }
};

TEST_F(GoServerTest, UnaryEcho) {
  auto response = with_client<kata::test::EchoResponse>(
      [](Client& client) { return echo(client, "hello from c++"); });
  EXPECT_EQ(response.payload(), "hello from c++");
  EXPECT_EQ(response.metadata_size(), 0);
  EXPECT_EQ(response.deadline_remaining_nanos(), 0);
}

TEST_F(GoServerTest, EmptyPayload) {
  auto response = with_client<kata::test::EchoResponse>([](Client& client) { return echo(client, ""); });
  EXPECT_EQ(response.payload(), "");
}

TEST_F(GoServerTest, MetadataReachesTheServer) {
  CallOptions options;
  options.metadata = {{"containerd-namespace-ttrpc", "k8s.io"}, {"multi", "a"}, {"multi", "b"}};
  auto response = with_client<kata::test::EchoResponse>(
      [&](Client& client) { return echo(client, "", options); });
  std::vector<std::string> seen;
  for (const auto& entry : response.metadata()) seen.push_back(entry.key() + "=" + entry.value());
  EXPECT_EQ(seen, (std::vector<std::string>{"containerd-namespace-ttrpc=k8s.io", "multi=a", "multi=b"}));
}

TEST_F(GoServerTest, DeadlineIsPropagated) {
  auto response = with_client<kata::test::EchoResponse>(
      [](Client& client) { return echo(client, "", CallOptions::with_timeout(30s)); });
  EXPECT_GT(response.deadline_remaining_nanos(), 0);
  EXPECT_LE(response.deadline_remaining_nanos(), std::chrono::nanoseconds(30s).count());
}

TEST_F(GoServerTest, StatusCodesAndMessages) {
  auto failures = with_client<std::vector<std::pair<Errc, std::string>>>([](Client& client) -> Task<std::vector<std::pair<Errc, std::string>>> {
    std::vector<std::pair<Errc, std::string>> out;
    for (std::uint32_t code = 1; code <= 16; ++code) {
      kata::test::FailRequest request;
      request.set_code(code);
      request.set_message("failing with " + std::to_string(code));
      auto failure = co_await failure_of(client.call(service, "Fail", request.SerializeAsString()));
      out.push_back(failure.value_or(std::pair{Errc::ok, std::string("succeeded")}));
    }
    co_return out;
  });
  ASSERT_EQ(failures.size(), 16u);
  for (std::uint32_t code = 1; code <= 16; ++code) {
    SCOPED_TRACE(code);
    EXPECT_EQ(failures[code - 1].first, static_cast<Errc>(code));
    EXPECT_EQ(failures[code - 1].second, "failing with " + std::to_string(code));
  }
}

TEST_F(GoServerTest, UnknownMethodAndService) {
  auto failures = with_client<std::vector<std::optional<std::pair<Errc, std::string>>>>(
      [](Client& client) -> Task<std::vector<std::optional<std::pair<Errc, std::string>>>> {
        std::vector<std::optional<std::pair<Errc, std::string>>> out;
        out.push_back(co_await failure_of(client.call(service, "Nope", "")));
        out.push_back(co_await failure_of(client.call("kata.test.Nope", "Echo", "")));
        co_return out;
      });
  ASSERT_TRUE(failures[0] && failures[1]);
  EXPECT_EQ(failures[0]->first, Errc::not_supported);
  EXPECT_EQ(failures[0]->second, "method Nope");
  EXPECT_EQ(failures[1]->first, Errc::not_supported);
  EXPECT_EQ(failures[1]->second, "service kata.test.Nope");
}

// The server sleeps for a minute unless the deadline stops it; succeeding would mean the
// deadline was ignored on both ends.
TEST_F(GoServerTest, DeadlineExceededThenConnectionStillWorks) {
  auto [failure, after] = with_client<std::pair<std::optional<std::pair<Errc, std::string>>, std::string>>(
      [](Client& client) -> Task<std::pair<std::optional<std::pair<Errc, std::string>>, std::string>> {
        kata::test::SleepRequest request;
        request.set_millis(60000);
        auto sleep_failure = co_await failure_of(
            client.call(service, "Sleep", request.SerializeAsString(), CallOptions::with_timeout(200ms)));
        auto response = co_await echo(client, "after");
        co_return std::pair{sleep_failure, response.payload()};
      });
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->first, Errc::deadline_exceeded);
  EXPECT_EQ(after, "after");
}

TEST_F(GoServerTest, HundredConcurrentCalls) {
  auto mismatches = with_client<int>([](Client& client) -> Task<int> {
    auto executor = co_await asio::this_coro::executor;
    int done = 0;
    int mismatched = 0;
    asio::steady_timer all_done(executor, asio::steady_timer::time_point::max());
    for (int i = 0; i < 100; ++i) {
      asio::co_spawn(executor, [&, i]() -> Task<void> {
        std::string payload = "call-" + std::to_string(i) + std::string(static_cast<std::size_t>(i) * 100, 'x');
        try {
          auto response = co_await echo(client, payload);
          if (response.payload() != payload) ++mismatched;
        } catch (...) {
          ++mismatched;
        }
        if (++done == 100) all_done.cancel();
      }, asio::detached);
    }
    boost::system::error_code ignored;
    co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, ignored));
    co_return mismatched;
  });
  EXPECT_EQ(mismatches, 0);
}

TEST_F(GoServerTest, RequestNearFourMiB) {
  const std::string payload = pattern(near_limit);
  auto response = with_client<kata::test::EchoResponse>([&](Client& client) { return echo(client, payload); });
  EXPECT_EQ(response.payload().size(), payload.size());
  EXPECT_TRUE(response.payload() == payload);
}

TEST_F(GoServerTest, ResponseNearFourMiB) {
  auto data = with_client<std::string>([](Client& client) -> Task<std::string> {
    kata::test::LargeRequest request;
    request.set_length(near_limit);
    auto response = parse<kata::test::LargeResponse>(co_await client.call(service, "Large", request.SerializeAsString()));
    co_return response.data();
  });
  EXPECT_EQ(data.size(), near_limit);
  EXPECT_TRUE(data == pattern(near_limit));
}

// An over-limit request is refused locally (Go's server would drop it); the connection survives.
TEST_F(GoServerTest, OversizedRequestIsRefusedAndConnectionSurvives) {
  auto [failure, after] = with_client<std::pair<std::optional<std::pair<Errc, std::string>>, std::string>>(
      [](Client& client) -> Task<std::pair<std::optional<std::pair<Errc, std::string>>, std::string>> {
        kata::test::EchoRequest request;
        request.set_payload(pattern((4u << 20) + 1));
        auto echo_failure = co_await failure_of(client.call(service, "Echo", request.SerializeAsString()));
        auto response = co_await echo(client, "after");
        co_return std::pair{echo_failure, response.payload()};
      });
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->first, Errc::resource_exhausted);
  EXPECT_EQ(after, "after");
}

// kata.test.Echo implemented on our Server, for the Go client's checks.
ttrpc::ServiceDefinition echo_service() {
  ttrpc::ServiceDefinition definition{std::string(service)};
  definition.add_unary("Echo", [](std::string_view bytes, const ttrpc::CallContext& context) -> Task<std::string> {
    auto request = parse<kata::test::EchoRequest>(std::string(bytes));
    kata::test::EchoResponse response;
    response.set_payload(request.payload());
    auto metadata = context.metadata();
    std::sort(metadata.begin(), metadata.end(), [](const auto& a, const auto& b) {
      return std::tie(a.key, a.value) < std::tie(b.key, b.value);
    });
    for (const auto& entry : metadata) {
      auto* kv = response.add_metadata();
      kv->set_key(entry.key);
      kv->set_value(entry.value);
    }
    if (context.deadline() != ttrpc::Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(context.deadline() - ttrpc::Clock::now());
      response.set_deadline_remaining_nanos(std::max<std::int64_t>(left.count(), 1));
    }
    co_return response.SerializeAsString();
  });
  definition.add_unary("Fail", [](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
    auto request = parse<kata::test::FailRequest>(std::string(bytes));
    throw Error(static_cast<Errc>(request.code()), request.message());
    co_return std::string();
  });
  definition.add_unary("Sleep", [](std::string_view bytes, const ttrpc::CallContext& context) -> Task<std::string> {
    auto request = parse<kata::test::SleepRequest>(std::string(bytes));
    auto until = ttrpc::Clock::now() + std::chrono::milliseconds(request.millis());
    asio::steady_timer timer(co_await asio::this_coro::executor, std::min(until, context.deadline()));
    co_await timer.async_wait(asio::use_awaitable_t<Executor>{});
    if (ttrpc::Clock::now() < until) fail(Errc::deadline_exceeded, "deadline exceeded while sleeping");
    kata::test::SleepResponse response;
    response.set_slept(true);
    co_return response.SerializeAsString();
  });
  definition.add_unary("Large", [](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
    auto request = parse<kata::test::LargeRequest>(std::string(bytes));
    kata::test::LargeResponse response;
    response.set_data(pattern(request.length()));
    co_return response.SerializeAsString();
  });
  return definition;
}

TEST(GoClientTest, GoClientChecksPassAgainstOurServer) {
  TempDir dir;
  const auto socket = dir.path() / "echo.sock";
  asio::io_context io;
  ttrpc::Server server(io.get_executor());
  server.add_service(echo_service());
  server.listen_unix(socket);

  // Built outside the coroutine: GCC 12 rejects braced lists in a co_await's arguments.
  std::vector<std::string> arguments{"check", socket.string()};
  auto result = run(io, [&]() -> Task<GoClientResult> {
    auto client_result = co_await run_go_client(KATA_CONFORMANCE_ECHOPEER, arguments, dir.path());
    server.close();
    co_return client_result;
  }());

  EXPECT_EQ(result.status, (ExitStatus{0, 0})) << result.output;
  EXPECT_EQ(result.output.find("FAIL"), std::string::npos) << result.output;
  // Every check ran (a crash half-way would also show as a non-zero exit).
  EXPECT_NE(result.output.find("ok   usable after oversized response"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace kata::conformance
