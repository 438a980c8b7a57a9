#include "kata/agent/transport.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <variant>

#include "kata/core/fd_wait.hpp"

namespace kata::agent {
namespace {

using Clock = std::chrono::steady_clock;

// One connect attempt on a fresh non-blocking socket: the connected descriptor, or the errno.
using Attempt = std::variant<UniqueFd, int>;

Task<Attempt> connect_once(Executor executor, int domain, const sockaddr* address, socklen_t length, Clock::time_point deadline) {
  UniqueFd fd(::socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) co_return errno;
  if (::connect(fd.get(), address, length) == 0) co_return std::move(fd);
  if (errno != EINPROGRESS && errno != EAGAIN) co_return errno;
  if (!co_await wait_fd_until(executor, fd.get(), FdReadiness::writable, deadline)) co_return ETIMEDOUT;
  int error = 0;
  socklen_t size = sizeof error;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size) != 0) co_return errno;
  if (error != 0) co_return error;
  co_return std::move(fd);
}

// Retries `attempt` until it connects or the deadline passes (at least once), then fails with the
// last error so the user sees *why* the agent was unreachable.
template <class MakeAttempt>
Task<UniqueFd> dial_with_retry(Executor executor, const std::string& url, const DialOptions& options, MakeAttempt make_attempt) {
  const auto started = Clock::now();
  int last_error = 0;
  for (bool first = true;; first = false) {
    if (!first && Clock::now() >= options.deadline) break;
    Attempt attempt = co_await make_attempt();
    if (auto* fd = std::get_if<UniqueFd>(&attempt)) co_return std::move(*fd);
    last_error = std::get<int>(attempt);
    if (Clock::now() + options.retry_interval >= options.deadline) break;
    asio::steady_timer pause(executor, options.retry_interval);
    co_await pause.async_wait(asio::use_awaitable);
  }
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  throw Error(Errc::deadline_exceeded,
              fmt::format("connect to agent at {}: no answer within {} ms: {}", url, waited, std::strerror(last_error)));
}

sockaddr_un unix_address(const std::filesystem::path& path, const std::string& url) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path.string();
  if (text.empty() || text.size() >= sizeof address.sun_path) {
    fail(Errc::invalid_argument, "connect to agent at {}: socket path is empty or longer than {} bytes", url,
         sizeof address.sun_path - 1);
  }
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  return address;
}

Task<UniqueFd> dial_unix(Executor executor, const std::filesystem::path& path, const std::string& url,
                         const DialOptions& options) {
  const sockaddr_un address = unix_address(path, url);
  co_return co_await dial_with_retry(executor, url, options, [&]() {
    return connect_once(executor, AF_UNIX, reinterpret_cast<const sockaddr*>(&address), sizeof address, options.deadline);
  });
}

// Reads one '\n'-terminated line (without it) before the deadline; at most 512 bytes.
Task<std::string> read_line(Executor executor, int fd, Clock::time_point deadline, const std::string& url) {
  std::string line;
  while (line.size() < 512) {
    char c;
    const ssize_t got = ::read(fd, &c, 1);
    if (got == 1) {
      if (c == '\n') co_return line;
      line += c;
      continue;
    }
    if (got == 0) fail(Errc::unavailable, "connect to agent at {}: hybrid vsock peer closed during handshake", url);
    if (errno == EINTR) continue;
    if (errno != EAGAIN) fail_errno(errno, "connect to agent at {}: read handshake reply", url);
    if (!co_await wait_fd_until(executor, fd, FdReadiness::readable, deadline)) {
      fail(Errc::deadline_exceeded, "connect to agent at {}: no handshake reply before the deadline", url);
    }
  }
  fail(Errc::unavailable, "connect to agent at {}: handshake reply longer than 512 bytes", url);
}

}  // namespace

bool SerialPortTransport::accepts(const hypervisor::AgentAddress& address) {
  return std::holds_alternative<hypervisor::SerialPortAddress>(address);
}

Task<UniqueFd> SerialPortTransport::connect(Executor executor, const hypervisor::AgentAddress& address,
                                            const DialOptions& options) {
  if (!accepts(address)) fail(Errc::invalid_argument, "{} cannot dial {}", name, hypervisor::to_url(address));
  const auto& serial = std::get<hypervisor::SerialPortAddress>(address);
  co_return co_await dial_unix(executor, serial.socket, hypervisor::to_url(address), options);
}

bool RemoteTransport::accepts(const hypervisor::AgentAddress& address) {
  return std::holds_alternative<hypervisor::RemoteAddress>(address);
}

Task<UniqueFd> RemoteTransport::connect(Executor executor, const hypervisor::AgentAddress& address, const DialOptions& options) {
  if (!accepts(address)) fail(Errc::invalid_argument, "{} cannot dial {}", name, hypervisor::to_url(address));
  const auto& remote = std::get<hypervisor::RemoteAddress>(address);
  co_return co_await dial_unix(executor, remote.socket, hypervisor::to_url(address), options);
}

bool VsockTransport::accepts(const hypervisor::AgentAddress& address) {
  return std::holds_alternative<hypervisor::VsockAddress>(address);
}

Task<UniqueFd> VsockTransport::connect(Executor executor, const hypervisor::AgentAddress& address, const DialOptions& options) {
  if (!accepts(address)) fail(Errc::invalid_argument, "{} cannot dial {}", name, hypervisor::to_url(address));
  const auto& vsock = std::get<hypervisor::VsockAddress>(address);
  sockaddr_vm target{};
  target.svm_family = AF_VSOCK;
  target.svm_cid = vsock.guest_cid;
  target.svm_port = vsock.port;
  const std::string url = hypervisor::to_url(address);
  co_return co_await dial_with_retry(executor, url, options, [&]() {
    return connect_once(executor, AF_VSOCK, reinterpret_cast<const sockaddr*>(&target), sizeof target, options.deadline);
  });
}

bool HybridVsockTransport::accepts(const hypervisor::AgentAddress& address) {
  return std::holds_alternative<hypervisor::HybridVsockAddress>(address);
}

Task<UniqueFd> HybridVsockTransport::connect(Executor executor, const hypervisor::AgentAddress& address,
                                             const DialOptions& options) {
  if (!accepts(address)) fail(Errc::invalid_argument, "{} cannot dial {}", name, hypervisor::to_url(address));
  const auto& hybrid = std::get<hypervisor::HybridVsockAddress>(address);
  const std::string url = hypervisor::to_url(address);
  const sockaddr_un target = unix_address(hybrid.socket, url);
  // The VMM accepts the unix connection before the guest listens, and then refuses the port; so
  // the handshake is part of each attempt and a refused handshake is retried like a refused
  // connect.
  co_return co_await dial_with_retry(executor, url, options, [&]() -> Task<Attempt> {
    Attempt attempt =
        co_await connect_once(executor, AF_UNIX, reinterpret_cast<const sockaddr*>(&target), sizeof target, options.deadline);
    auto* fd = std::get_if<UniqueFd>(&attempt);
    if (fd == nullptr) co_return attempt;
    const std::string request = fmt::format("connect {}\n", hybrid.port);
    if (::send(fd->get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      co_return errno != 0 ? errno : EPIPE;
    }
    try {
      const std::string reply = co_await read_line(executor, fd->get(), options.deadline, url);
      if (reply.find("OK") == std::string::npos) co_return ECONNREFUSED;
    } catch (const Error& e) {
      if (e.code() == Errc::deadline_exceeded) co_return ETIMEDOUT;
      co_return ECONNRESET;
    }
    co_return std::move(attempt);
  });
}

}  // namespace kata::agent
