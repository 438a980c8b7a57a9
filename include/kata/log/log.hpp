// Structured logging for the shim and its tools.
//
// Every record carries the fields users and kata-log-parser grep for: time, level, msg, the bound
// fields of the logger (sandbox, container, ...), subsystem, source, name and pid. A record is
// rendered once, as logfmt (the default, what Go Kata and kata-log-parser use) or as one JSON
// object per line, and handed to every configured sink:
//
//   * containerd's `log` FIFO in the bundle directory (shown by containerd at debug level),
//   * syslog/journald with the identifier `kata` (`journalctl -t kata`),
//   * stderr, for command line tools.
//
// All sinks are synchronous: a record has been written (or dropped) when the log call returns.
// There is no background thread, so nothing has to be drained at exit and nothing can run after
// main() returns (upstream #8596 crashed in an asynchronous logger's shutdown). Sink failures are
// never reported to the caller: logging cannot make the shim fail.
//
// Thread-safety: every function here may be called from any thread; records from concurrent
// callers are written whole, never interleaved.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace kata::log {

/// Severity, lowest first. `off` is only meaningful as a threshold.
enum class Level { trace, debug, info, warning, error, off };

/// The name written in records: "trace", "debug", "info", "warning", "error" (logrus' names,
/// which kata-log-parser expects).
[[nodiscard]] std::string_view to_string(Level level) noexcept;

/// Parses a configured log level: trace, debug, info, warn or warning, error, off (case
/// insensitive). Throws kata::Error(invalid_argument) naming the value and the accepted ones.
[[nodiscard]] Level parse_level(std::string_view text);

/// The threshold from configuration: an explicit `log_level` wins; otherwise `enable_debug`
/// selects debug, else info. Throws like parse_level for a bad explicit level.
[[nodiscard]] Level effective_level(bool enable_debug, std::string_view log_level);

enum class Format { logfmt, json };

/// Parses "logfmt" or "json"; throws kata::Error(invalid_argument) otherwise.
[[nodiscard]] Format parse_format(std::string_view text);

/// One key/value pair of a record. Values are strings; callers format numbers themselves.
struct Field {
  std::string key;
  std::string value;
  friend bool operator==(const Field&, const Field&) = default;
};

/// A record before rendering. `fields` are written in order after time, level and msg.
struct Record {
  std::chrono::system_clock::time_point time;
  Level level = Level::info;
  std::string_view message;
  std::vector<Field> fields;
};

/// Renders one record as one line without the trailing newline.
///
/// logfmt: `key=value` pairs separated by single spaces. A value is written bare when it is
/// non-empty and consists only of printable ASCII other than space, '=' and '"'; otherwise it is
/// double-quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\u00XX` (other control bytes) escapes.
/// Bytes >= 0x80 are copied as they are (UTF-8 passes through). Keys have every character that
/// is not alphanumeric, '_', '-' or '.' replaced by '_', so a record always parses back.
///
/// json: one object, keys in record order, invalid UTF-8 replaced by U+FFFD.
[[nodiscard]] std::string render(Format format, const Record& record);

/// How the process logs. Defaults suit a command line tool: info to stderr.
struct Config {
  Format format = Format::logfmt;
  Level level = Level::info;
  /// `name=` of every record.
  std::string name = "containerd-shim-kata-v2";
  /// `source=` of every record unless a logger overrides it (agent output uses "agent").
  std::string source = "runtime";
  /// `sandbox=` of every record when not empty (one shim serves one sandbox).
  std::string sandbox;

  /// containerd's log FIFO. Empty: none. A FIFO without a reader is retried at most once a
  /// second and records are dropped meanwhile.
  std::filesystem::path fifo;
  /// Send to syslog (and so journald) with identifier `kata`.
  bool syslog = false;
  /// The syslog datagram socket. A missing socket is not an error: records are dropped.
  std::filesystem::path syslog_socket = "/dev/log";
  /// Write to stderr.
  bool to_stderr = true;
};

/// Replaces the process-wide configuration and sinks. Opening a sink never fails: a FIFO or
/// socket that cannot be opened now is retried later (see Config). Records being written
/// concurrently go either to the old or to the new sinks, whole.
void init(const Config& config);

/// Changes only the threshold (e.g. after the configuration file was read).
void set_level(Level level) noexcept;
[[nodiscard]] Level level() noexcept;

/// Closes every sink; later records are dropped until the next init(). Idempotent. Because sinks
/// are synchronous there is nothing to flush, and calling it is optional: the process-wide state
/// is deliberately never destroyed, so a record logged from a static destructor is still safe.
void shutdown() noexcept;

/// A cheap, copyable handle naming a subsystem ("shim", "runtime", "hypervisor", "qemu",
/// "agent", "resource", "ttrpc", ...) plus fields bound to it. Handles stay valid across init()
/// and shutdown(); they hold no sink.
class Logger {
 public:
  explicit Logger(std::string subsystem);

  /// A copy with `key=value` added to every record (e.g. with("container", id)). A later
  /// binding of the same key replaces the earlier one.
  [[nodiscard]] Logger with(std::string key, std::string value) const;

  /// A copy whose records say `source=<source>` instead of Config::source.
  [[nodiscard]] Logger with_source(std::string source) const;

  [[nodiscard]] const std::string& subsystem() const noexcept { return subsystem_; }
  [[nodiscard]] const std::vector<Field>& fields() const noexcept { return fields_; }

  /// Whether a record at `level` would be written; lets callers skip expensive arguments.
  [[nodiscard]] static bool enabled(Level level) noexcept;

  /// Writes one record with `message` verbatim. Never throws.
  void write(Level level, std::string_view message) const noexcept;

  /// Formats with fmt and writes, when `level` is enabled. A formatting failure (only possible
  /// with a throwing user formatter) logs the format string instead; never throws.
  template <class... Args>
  void log(Level level, fmt::format_string<Args...> format, Args&&... args) const noexcept;

  template <class... Args>
  void trace(fmt::format_string<Args...> format, Args&&... args) const noexcept {
    log(Level::trace, format, std::forward<Args>(args)...);
  }
  template <class... Args>
  void debug(fmt::format_string<Args...> format, Args&&... args) const noexcept {
    log(Level::debug, format, std::forward<Args>(args)...);
  }
  template <class... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) const noexcept {
    log(Level::info, format, std::forward<Args>(args)...);
  }
  template <class... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) const noexcept {
    log(Level::warning, format, std::forward<Args>(args)...);
  }
  template <class... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) const noexcept {
    log(Level::error, format, std::forward<Args>(args)...);
  }

 private:
  std::string subsystem_;
  std::string source_;  // empty: Config::source
  std::vector<Field> fields_;
};

}  // namespace kata::log

#include "kata/log/impl/log.hpp"
