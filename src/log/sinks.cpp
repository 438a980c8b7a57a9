#include "log/sinks.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace kata::log::detail {

namespace {

std::string_view payload_of(const spdlog::details::log_msg& msg) {
  return {msg.payload.data(), msg.payload.size()};
}

// syslog severities (RFC 3164 table 2) for our levels as carried by spdlog.
int severity_of(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::info: return 6;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 6;
  }
}

constexpr int facility_user = 1;

// Datagrams larger than this are truncated: journald accepts far more, but classic syslog
// daemons cut at a few KiB anyway and an oversized send would fail with EMSGSIZE.
constexpr std::size_t max_datagram = 64 * 1024;

}  // namespace

bool write_all(int fd, std::string_view data) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

FifoSink::FifoSink(std::filesystem::path path) : path_(std::move(path)) { ensure_open(); }

bool FifoSink::ensure_open() {
  if (fd_) return true;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) return false;
  next_attempt_ = now + retry_interval;
  UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_APPEND | O_CLOEXEC));
  if (!fd) return false;
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) < 0) return false;
  fd_ = std::move(fd);
  return true;
}

void FifoSink::sink_it_(const spdlog::details::log_msg& msg) {
  if (!ensure_open()) return;
  std::string line(payload_of(msg));
  line += '\n';
  if (!write_all(fd_.get(), line)) {
    // EPIPE: the reader went away (containerd restarted). Reopen later; drop this record.
    fd_.reset();
    next_attempt_ = std::chrono::steady_clock::now() + retry_interval;
  }
}

SyslogSink::SyslogSink(std::filesystem::path socket_path) : socket_path_(std::move(socket_path)) {
  ensure_connected(true);
}

bool SyslogSink::ensure_connected(bool ignore_backoff) {
  if (fd_) return true;
  const auto now = std::chrono::steady_clock::now();
  if (!ignore_backoff && now < next_attempt_) return false;
  next_attempt_ = now + retry_interval;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string& path = socket_path_.native();
  if (path.empty() || path.size() >= sizeof(address.sun_path)) return false;
  std::memcpy(address.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) return false;
  fd_ = std::move(fd);
  return true;
}

void SyslogSink::sink_it_(const spdlog::details::log_msg& msg) {
  if (!ensure_connected(false)) return;
  std::string datagram = fmt::format("<{}>kata[{}]: ", facility_user * 8 + severity_of(msg.level), ::getpid());
  datagram += payload_of(msg);
  if (datagram.size() > max_datagram) datagram.resize(max_datagram);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::send(fd_.get(), datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return;
    if (errno == EINTR) continue;
    // ECONNREFUSED/ENOTCONN: the daemon restarted and bound a new socket; reconnect once now.
    if (errno != ECONNREFUSED && errno != ENOTCONN) return;
    fd_.reset();
    if (!ensure_connected(true)) return;
  }
}

void FdSink::sink_it_(const spdlog::details::log_msg& msg) {
  std::string line(payload_of(msg));
  line += '\n';
  write_all(fd_, line);
}

}  // namespace kata::log::detail
