// Fuzzes a server connection: arbitrary bytes arrive on a socketpair, then the peer hangs up.
//
// Invariants checked on every input: the server survives, it closes the connection once the
// peer is gone, every handler finishes, and no server-side object (connection or call) is left
// alive afterwards.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "kata/core/error.hpp"
#include "kata/ttrpc/server.hpp"

namespace {

using namespace std::chrono_literals;

struct Harness {
  Harness() : server(io.get_executor()) {
    kata::ttrpc::ServiceDefinition echo("fuzz.Echo");
    echo.add_unary("Echo", [](std::string_view request, const kata::ttrpc::CallContext&) -> kata::Task<std::string> {
      co_return std::string(request);
    });
    echo.add_unary("Fail", [](std::string_view, const kata::ttrpc::CallContext&) -> kata::Task<std::string> {
      kata::fail(kata::Errc::not_found, "nothing");
      co_return std::string();
    });
    echo.add_unary("Sleep", [](std::string_view, const kata::ttrpc::CallContext&) -> kata::Task<std::string> {
      kata::asio::steady_timer timer(co_await kata::asio::this_coro::executor, 1ms);
      co_await timer.async_wait(kata::asio::use_awaitable_t<kata::Executor>{});
      co_return "slept";
    });
    echo.add_stream("Chat", {true, true},
                    [](kata::ttrpc::ServerStream& stream,
                       const kata::ttrpc::CallContext&) -> kata::Task<std::optional<std::string>> {
                      while (auto message = co_await stream.recv()) co_await stream.send(*message);
                      co_return std::nullopt;
                    });
    echo.add_stream("Count", {false, true},
                    [](kata::ttrpc::ServerStream& stream,
                       const kata::ttrpc::CallContext&) -> kata::Task<std::optional<std::string>> {
                      const auto first = co_await stream.recv();
                      for (std::size_t i = 0; first && i < first->size() % 4; ++i) co_await stream.send("n");
                      co_return std::string("done");
                    });
    server.add_service(std::move(echo));
  }

  kata::asio::io_context io;
  kata::ttrpc::Server server;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Harness harness;
  const std::size_t baseline = kata::ttrpc::live_server_objects();

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) std::abort();
  kata::UniqueFd peer(fds[1]);
  harness.server.serve_connection(kata::UniqueFd(fds[0]));

  // Feed the input while letting the server run, discarding whatever it answers.
  std::size_t sent = 0;
  char sink[65536];
  while (sent < size) {
    const ssize_t n = ::send(peer.get(), data + sent, size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EAGAIN) {
      break;  // the server already closed: garbage it could not accept
    }
    while (::recv(peer.get(), sink, sizeof(sink), 0) > 0) {
    }
    harness.io.poll();
    harness.io.restart();
  }
  ::shutdown(peer.get(), SHUT_WR);

  // The server must notice the hang-up, finish every call and release everything.
  for (int round = 0; round < 100000; ++round) {
    while (::recv(peer.get(), sink, sizeof(sink), 0) > 0) {
    }
    if (harness.server.connection_count() == 0 && harness.server.active_calls() == 0 &&
        kata::ttrpc::live_server_objects() == baseline) {
      return 0;
    }
    harness.io.run_one_for(10ms);
    harness.io.restart();
  }
  std::abort();  // a connection, call or handler outlived its peer
}
