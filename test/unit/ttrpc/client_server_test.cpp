// Client and server over real unix sockets: calls, errors, deadlines, streaming, drain, leaks.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "kata/ttrpc/client.hpp"
#include "kata/ttrpc/frame.hpp"
#include "kata/ttrpc/server.hpp"
#include "test_support.hpp"
#include "ttrpc/wire.hpp"

namespace kata::ttrpc {
namespace {

using namespace std::chrono_literals;
using test::bytes;
using test::run;
using test::sleep_for;
using ::testing::HasSubstr;

// A generous upper bound for anything that should happen "at once"; assertions are on outcomes.
constexpr auto generous = 30s;

Task<std::string> read_exactly(Transport& transport, std::size_t size) {
  std::string out(size, '\0');
  std::size_t done = 0;
  while (done < size) done += co_await transport.read_some(asio::buffer(out.data() + done, size - done));
  co_return out;
}

Task<std::string> read_frame(Transport& transport) {
  std::string header = co_await read_exactly(transport, frame_header_size);
  const auto decoded = decode_header(std::span<const std::uint8_t, frame_header_size>(
      reinterpret_cast<const std::uint8_t*>(header.data()), frame_header_size));
  co_return header + co_await read_exactly(transport, decoded.length);
}

std::string request_frame(std::uint32_t stream_id, std::string_view service, std::string_view method,
                          std::string_view payload, std::int64_t timeout_nano = 0, std::uint8_t frame_flags = 0) {
  const detail::RequestFields fields{service, method, payload, timeout_nano, nullptr};
  std::string out;
  detail::append_request_frame(out, stream_id, frame_flags, fields, detail::request_size(fields));
  return out;
}

std::string varint(std::uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

/// A length-delimited protobuf field.
std::string bytes_field(int number, std::string_view contents) {
  return varint(static_cast<std::uint64_t>(number) << 3 | 2) + varint(contents.size()) + std::string(contents);
}

std::string frame(std::uint32_t stream_id, MessageType type, std::string_view data) {
  std::array<std::uint8_t, frame_header_size> header{};
  encode_header({static_cast<std::uint32_t>(data.size()), stream_id, type, 0}, header);
  return std::string(reinterpret_cast<const char*>(header.data()), header.size()) + std::string(data);
}

/// Writes `bytes` cut at `cuts`, pausing between pieces so the reader sees each piece on its own
/// (a frame header split in two, an envelope arriving a few bytes at a time).
Task<void> write_in_pieces(Transport& peer, const std::string& bytes, std::vector<std::size_t> cuts) {
  std::size_t from = 0;
  cuts.push_back(bytes.size());
  for (const std::size_t to : cuts) {
    co_await peer.write_all(asio::buffer(bytes.data() + from, to - from));
    from = to;
    co_await sleep_for(2ms);
  }
}

class TtrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    baseline_server_ = live_server_objects();
    baseline_client_ = live_client_connections();
    ServiceDefinition echo("test.Echo");
    echo.add_unary("Echo", [](std::string_view request, const CallContext& context) -> Task<std::string> {
      std::string out = "echo:";
      if (auto k = find_metadata(context.metadata(), "k")) out += std::string(*k) + ":";
      out += request;
      co_return out;
    });
    echo.add_unary("Fail", [](std::string_view, const CallContext&) -> Task<std::string> {
      with_context("open the pod", [] { fail(Errc::not_found, "container {} not found", "abc"); });
      co_return std::string();
    });
    echo.add_unary("Hang", [this](std::string_view, const CallContext& context) -> Task<std::string> {
      ++hanging_;
      asio::steady_timer gate(co_await asio::this_coro::executor, Clock::time_point::max());
      gates_.push_back(&gate);
      hanging_contexts_.push_back(&context);
      boost::system::error_code ignored;
      co_await gate.async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, ignored));
      std::erase(gates_, &gate);
      std::erase(hanging_contexts_, &context);
      --hanging_;
      if (context.cancelled()) ++saw_cancelled_;
      co_return "late";
    });
    echo.add_unary("Big", [](std::string_view, const CallContext&) -> Task<std::string> {
      co_return std::string(max_message_size + 1, 'x');
    });
    echo.add_stream("Count", {false, true}, [](ServerStream& stream, const CallContext&) -> Task<std::optional<std::string>> {
      auto first = co_await stream.recv();
      const int n = std::stoi(first.value_or("0"));
      for (int i = 0; i < n; ++i) co_await stream.send(std::to_string(i));
      co_return std::nullopt;
    });
    echo.add_stream("Sum", {true, false}, [](ServerStream& stream, const CallContext&) -> Task<std::optional<std::string>> {
      int sum = 0;
      while (auto message = co_await stream.recv()) sum += std::stoi(*message);
      co_return std::to_string(sum);
    });
    echo.add_stream("Chat", {true, true}, [](ServerStream& stream, const CallContext&) -> Task<std::optional<std::string>> {
      while (auto message = co_await stream.recv()) co_await stream.send("re:" + *message);
      co_return std::string("bye");
    });
    server_.add_service(std::move(echo));
  }

  void release_hanging() {
    for (auto* gate : std::vector(gates_)) gate->cancel();
  }

  /// After the io_context ran dry nothing of ours may be left alive.
  void expect_no_leaks() {
    EXPECT_EQ(live_server_objects(), baseline_server_);
    EXPECT_EQ(live_client_connections(), baseline_client_);
  }

  std::filesystem::path socket_path() const { return dir_.path() / "ttrpc.sock"; }

  asio::io_context io_;
  test::TempDir dir_;
  Server server_{io_.get_executor()};
  std::vector<asio::steady_timer*> gates_;
  std::vector<const CallContext*> hanging_contexts_;  ///< of the Hang calls waiting at their gate
  int hanging_ = 0;
  int saw_cancelled_ = 0;
  std::size_t baseline_server_ = 0;
  std::size_t baseline_client_ = 0;
};

TEST_F(TtrpcTest, UnaryCallWithMetadata) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    CallOptions options = CallOptions::with_timeout(generous);
    options.metadata.push_back({"k", "v"});
    EXPECT_EQ(co_await client.call("test.Echo", "Echo", "hi", std::move(options)), "echo:v:hi");
    EXPECT_EQ(co_await client.call("test.Echo", "Echo", ""), "echo:");
    EXPECT_EQ(client.pending_calls(), 0u);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, GoldenBytesFromClient) {
  auto [ours, theirs] = test::make_socket_pair();
  run(io_, [&]() -> Task<void> {
    Client client(io_.get_executor(), std::move(ours));
    Transport peer(io_.get_executor(), std::move(theirs));
    CallOptions options;
    options.metadata.push_back({"k", "v"});
    auto call = client.call("feas.Echo", "Echo", bytes({0x0a, 0x02}) + "AB", std::move(options));
    std::string answer;
    asio::co_spawn(io_, [&]() -> Task<void> { answer = co_await std::move(call); }, asio::detached);
    const std::string request = co_await read_frame(peer);
    EXPECT_EQ(request, bytes({0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0a, 0x09}) + "feas.Echo" +
                           bytes({0x12, 0x04}) + "Echo" + bytes({0x1a, 0x04, 0x0a, 0x02}) + "AB" +
                           bytes({0x2a, 0x06, 0x0a, 0x01}) + "k" + bytes({0x12, 0x01}) + "v");
    const std::string response =
        bytes({0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x12, 0x09, 0x0a, 0x07}) + "echo:AB";
    co_await peer.write_all(asio::buffer(response));
    co_await sleep_for(10ms);
    while (answer.empty()) co_await sleep_for(10ms);
    EXPECT_EQ(answer, bytes({0x0a, 0x07}) + "echo:AB");

    // Stream 3 gets Go's Unimplemented answer, byte for byte the capture.
    std::optional<Error> failure;
    asio::co_spawn(io_, [&]() -> Task<void> {
      try {
        co_await client.call("feas.Echo", "Nope", {});
      } catch (const Error& e) {
        failure = e;
      }
    }, asio::detached);
    const std::string second = co_await read_frame(peer);
    EXPECT_EQ(second.substr(4, 4), bytes({0, 0, 0, 3}));
    const std::string error = bytes({0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x03, 0x02, 0x00, 0x0a, 0x0f, 0x08,
                                     0x0c, 0x12, 0x0b}) + "method Nope";
    co_await peer.write_all(asio::buffer(error));
    while (!failure) co_await sleep_for(10ms);
    EXPECT_EQ(failure->code(), Errc::not_supported);
    EXPECT_STREQ(failure->what(), "method Nope");
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, GoldenBytesFromServer) {
  ServiceDefinition feas("feas.Echo");
  feas.add_unary("Echo", [](std::string_view request, const CallContext&) -> Task<std::string> {
    // StringValue{"AB"} -> StringValue{"echo:AB"}
    co_return bytes({0x0a, 0x07}) + "echo:" + std::string(request.substr(2));
  });
  server_.add_service(std::move(feas));
  auto [ours, theirs] = test::make_socket_pair();
  server_.serve_connection(std::move(ours));
  run(io_, [&]() -> Task<void> {
    Transport peer(io_.get_executor(), std::move(theirs));
    const std::string golden_request =
        bytes({0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0a, 0x09}) + "feas.Echo" +
        bytes({0x12, 0x04}) + "Echo" + bytes({0x1a, 0x04, 0x0a, 0x02}) + "AB" + bytes({0x2a, 0x06, 0x0a, 0x01}) +
        "k" + bytes({0x12, 0x01}) + "v";
    co_await peer.write_all(asio::buffer(golden_request));
    const std::string response = co_await read_frame(peer);
    const std::string golden_response =
        bytes({0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x12, 0x09, 0x0a, 0x07}) + "echo:AB";
    EXPECT_EQ(response, golden_response);
    const std::string nope = request_frame(3, "feas.Echo", "Nope", {});
    co_await peer.write_all(asio::buffer(nope));
    const std::string error = co_await read_frame(peer);
    const std::string golden_error = bytes({0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x03, 0x02, 0x00, 0x0a, 0x0f,
                                            0x08, 0x0c, 0x12, 0x0b}) + "method Nope";
    EXPECT_EQ(error, golden_error);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, UnknownServiceAndMethod) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    try {
      co_await client.call("nope.Svc", "Echo", {});
      ADD_FAILURE() << "unknown service answered";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::not_supported);
      EXPECT_STREQ(e.what(), "service nope.Svc");
    }
    try {
      co_await client.call("test.Echo", "Nope", {});
      ADD_FAILURE() << "unknown method answered";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::not_supported);
      EXPECT_STREQ(e.what(), "method Nope");
    }
    // Names are bytes on the wire: invalid UTF-8 is just another unknown method, not garbage.
    try {
      co_await client.call("test.Echo", "\xff\xfe", {});
      ADD_FAILURE() << "unknown method answered";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::not_supported);
      EXPECT_STREQ(e.what(), "method \xff\xfe");
    }
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, HandlerErrorsKeepCodeAndContext) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    try {
      co_await client.call("test.Echo", "Fail", {});
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::not_found);
      EXPECT_STREQ(e.what(), "open the pod: container abc not found");
    }
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ClientDeadlineFreesTheStreamAndDropsTheLateAnswer) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    try {
      co_await client.call("test.Echo", "Hang", {}, CallOptions::with_timeout(50ms));
      ADD_FAILURE() << "no deadline";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::deadline_exceeded);
    }
    EXPECT_EQ(client.pending_calls(), 0u);
    // The server-side deadline (timeout_nano) fires too and marks the handler cancelled. It runs
    // out a little after the client's (it started when the request arrived), so wait for it.
    while (hanging_ == 0) co_await sleep_for(1ms);
    while (!hanging_contexts_.front()->cancelled()) co_await sleep_for(1ms);
    release_hanging();
    while (hanging_ > 0) co_await sleep_for(1ms);
    EXPECT_EQ(co_await client.call("test.Echo", "Echo", "after"), "echo:after");
    EXPECT_EQ(saw_cancelled_, 1);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ServerHonoursTimeoutNano) {
  auto [ours, theirs] = test::make_socket_pair();
  server_.serve_connection(std::move(ours));
  run(io_, [&]() -> Task<void> {
    Transport peer(io_.get_executor(), std::move(theirs));
    const std::string request = request_frame(1, "test.Echo", "Hang", {}, 20'000'000);
    co_await peer.write_all(asio::buffer(request));
    const std::string response = co_await read_frame(peer);
    EXPECT_EQ(response.substr(frame_header_size, 4), bytes({0x0a, 0x15, 0x08, 0x04}));  // status code 4
    EXPECT_THAT(response, HasSubstr("deadline exceeded"));
    EXPECT_EQ(server_.active_calls(), 1u);  // the handler itself still runs, its result is dropped
    release_hanging();
    while (server_.active_calls() > 0) co_await sleep_for(1ms);
    EXPECT_EQ(saw_cancelled_, 1);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, Cancellation) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    CancellationSignal signal;
    CallOptions options;
    options.cancellation = &signal;
    std::optional<Errc> outcome;
    asio::co_spawn(io_, [&]() -> Task<void> {
      try {
        co_await client.call("test.Echo", "Hang", {}, std::move(options));
      } catch (const Error& e) {
        outcome = e.code();
      }
    }, asio::detached);
    while (hanging_ == 0) co_await sleep_for(1ms);
    signal.cancel();
    while (!outcome) co_await sleep_for(1ms);
    EXPECT_EQ(*outcome, Errc::cancelled);
    EXPECT_EQ(client.pending_calls(), 0u);
    release_hanging();
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ConnectionLossFailsEveryPendingCall) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    constexpr int calls = 20;
    int unavailable = 0;
    for (int i = 0; i < calls; ++i) {
      asio::co_spawn(io_, [&]() -> Task<void> {
        try {
          co_await client.call("test.Echo", "Hang", {});
        } catch (const Error& e) {
          if (e.code() == Errc::unavailable && std::string_view(e.what()).starts_with("ttrpc connection closed")) {
            ++unavailable;
          }
        }
      }, asio::detached);
    }
    while (hanging_ < calls) co_await sleep_for(1ms);
    server_.close();
    while (unavailable < calls) co_await sleep_for(1ms);
    EXPECT_FALSE(client.is_open());
    EXPECT_EQ(client.pending_calls(), 0u);
    try {
      co_await client.call("test.Echo", "Echo", {});
      ADD_FAILURE() << "call on a closed connection";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::unavailable);
    }
    release_hanging();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, TenThousandCallsInFlight) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    constexpr int calls = 10'000;
    int ok = 0;
    int finished = 0;
    for (int i = 0; i < calls; ++i) {
      asio::co_spawn(io_, [&, i]() -> Task<void> {
        const std::string payload = std::to_string(i);
        if (co_await client.call("test.Echo", "Echo", payload) == "echo:" + payload) ++ok;
        ++finished;
      }, asio::detached);
    }
    while (finished < calls) co_await sleep_for(1ms);
    EXPECT_EQ(ok, calls);
    EXPECT_EQ(client.pending_calls(), 0u);
    EXPECT_EQ(server_.active_calls(), 0u);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, OversizedMessagesFailTheCallNotTheConnection) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    try {
      co_await client.call("test.Echo", "Echo", std::string(max_message_size, 'x'));
      ADD_FAILURE() << "oversized request sent";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::resource_exhausted);
    }
    try {
      co_await client.call("test.Echo", "Big", {});
      ADD_FAILURE() << "oversized response sent";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::resource_exhausted);
    }
    // Large payloads leave without being copied into the output buffer and with the payload
    // field last; timeout and metadata must still arrive.
    const std::string large(1 << 20, 'y');
    CallOptions options = CallOptions::with_timeout(generous);
    options.metadata.push_back({"k", "v"});
    const std::string answer = co_await client.call("test.Echo", "Echo", large, std::move(options));
    EXPECT_EQ(answer, "echo:v:" + large);
    EXPECT_TRUE(client.is_open());
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, OversizedFrameClosesTheConnection) {
  auto [ours, theirs] = test::make_socket_pair();
  server_.serve_connection(std::move(ours));
  run(io_, [&]() -> Task<void> {
    Transport peer(io_.get_executor(), std::move(theirs));
    std::array<std::uint8_t, frame_header_size> header{};
    encode_header({max_message_size + 1, 1, MessageType::request, 0}, header);
    co_await peer.write_all(asio::buffer(header));
    std::array<char, 16> sink{};
    try {
      co_await peer.read_some(asio::buffer(sink));
      ADD_FAILURE() << "server answered an oversized frame";
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), asio::error::eof);
    }
    EXPECT_EQ(server_.connection_count(), 0u);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ClientSeesOversizedFrameAsConnectionLoss) {
  auto [ours, theirs] = test::make_socket_pair();
  run(io_, [&]() -> Task<void> {
    Client client(io_.get_executor(), std::move(ours));
    Transport peer(io_.get_executor(), std::move(theirs));
    std::optional<Error> failure;
    asio::co_spawn(io_, [&]() -> Task<void> {
      try {
        co_await client.call("s", "m", {});
      } catch (const Error& e) {
        failure = e;
      }
    }, asio::detached);
    co_await read_frame(peer);
    std::array<std::uint8_t, frame_header_size> header{};
    encode_header({max_message_size + 1, 1, MessageType::response, 0}, header);
    co_await peer.write_all(asio::buffer(header));
    while (!failure) co_await sleep_for(1ms);
    EXPECT_EQ(failure->code(), Errc::unavailable);
    EXPECT_THAT(failure->what(), HasSubstr("over the 4194304-byte limit"));
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, PeerDisconnectMidFrame) {
  auto [ours, theirs] = test::make_socket_pair();
  server_.serve_connection(std::move(ours));
  run(io_, [&]() -> Task<void> {
    {
      Transport peer(io_.get_executor(), std::move(theirs));
      const std::string request = request_frame(1, "test.Echo", "Echo", "abc");
      co_await peer.write_all(asio::buffer(request.data(), request.size() - 2));
    }
    while (server_.connection_count() > 0) co_await sleep_for(1ms);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ProtocolViolationsAnswerInvalidArgument) {
  auto [ours, theirs] = test::make_socket_pair();
  server_.serve_connection(std::move(ours));
  run(io_, [&]() -> Task<void> {
    Transport peer(io_.get_executor(), std::move(theirs));
    auto expect_status = [&](std::string frame, std::string_view message) -> Task<void> {
      co_await peer.write_all(asio::buffer(frame));
      const std::string response = co_await read_frame(peer);
      EXPECT_EQ(response.substr(frame_header_size + 2, 2), bytes({0x08, 0x03})) << message;
      EXPECT_THAT(response, HasSubstr(std::string(message)));
    };
    co_await expect_status(request_frame(2, "test.Echo", "Echo", {}), "StreamID must be odd");
    co_await expect_status(request_frame(5, "test.Echo", "Fail", {}) + request_frame(5, "test.Echo", "Echo", {}),
                           "StreamID cannot be re-used");
    const std::string failed = co_await read_frame(peer);  // stream 5's own answer, after its handler ran
    EXPECT_THAT(failed, HasSubstr("container abc not found"));
    std::string garbage = bytes({0, 0, 0, 2, 0, 0, 0, 7, 1, 0, 0xff, 0xff});
    co_await expect_status(garbage, "unmarshal request error");
    std::string data;
    append_frame(data, 9, MessageType::data, 0, "x");
    co_await expect_status(data, "StreamID is no longer active");
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, GracefulShutdownDrainsInFlightCalls) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    std::optional<std::string> answer;
    asio::co_spawn(io_, [&]() -> Task<void> { answer = co_await client.call("test.Echo", "Hang", {}); }, asio::detached);
    while (hanging_ == 0) co_await sleep_for(1ms);
    bool shut_down = false;
    asio::co_spawn(io_, [&]() -> Task<void> {
      co_await server_.shutdown(generous);
      shut_down = true;
    }, asio::detached);
    co_await sleep_for(10ms);
    EXPECT_FALSE(shut_down);
    // No new connections once shutting down.
    try {
      co_await Client::connect_unix(io_.get_executor(), socket_path());
    } catch (const Error&) {
    }
    release_hanging();
    while (!shut_down) co_await sleep_for(1ms);
    EXPECT_EQ(answer, "late");
    EXPECT_EQ(server_.connection_count(), 0u);
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ShutdownAbandonsCallsAfterTheDrainTimeout) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    std::optional<Errc> outcome;
    asio::co_spawn(io_, [&]() -> Task<void> {
      try {
        co_await client.call("test.Echo", "Hang", {});
      } catch (const Error& e) {
        outcome = e.code();
      }
    }, asio::detached);
    while (hanging_ == 0) co_await sleep_for(1ms);
    co_await server_.shutdown(20ms);
    while (!outcome) co_await sleep_for(1ms);
    EXPECT_EQ(*outcome, Errc::unavailable);
    release_hanging();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ClientVanishingMidCallLeaksNothing) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    {
      Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
      asio::co_spawn(io_, [&]() -> Task<void> {
        try {
          co_await client.call("test.Echo", "Hang", {});
        } catch (const Error&) {
        }
      }, asio::detached);
      while (hanging_ == 0) co_await sleep_for(1ms);
    }
    while (server_.connection_count() > 0) co_await sleep_for(1ms);
    EXPECT_EQ(server_.active_calls(), 1u);
    release_hanging();
    while (server_.active_calls() > 0) co_await sleep_for(1ms);
    EXPECT_EQ(saw_cancelled_, 1);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ServerStreaming) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    ClientStream stream = co_await client.open_stream("test.Echo", "Count", {false, true}, "3");
    std::vector<std::string> got;
    while (auto message = co_await stream.recv()) got.push_back(*message);
    EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2"}));
    EXPECT_EQ(client.pending_calls(), 0u);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ClientStreaming) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    ClientStream stream = co_await client.open_stream("test.Echo", "Sum", {true, false}, std::nullopt);
    for (int i = 1; i <= 4; ++i) co_await stream.send(std::to_string(i));
    co_await stream.close_send();
    EXPECT_EQ(co_await stream.recv(), "10");
    EXPECT_EQ(co_await stream.recv(), std::nullopt);
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, BidirectionalStreaming) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    ClientStream stream = co_await client.open_stream("test.Echo", "Chat", {true, true}, std::nullopt);
    co_await stream.send("a");
    EXPECT_EQ(co_await stream.recv(), "re:a");
    co_await stream.send("b");
    EXPECT_EQ(co_await stream.recv(), "re:b");
    co_await stream.close_send();
    EXPECT_EQ(co_await stream.recv(), "bye");
    EXPECT_EQ(co_await stream.recv(), std::nullopt);
    try {
      co_await stream.send("c");
      ADD_FAILURE() << "send after close_send";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::failed_precondition);
    }
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, LargeRequestsInGoFieldOrderArrivingInPieces) {
  auto [ours, theirs] = test::make_socket_pair();
  server_.serve_connection(std::move(ours));
  run(io_, [&]() -> Task<void> {
    Transport peer(io_.get_executor(), std::move(theirs));
    // Go puts the payload before timeout_nano and metadata, so the payload is not the end of the
    // frame; the server keeps the whole frame and hands the handler a view into it.
    for (std::uint32_t id : {1u, 3u}) {
      const std::string payload(300 * 1024 + id, static_cast<char>('a' + id));
      const std::string request = bytes_field(1, "test.Echo") + bytes_field(2, "Echo") + bytes_field(3, payload) +
                                  "\x20" + varint(60'000'000'000) + bytes_field(5, bytes_field(1, "k") + bytes_field(2, "v"));
      const std::string encoded = frame(id, MessageType::request, request);
      const std::vector<std::size_t> cuts{4, 12, 15, 30, 70'000};
      co_await write_in_pieces(peer, encoded, cuts);
      const std::string response = co_await read_frame(peer);
      detail::ResponseView view;
      EXPECT_TRUE(detail::decode_response(std::string_view(response).substr(frame_header_size), view));
      EXPECT_EQ(view.code, 0);
      EXPECT_TRUE(view.payload == "echo:v:" + payload) << "stream " << id;
    }
    // Small frames after large ones still work (and let the connection drop its spare buffer).
    for (std::uint32_t id : {5u, 7u}) {
      const std::string small = request_frame(id, "test.Echo", "Echo", "s");
      co_await peer.write_all(asio::buffer(small));
      const std::string response = co_await read_frame(peer);
      EXPECT_TRUE(response.ends_with("echo:s"));
    }
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, LargeResponsesInEveryLayout) {
  auto [ours, theirs] = test::make_socket_pair();
  run(io_, [&]() -> Task<void> {
    Client client(io_.get_executor(), std::move(ours));
    Transport peer(io_.get_executor(), std::move(theirs));
    const std::string payload(400 * 1024, 'r');
    const std::string long_message(100 * 1024, 'e');
    struct Case {
      std::string name;
      std::string response;  ///< the Response message
      std::vector<std::size_t> cuts;
    };
    const std::vector<Case> cases{
        // What Go and we send: the payload ends the frame and is read into the caller's string.
        {"payload only, header and envelope split", bytes_field(2, payload), {3, 11, 12, 13, 5000}},
        {"status then payload", bytes_field(1, bytes({0x08, 0x00})) + bytes_field(2, payload), {}},
        // Another field after the payload: read whole, then decoded.
        {"payload not last", bytes_field(2, payload) + bytes_field(9, "x"), {20}},
        // A status message larger than the read buffer before the payload: read whole.
        {"huge status message", bytes_field(1, "\x08\x05" + bytes_field(2, long_message)), {}},
    };
    for (const Case& c : cases) {
      std::optional<std::string> answer;
      std::optional<Error> failure;
      asio::co_spawn(io_, [&]() -> Task<void> {
        try {
          answer = co_await client.call("test.Echo", "Echo", "q", CallOptions::with_timeout(generous));
        } catch (const Error& e) {
          failure = e;
        }
      }, asio::detached);
      const std::string request = co_await read_frame(peer);
      const auto header = decode_header(std::span<const std::uint8_t, frame_header_size>(
          reinterpret_cast<const std::uint8_t*>(request.data()), frame_header_size));
      const std::string encoded = frame(header.stream_id, MessageType::response, c.response);
      co_await write_in_pieces(peer, encoded, c.cuts);
      while (!answer && !failure) co_await sleep_for(1ms);
      if (c.name == "huge status message") {
        EXPECT_TRUE(failure && failure->code() == Errc::not_found && failure->what() == long_message) << c.name;
      } else {
        EXPECT_TRUE(answer && *answer == payload) << c.name << ": " << (failure ? failure->what() : "");
      }
    }
    EXPECT_EQ(client.pending_calls(), 0u);
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, LargeStreamMessagesBothWays) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    ClientStream stream = co_await client.open_stream("test.Echo", "Chat", {true, true}, std::nullopt);
    for (const std::size_t size : {200'000, 1 << 20, 70'000}) {
      const std::string message(size, 'm');
      co_await stream.send(message);
      EXPECT_TRUE(co_await stream.recv() == "re:" + message) << size;
    }
    co_await stream.close_send();
    EXPECT_EQ(co_await stream.recv(), "bye");
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, ServeInheritedListenerFd) {
  UniqueFd listener = listen_unix(socket_path());
  server_.serve_listener(std::move(listener));
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    EXPECT_EQ(co_await client.call("test.Echo", "Echo", "fd"), "echo:fd");
    server_.close();
  }());
  expect_no_leaks();
}

TEST_F(TtrpcTest, RegistrationErrors) {
  ServiceDefinition again("test.Echo");
  again.add_unary("X", [](std::string_view, const CallContext&) -> Task<std::string> { co_return ""; });
  EXPECT_THROW(server_.add_service(std::move(again)), Error);
  ServiceDefinition twice("test.Twice");
  twice.add_unary("X", [](std::string_view, const CallContext&) -> Task<std::string> { co_return ""; });
  EXPECT_THROW(twice.add_unary("X", [](std::string_view, const CallContext&) -> Task<std::string> { co_return ""; }),
               Error);
  // listen_unix refuses to replace a file that is not a socket.
  std::ofstream(socket_path()) << "x";
  EXPECT_THROW(server_.listen_unix(socket_path()), Error);
}

TEST_F(TtrpcTest, MemoryReturnsToBaselineAfterManyCalls) {
  server_.listen_unix(socket_path());
  run(io_, [&]() -> Task<void> {
    Client client = co_await Client::connect_unix(io_.get_executor(), socket_path());
    for (int i = 0; i < 10'000; ++i) {
      co_await client.call("test.Echo", "Echo", "x", CallOptions::with_timeout(generous));
    }
    EXPECT_EQ(client.pending_calls(), 0u);
    EXPECT_EQ(server_.active_calls(), 0u);
    EXPECT_EQ(live_server_objects(), baseline_server_ + 1);  // just the connection
    server_.close();
  }());
  expect_no_leaks();
}

}  // namespace
}  // namespace kata::ttrpc
