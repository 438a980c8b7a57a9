// ttRPC benchmark processes. Every client mode prints one line:
//   <p50 µs> <p99 µs> <calls/s> <client RSS kB> <client PSS kB>
//
//   ttrpc_bench server <socket>                          C++ ttRPC echo server (until SIGTERM)
//   ttrpc_bench client <socket> <bytes> <callers> <calls> C++ ttRPC client
//   ttrpc_bench echo-server <socket> [sndbuf]            plain socket echo, blocking (the floor)
//   ttrpc_bench echo-client <socket> <bytes> <calls> [sndbuf]  plain socket client, one in flight
//
// The echo pair is the floor: one write and one read per side per round trip with blocking
// system calls and no framing beyond a 4-byte length, so it is what the kernel costs. With
// `sndbuf` both ends ask for that SO_SNDBUF, as kata::ttrpc does for its unix sockets, so the
// floor can also be measured with the same socket buffers.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "kata/core/error.hpp"
#include "kata/ttrpc/client.hpp"
#include "kata/ttrpc/server.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Memory {
  long rss_kb = 0;
  long pss_kb = 0;
};

Memory memory_of_self() {
  Memory memory;
  std::ifstream smaps("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(smaps, line)) {
    if (line.starts_with("Rss:")) memory.rss_kb = std::stol(line.substr(4));
    if (line.starts_with("Pss:")) memory.pss_kb = std::stol(line.substr(4));
  }
  return memory;
}

void report(std::vector<double>& latencies_us, double seconds) {
  std::sort(latencies_us.begin(), latencies_us.end());
  const auto at = [&](double q) { return latencies_us[static_cast<std::size_t>(q * (latencies_us.size() - 1))]; };
  const Memory memory = memory_of_self();
  std::printf("%.1f %.1f %.0f %ld %ld\n", at(0.50), at(0.99), static_cast<double>(latencies_us.size()) / seconds,
              memory.rss_kb, memory.pss_kb);
}

int run_server(const std::string& path) {
  kata::asio::io_context io(1);
  kata::ttrpc::Server server(io.get_executor());
  kata::ttrpc::ServiceDefinition echo("bench.Echo");
  echo.add_unary("Echo", [](std::string_view request, const kata::ttrpc::CallContext&) -> kata::Task<std::string> {
    co_return std::string(request);
  });
  server.add_service(std::move(echo));
  server.listen_unix(path);
  kata::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code&, int) { server.close(); });
  io.run();
  return 0;
}

int run_client(const std::string& path, std::size_t bytes, int callers, int calls) {
  kata::asio::io_context io(1);
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(calls));
  double seconds = 0;
  kata::asio::co_spawn(io, [&]() -> kata::Task<void> {
    kata::ttrpc::Client client = co_await kata::ttrpc::Client::connect_unix(io.get_executor(), path);
    const std::string payload(bytes, 'p');
    const int warmup = std::max(10, calls / 10);
    for (int i = 0; i < warmup; ++i) co_await client.call("bench.Echo", "Echo", payload);
    int remaining = calls;
    int running = callers;
    const auto start = Clock::now();
    kata::asio::steady_timer done(io, Clock::time_point::max());
    for (int c = 0; c < callers; ++c) {
      kata::asio::co_spawn(io, [&]() -> kata::Task<void> {
        while (remaining > 0) {
          --remaining;
          const auto t0 = Clock::now();
          const std::string answer = co_await client.call("bench.Echo", "Echo", payload);
          latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
          if (answer.size() != bytes) kata::fail(kata::Errc::data_loss, "short echo");
        }
        if (--running == 0) done.cancel();
      }, kata::asio::detached);
    }
    boost::system::error_code ignored;
    co_await done.async_wait(kata::asio::redirect_error(kata::asio::use_awaitable_t<kata::Executor>{}, ignored));
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }, [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
  report(latencies, seconds);
  return 0;
}

int unix_socket() {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) kata::fail_errno(errno, "socket");
  return fd;
}

void set_send_buffer(int fd, int bytes) {
  if (bytes > 0 && ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) != 0) {
    kata::fail_errno(errno, "setsockopt SO_SNDBUF");
  }
}

sockaddr_un address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  return address;
}

bool read_all(int fd, char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::read(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

int run_echo_server(const std::string& path, int sndbuf) {
  ::unlink(path.c_str());
  const int listener = unix_socket();
  const sockaddr_un address = address_of(path);
  if (::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) kata::fail_errno(errno, "bind");
  if (::listen(listener, 16) != 0) kata::fail_errno(errno, "listen");
  for (;;) {
    const int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;
    set_send_buffer(connection, sndbuf);
    std::thread([connection] {
      std::vector<char> buffer;
      std::uint32_t length = 0;
      while (read_all(connection, reinterpret_cast<char*>(&length), sizeof(length))) {
        buffer.resize(sizeof(length) + length);
        std::memcpy(buffer.data(), &length, sizeof(length));
        if (!read_all(connection, buffer.data() + sizeof(length), length)) break;
        if (!write_all(connection, buffer.data(), buffer.size())) break;
      }
      ::close(connection);
    }).detach();
  }
}

int run_echo_client(const std::string& path, std::size_t bytes, int calls, int sndbuf) {
  const int fd = unix_socket();
  set_send_buffer(fd, sndbuf);
  const sockaddr_un address = address_of(path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) kata::fail_errno(errno, "connect");
  std::string message(sizeof(std::uint32_t) + bytes, 'p');
  const auto length = static_cast<std::uint32_t>(bytes);
  std::memcpy(message.data(), &length, sizeof(length));
  std::string answer(message.size(), '\0');
  const auto round_trip = [&] {
    if (!write_all(fd, message.data(), message.size()) || !read_all(fd, answer.data(), answer.size())) {
      kata::fail(kata::Errc::unavailable, "echo server went away");
    }
  };
  for (int i = 0; i < std::max(10, calls / 10); ++i) round_trip();
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(calls));
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) {
    const auto t0 = Clock::now();
    round_trip();
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  report(latencies, std::chrono::duration<double>(Clock::now() - start).count());
  ::close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 2 && args[0] == "server") return run_server(args[1]);
    if (args.size() == 5 && args[0] == "client") {
      return run_client(args[1], std::stoul(args[2]), std::stoi(args[3]), std::stoi(args[4]));
    }
    if ((args.size() == 2 || args.size() == 3) && args[0] == "echo-server") {
      return run_echo_server(args[1], args.size() == 3 ? std::stoi(args[2]) : 0);
    }
    if ((args.size() == 4 || args.size() == 5) && args[0] == "echo-client") {
      return run_echo_client(args[1], std::stoul(args[2]), std::stoi(args[3]), args.size() == 5 ? std::stoi(args[4]) : 0);
    }
    std::fprintf(stderr, "usage: see the comment at the top of bench/ttrpc/ttrpc_bench.cpp\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ttrpc_bench: %s\n", kata::describe(e).c_str());
    return 1;
  }
}
