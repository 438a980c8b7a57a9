// The three destinations of log records. Each receives an already rendered line (the record
// as one logfmt or JSON line, without newline) in log_msg::payload and writes it at once.
// Failures are absorbed: a sink that cannot write drops the record and, where reopening can
// help, tries again at most once per `retry_interval`.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>

#include <spdlog/sinks/base_sink.h>

#include "kata/core/unique_fd.hpp"

namespace kata::log::detail {

inline constexpr std::chrono::seconds retry_interval{1};

/// containerd's `log` FIFO (or any file). Opened O_WRONLY|O_NONBLOCK so that a FIFO without a
/// reader fails with ENXIO instead of blocking, then switched back to blocking writes so that a
/// slow reader does not lose records. A reader that goes away yields EPIPE (SIGPIPE is ignored
/// by the shim), after which the FIFO is reopened later.
class FifoSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FifoSink(std::filesystem::path path);

 private:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}
  bool ensure_open();

  std::filesystem::path path_;
  UniqueFd fd_;
  std::chrono::steady_clock::time_point next_attempt_{};
};

/// RFC 3164-style datagrams "<PRI>kata[pid]: line" to a unix datagram socket (/dev/log, where
/// both syslog daemons and journald listen; journald takes SYSLOG_IDENTIFIER=kata from it).
/// Facility user. Sends never block: a full socket buffer drops the record rather than stall the
/// shim behind a busy journald.
class SyslogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit SyslogSink(std::filesystem::path socket_path);

 private:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}
  bool ensure_connected(bool ignore_backoff);

  std::filesystem::path socket_path_;
  UniqueFd fd_;
  std::chrono::steady_clock::time_point next_attempt_{};
};

/// Plain write(2)s to a descriptor (stderr), one per record.
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FdSink(int fd) : fd_(fd) {}

 private:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

  int fd_;
};

/// Writes all of `data`, retrying on EINTR and partial writes. Returns false on any other error
/// (errno is left set).
bool write_all(int fd, std::string_view data) noexcept;

}  // namespace kata::log::detail
