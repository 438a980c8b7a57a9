#include "kata/agent_guest/log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

struct Sink {
  UniqueFd fd;
  LogFormat format;
};

std::atomic<int> current_level{static_cast<int>(LogLevel::info)};
std::atomic<std::uint64_t> dropped{0};
std::mutex sinks_mutex;
std::vector<Sink>& sinks() {
  static std::vector<Sink> instance;
  return instance;
}

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

std::string timestamp() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                     utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec);
}

// A line the sink cannot start now is dropped; a line it has started is finished (waiting a
// little), because half a JSON record would corrupt the next one on the host side.
bool write_line(int fd, std::string_view data) {
  bool started = false;
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && started) {
      pollfd writable{fd, POLLOUT, 0};
      if (::poll(&writable, 1, 100) == 1 && (writable.revents & POLLOUT) != 0) continue;
    }
    if (n <= 0) return false;
    started = true;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

LogLevel parse_log_level(std::string_view text) {
  if (text == "trace") return LogLevel::trace;
  if (text == "debug") return LogLevel::debug;
  if (text == "info") return LogLevel::info;
  if (text == "warn" || text == "warning") return LogLevel::warn;
  if (text == "error" || text == "critical") return LogLevel::error;
  fail(Errc::invalid_argument, "log level '{}' is not one of trace, debug, info, warn, error", text);
}

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "info";
}

void set_log_level(LogLevel level) noexcept { current_level.store(static_cast<int>(level)); }
LogLevel log_level() noexcept { return static_cast<LogLevel>(current_level.load()); }

void add_log_sink(UniqueFd fd, LogFormat format) {
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) fail_errno(errno, "make log sink non-blocking");
  const std::lock_guard lock(sinks_mutex);
  sinks().push_back(Sink{std::move(fd), format});
}

void clear_log_sinks() noexcept {
  const std::lock_guard lock(sinks_mutex);
  sinks().clear();
}

std::uint64_t dropped_log_lines() noexcept { return dropped.load(); }

void write_log(LogLevel level, std::string_view message) noexcept {
  if (level < log_level()) return;
  try {
    const std::string time = timestamp();
    std::string text;
    std::string json;
    const std::lock_guard lock(sinks_mutex);
    for (const Sink& sink : sinks()) {
      if (sink.format == LogFormat::text) {
        if (text.empty()) text = fmt::format("{} kata-agent {}: {}\n", time, to_string(level), message);
        if (!write_line(sink.fd.get(), text)) dropped.fetch_add(1);
      } else {
        if (json.empty()) {
          json = "{\"time\":\"" + time + "\",\"level\":\"" + std::string(to_string(level)) +
                 "\",\"source\":\"agent\",\"pid\":" + std::to_string(::getpid()) + ",\"msg\":";
          append_json_string(json, message);
          json += "}\n";
        }
        if (!write_line(sink.fd.get(), json)) dropped.fetch_add(1);
      }
    }
  } catch (...) {
    dropped.fetch_add(1);
  }
}

}  // namespace kata::agent_guest
