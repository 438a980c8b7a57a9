#include "kata/agent/transport.hpp"

#include "kata/core/fd_wait.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>

#include <boost/asio/use_future.hpp>

namespace kata::agent {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/kata-test-agent-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path_); }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

UniqueFd listen_unix(const fs::path& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(::listen(fd.get(), 4), 0);
  return fd;
}

template <class T>
T run_task(Task<T> task) {
  asio::io_context io;
  auto result = asio::co_spawn(io, std::move(task), asio::use_future);
  io.run();
  return result.get();
}

DialOptions within(std::chrono::milliseconds timeout) {
  return DialOptions{.deadline = std::chrono::steady_clock::now() + timeout, .retry_interval = 10ms};
}

TEST(SerialPortTransport, ConnectsToChardevSocket) {
  TempDir dir;
  auto listener = listen_unix(dir.path() / "agent.sock");
  hypervisor::AgentAddress address = hypervisor::SerialPortAddress{dir.path() / "agent.sock"};
  auto connect = [&]() -> Task<UniqueFd> {
    auto executor = co_await asio::this_coro::executor;
    co_return co_await SerialPortTransport::connect(executor, address, within(1000ms));
  };
  UniqueFd fd = run_task(connect());
  ASSERT_TRUE(fd);
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_EQ(::write(fd.get(), "x", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(accepted.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
}

TEST(SerialPortTransport, RetriesUntilTheSocketAppears) {
  TempDir dir;
  const auto path = dir.path() / "late.sock";
  UniqueFd listener;
  std::thread late([&] {
    std::this_thread::sleep_for(100ms);
    listener = listen_unix(path);
  });
  hypervisor::AgentAddress address = hypervisor::SerialPortAddress{path};
  auto connect = [&]() -> Task<UniqueFd> {
    auto executor = co_await asio::this_coro::executor;
    co_return co_await SerialPortTransport::connect(executor, address, within(5000ms));
  };
  UniqueFd fd = run_task(connect());
  late.join();
  EXPECT_TRUE(fd);
}

TEST(SerialPortTransport, DeadlineErrorNamesAddressAndCause) {
  TempDir dir;
  hypervisor::AgentAddress address = hypervisor::SerialPortAddress{dir.path() / "absent.sock"};
  auto connect = [&]() -> Task<UniqueFd> {
    auto executor = co_await asio::this_coro::executor;
    co_return co_await SerialPortTransport::connect(executor, address, within(50ms));
  };
  try {
    (void)run_task(connect());
    FAIL() << "expected a deadline error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::deadline_exceeded);
    const std::string text = e.what();
    EXPECT_NE(text.find("connect to agent at serial://" + (dir.path() / "absent.sock").string()), std::string::npos) << text;
    EXPECT_NE(text.find("No such file or directory"), std::string::npos) << text;
  }
}

TEST(SerialPortTransport, AlwaysMakesOneAttemptEvenPastTheDeadline) {
  TempDir dir;
  auto listener = listen_unix(dir.path() / "agent.sock");
  hypervisor::AgentAddress address = hypervisor::SerialPortAddress{dir.path() / "agent.sock"};
  auto connect = [&]() -> Task<UniqueFd> {
    auto executor = co_await asio::this_coro::executor;
    DialOptions expired{.deadline = std::chrono::steady_clock::now() - 1s};
    co_return co_await SerialPortTransport::connect(executor, address, expired);
  };
  EXPECT_TRUE(run_task(connect()));
}

TEST(HybridVsockTransport, PerformsConnectHandshake) {
  TempDir dir;
  const auto path = dir.path() / "kata.hvsock";
  auto listener = listen_unix(path);
  std::string received;
  std::thread vmm([&] {
    // First connection: the guest is not listening yet, the VMM closes without OK.
    UniqueFd first(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char buffer[64] = {};
    (void)::read(first.get(), buffer, sizeof buffer);
    first.reset();
    UniqueFd second(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    const auto got = ::read(second.get(), buffer, sizeof buffer);
    received.assign(buffer, got > 0 ? static_cast<std::size_t>(got) : 0u);
    (void)::write(second.get(), "OK 1073741824\n", 14);
    (void)::write(second.get(), "P", 1);  // the raw stream starts right after the line
    std::this_thread::sleep_for(100ms);
  });
  hypervisor::AgentAddress address = hypervisor::HybridVsockAddress{path, 1024};
  auto connect = [&]() -> Task<UniqueFd> {
    auto executor = co_await asio::this_coro::executor;
    co_return co_await AnyTransport<VsockTransport, HybridVsockTransport>::connect(executor, address, within(5000ms));
  };
  UniqueFd fd = run_task(connect());
  ASSERT_TRUE(fd);
  char c = 0;
  ASSERT_TRUE(run_task([&]() -> Task<bool> {
    auto executor = co_await asio::this_coro::executor;
    co_return co_await wait_fd_until(executor, fd.get(), FdReadiness::readable, std::chrono::steady_clock::now() + 5s);
  }()));
  EXPECT_EQ(::read(fd.get(), &c, 1), 1);
  EXPECT_EQ(c, 'P');
  vmm.join();
  EXPECT_EQ(received, "connect 1024\n");
}

TEST(AnyTransport, RefusesAddressesNoListedTransportCanDial) {
  hypervisor::AgentAddress address = hypervisor::RemoteAddress{"/run/peerpod/agent.sock"};
  EXPECT_FALSE((AnyTransport<SerialPortTransport, VsockTransport>::accepts(address)));
  auto connect = [&]() -> Task<UniqueFd> {
    auto executor = co_await asio::this_coro::executor;
    co_return co_await AnyTransport<SerialPortTransport, VsockTransport>::connect(executor, address, within(10ms));
  };
  try {
    (void)run_task(connect());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_STREQ(e.what(), "no agent transport of this variant can dial remote:///run/peerpod/agent.sock");
  }
}

}  // namespace
}  // namespace kata::agent
