// The QMP client against a scripted fake QEMU on the other end of a socketpair: greeting,
// replies, events interleaved with replies, SCM_RIGHTS reception, late replies, EOF mid-reply.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/write.hpp>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/hypervisor/qemu/qmp.hpp"

namespace kata::hypervisor::qemu {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Socket = asio::local::stream_protocol::socket;

const json greeting = json::parse(
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "test"}, "capabilities": ["oob"]}})");

/// The QEMU side: reads requests line by line (collecting any descriptors passed with them) and
/// writes whatever the test scripts.
class FakeQemu {
 public:
  explicit FakeQemu(Socket socket) : socket_(std::move(socket)) {}

  Task<void> send(const json& message) { co_await send_raw(message.dump() + "\r\n"); }

  Task<void> send_raw(std::string text) {
    co_await asio::async_write(socket_, asio::buffer(text), asio::use_awaitable);
  }

  /// The next request; descriptors that came with it are appended to received_fds.
  Task<json> read_request() {
    for (;;) {
      const auto end = input_.find('\n');
      if (end != std::string::npos) {
        const std::string line = input_.substr(0, end);
        input_.erase(0, end + 1);
        co_return json::parse(line);
      }
      co_await socket_.async_wait(Socket::wait_read, asio::use_awaitable);
      char data[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
      iovec vector{data, sizeof data};
      msghdr message{};
      message.msg_iov = &vector;
      message.msg_iovlen = 1;
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(socket_.native_handle(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) fail(Errc::unavailable, "fake QEMU: client went away");
      for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS) {
          const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
            received_fds.emplace_back(fd);
          }
        }
      }
      input_.append(data, static_cast<std::size_t>(n));
    }
  }

  /// True when the client has written nothing beyond what was read (no second request in flight).
  bool nothing_more_pending() {
    if (input_.find('\n') != std::string::npos) return false;
    char byte;
    return ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
  }

  Task<void> reply(const json& request, json value) {
    json message = {{"return", std::move(value)}, {"id", request["id"]}};
    co_await send(message);
  }

  /// Greeting + qmp_capabilities.
  Task<void> accept_handshake() {
    co_await send(greeting);
    json request = co_await read_request();
    EXPECT_EQ(request["execute"], "qmp_capabilities");
    co_await reply(request, json::object());
  }

  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  std::vector<UniqueFd> received_fds;

 private:
  Socket socket_;
  std::string input_;
};

struct Harness {
  asio::io_context io;
  std::unique_ptr<QmpClient> client;
  std::unique_ptr<FakeQemu> qemu;

  Harness() {
    Socket ours(io), theirs(io);
    asio::local::connect_pair(ours, theirs);
    client = std::make_unique<QmpClient>(std::move(ours));
    qemu = std::make_unique<FakeQemu>(std::move(theirs));
  }

  /// Runs the client-side and QEMU-side scripts to completion; exceptions escaping either fail the test.
  void run(std::function<Task<void>()> client_script, std::function<Task<void>()> qemu_script) {
    auto report = [](std::string who) {
      return [who](std::exception_ptr error) {
        if (error) ADD_FAILURE() << who << ": " << describe(error);
      };
    };
    // The client script ends the connection when done, so the reader (and io.run) finish.
    auto client_side = [&]() -> Task<void> {
      std::exception_ptr error;
      try {
        co_await client_script();
      } catch (...) {
        error = std::current_exception();
      }
      client->close();
      if (error) std::rethrow_exception(error);
    };
    asio::co_spawn(io, client_side(), report("client"));
    asio::co_spawn(io, qemu_script(), report("fake qemu"));
    io.run();
  }
};

json error_reply(const json& request, const std::string& error_class, const std::string& desc) {
  json error;
  error["class"] = error_class;
  error["desc"] = desc;
  json reply;
  reply["error"] = error;
  reply["id"] = request["id"];
  return reply;
}

Errc error_code_of(std::exception_ptr error) { return code_of(error); }

template <class F>
Task<std::exception_ptr> capture(F f) {
  try {
    co_await f();
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

TEST(QmpClient, HandshakeReturnsTheGreetingAndNegotiatesCapabilities) {
  Harness h;
  json info;
  h.run([&]() -> Task<void> { info = co_await h.client->handshake(5s); },
        [&]() -> Task<void> { co_await h.qemu->accept_handshake(); });
  EXPECT_EQ(info["version"]["qemu"]["major"], 7);
}

TEST(QmpClient, EventsInterleavedWithRepliesGoToSubscribers) {
  Harness h;
  json status;
  std::vector<std::string> seen;
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        auto deleted = h.client->subscribe("DEVICE_DELETED");
        auto everything = h.client->subscribe("");
        status = co_await h.client->execute("query-status");
        auto event = co_await deleted.next(std::chrono::steady_clock::now() + 5s);
        EXPECT_TRUE(event.has_value());
        if (event) {
          EXPECT_EQ(event->data["device"], "blk0");
        }
        for (int i = 0; i < 2; ++i) {
          auto any = co_await everything.next(std::chrono::steady_clock::now() + 5s);
          if (any) seen.push_back(any->name);
        }
        // Nothing else is queued: the deadline passes.
        auto none = co_await deleted.next(std::chrono::steady_clock::now() + 10ms);
        EXPECT_FALSE(none.has_value());
      },
      [&]() -> Task<void> {
        co_await h.qemu->accept_handshake();
        json request = co_await h.qemu->read_request();
        EXPECT_EQ(request["execute"], "query-status");
        // Events before the reply, as QEMU does when something happens meanwhile.
        co_await h.qemu->send(json::parse(R"({"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}})"));
        co_await h.qemu->send(json::parse(R"({"event": "DEVICE_DELETED", "data": {"device": "blk0", "path": "/x"}})"));
        co_await h.qemu->reply(request, json::parse(R"({"status": "running", "running": true})"));
      });
  EXPECT_EQ(status["status"], "running");
  EXPECT_EQ(seen, (std::vector<std::string>{"RESUME", "DEVICE_DELETED"}));
}

TEST(QmpClient, ErrorRepliesBecomeErrorsWithClassAndDescription) {
  Harness h;
  std::exception_ptr generic, missing, unknown_command;
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        json arguments = {{"driver", "virtio-blk-pci"}, {"id", "blk0"}};
        generic = co_await capture([&]() -> Task<void> { co_await h.client->execute("device_add", arguments); });
        json del = {{"id", "nope"}};
        missing = co_await capture([&]() -> Task<void> { co_await h.client->execute("device_del", del); });
        unknown_command = co_await capture([&]() -> Task<void> { co_await h.client->execute("frobnicate"); });
      },
      [&]() -> Task<void> {
        co_await h.qemu->accept_handshake();
        json request = co_await h.qemu->read_request();
        EXPECT_EQ(request["arguments"]["id"], "blk0");
        co_await h.qemu->send(error_reply(request, "GenericError", "Duplicate device ID 'blk0'"));
        request = co_await h.qemu->read_request();
        co_await h.qemu->send(error_reply(request, "DeviceNotFound", "Device 'nope' not found"));
        request = co_await h.qemu->read_request();
        co_await h.qemu->send(error_reply(request, "CommandNotFound", "The command frobnicate has not been found"));
      });
  ASSERT_TRUE(generic && missing && unknown_command);
  EXPECT_EQ(error_code_of(generic), Errc::failed_precondition);
  EXPECT_EQ(describe(generic), "QMP device_add: Duplicate device ID 'blk0' (GenericError)");
  EXPECT_EQ(error_code_of(missing), Errc::not_found);
  EXPECT_EQ(error_code_of(unknown_command), Errc::not_supported);
}

TEST(QmpClient, ConcurrentCallersGetTheirOwnRepliesOneExchangeAtATime) {
  Harness h;
  constexpr int callers = 8;
  std::vector<json> results(callers);
  int overlapping = 0;
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        int done = 0;
        for (int i = 0; i < callers; ++i) {
          asio::co_spawn(
              h.io,
              [&, i]() -> Task<void> {
                json arguments = {{"path", "/machine/peripheral/cpu" + std::to_string(i)}};
                results[i] = co_await h.client->execute("qom-get", arguments);
                ++done;
              },
              asio::detached);
        }
        asio::steady_timer poll(h.io);
        while (done < callers) {
          poll.expires_after(1ms);
          co_await poll.async_wait(asio::use_awaitable);
        }
      },
      [&]() -> Task<void> {
        co_await h.qemu->accept_handshake();
        asio::steady_timer pause(h.io);
        for (int i = 0; i < callers; ++i) {
          json request = co_await h.qemu->read_request();
          // Give a misbehaving client every chance to send the next request early.
          pause.expires_after(2ms);
          co_await pause.async_wait(asio::use_awaitable);
          if (!h.qemu->nothing_more_pending()) ++overlapping;
          if (i % 2 == 0) co_await h.qemu->send(json::parse(R"({"event": "ACPI_DEVICE_OST", "data": {}})"));
          co_await h.qemu->reply(request, request["arguments"]["path"]);
        }
      });
  EXPECT_EQ(overlapping, 0);
  for (int i = 0; i < callers; ++i) EXPECT_EQ(results[i], "/machine/peripheral/cpu" + std::to_string(i));
}

TEST(QmpClient, ALateReplyAfterADeadlineIsNeverHandedToTheNextCaller) {
  Harness h;
  std::exception_ptr slow;
  json second;
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        slow = co_await capture([&]() -> Task<void> { co_await h.client->execute("query-slow", json::object(), 20ms); });
        second = co_await h.client->execute("query-status");
      },
      [&]() -> Task<void> {
        co_await h.qemu->accept_handshake();
        json first = co_await h.qemu->read_request();
        json next = co_await h.qemu->read_request();  // only sent after the first timed out
        co_await h.qemu->reply(first, "stale");
        co_await h.qemu->reply(next, "fresh");
      });
  ASSERT_TRUE(slow);
  EXPECT_EQ(error_code_of(slow), Errc::deadline_exceeded);
  EXPECT_EQ(second, "fresh");
}

TEST(QmpClient, EofMidReplyFailsTheWaitingAndQueuedCommandsAndSubscribersAtOnce) {
  Harness h;
  std::vector<std::exception_ptr> errors(3);
  std::exception_ptr subscriber_error;
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        auto events = h.client->subscribe("SHUTDOWN");
        for (int i = 0; i < 3; ++i) {
          asio::co_spawn(
              h.io,
              [&, i]() -> Task<void> {
                errors[i] = co_await capture([&]() -> Task<void> { co_await h.client->execute("query-status"); });
              },
              asio::detached);
        }
        subscriber_error = co_await capture([&]() -> Task<void> {
          co_await events.next(std::chrono::steady_clock::now() + 60s);
        });
        EXPECT_FALSE(h.client->is_open());
      },
      [&]() -> Task<void> {
        co_await h.qemu->accept_handshake();
        json request = co_await h.qemu->read_request();
        co_await h.qemu->send_raw(R"({"return": {"status": "runn)");
        h.qemu->close();
      });
  for (const auto& error : errors) {
    ASSERT_TRUE(error);
    EXPECT_EQ(error_code_of(error), Errc::unavailable) << describe(error);
  }
  EXPECT_EQ(describe(errors[0]), "QMP query-status: QEMU closed the QMP connection");
  ASSERT_TRUE(subscriber_error);
  EXPECT_EQ(error_code_of(subscriber_error), Errc::unavailable);
}

TEST(QmpClient, DescriptorsTravelWithTheRequestAsScmRights) {
  Harness h;
  Pipe pipe = make_pipe();
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        json arguments = {{"fdname", "tapfd0"}};
        co_await h.client->execute_with_fd("getfd", arguments, pipe.write_end.get());
      },
      [&]() -> Task<void> {
        co_await h.qemu->accept_handshake();
        json request = co_await h.qemu->read_request();
        EXPECT_EQ(request["execute"], "getfd");
        EXPECT_EQ(request["arguments"]["fdname"], "tapfd0");
        EXPECT_EQ(h.qemu->received_fds.size(), 1u);
        co_await h.qemu->reply(request, json::object());
      });
  ASSERT_EQ(h.qemu->received_fds.size(), 1u);
  // The received descriptor is the same pipe: bytes written to it come out of our read end.
  ASSERT_EQ(::write(h.qemu->received_fds[0].get(), "x", 1), 1);
  char byte = 0;
  ASSERT_EQ(::read(pipe.read_end.get(), &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
}

TEST(QmpClient, RepeatedConcurrentQuitIsHarmless) {
  Harness h;
  int succeeded = 0, unavailable = 0, other = 0;
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        int done = 0;
        for (int i = 0; i < 4; ++i) {
          asio::co_spawn(
              h.io,
              [&]() -> Task<void> {
                auto error = co_await capture([&]() -> Task<void> { co_await h.client->execute("quit"); });
                if (!error) ++succeeded;
                else if (code_of(error) == Errc::unavailable) ++unavailable;
                else ++other;
                ++done;
              },
              asio::detached);
        }
        asio::steady_timer poll(h.io);
        while (done < 4) {
          poll.expires_after(1ms);
          co_await poll.async_wait(asio::use_awaitable);
        }
      },
      [&]() -> Task<void> {
        co_await h.qemu->accept_handshake();
        json request = co_await h.qemu->read_request();
        co_await h.qemu->reply(request, json::object());
        co_await h.qemu->send(json::parse(R"({"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}})"));
        h.qemu->close();
      });
  EXPECT_EQ(succeeded, 1);
  EXPECT_EQ(unavailable, 3);
  EXPECT_EQ(other, 0);
}

TEST(QmpClient, HandshakeDeadlineAndGarbage) {
  {
    Harness h;
    std::exception_ptr error;
    h.run([&]() -> Task<void> { error = co_await capture([&]() -> Task<void> { co_await h.client->handshake(20ms); }); },
          [&]() -> Task<void> { co_return; });
    ASSERT_TRUE(error);
    EXPECT_EQ(error_code_of(error), Errc::deadline_exceeded);
    EXPECT_FALSE(h.client->is_open());
  }
  {
    Harness h;
    std::exception_ptr error;
    h.run([&]() -> Task<void> { error = co_await capture([&]() -> Task<void> { co_await h.client->handshake(5s); }); },
          [&]() -> Task<void> { co_await h.qemu->send_raw("SSH-2.0-OpenSSH\r\n"); });
    ASSERT_TRUE(error);
    EXPECT_EQ(error_code_of(error), Errc::data_loss) << describe(error);
  }
}

TEST(QmpClient, CommandsAfterCloseFailWithoutIo) {
  Harness h;
  std::exception_ptr error;
  h.run(
      [&]() -> Task<void> {
        co_await h.client->handshake(5s);
        h.client->close();
        h.client->close();
        error = co_await capture([&]() -> Task<void> { co_await h.client->execute("query-status"); });
      },
      [&]() -> Task<void> { co_await h.qemu->accept_handshake(); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error_code_of(error), Errc::unavailable);
}

}  // namespace
}  // namespace kata::hypervisor::qemu
