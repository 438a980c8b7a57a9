// The agent's logger: plain lines on the console, JSON lines on the `agent.log.0` port.
//
// The agent does not use spdlog: as PID 1 of a guest it must never block on a log sink, and the
// log port blocks writers while no host is connected (host-lab §3a). Sinks here are non-blocking
// descriptors; a line a sink cannot take right now is dropped and counted, never queued without
// bound.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {

enum class LogLevel : int { trace, debug, info, warn, error };

/// "trace", "debug", "info", "warn"/"warning", "error"/"critical" (upstream's agent.log values).
/// Throws kata::Error(invalid_argument) naming the allowed values.
[[nodiscard]] LogLevel parse_log_level(std::string_view text);
[[nodiscard]] std::string_view to_string(LogLevel level) noexcept;

enum class LogFormat { text, json };

/// Sets the lowest level that is written. Thread-safe.
void set_log_level(LogLevel level) noexcept;
[[nodiscard]] LogLevel log_level() noexcept;

/// Adds a sink; the descriptor is switched to O_NONBLOCK. Thread-safe.
void add_log_sink(UniqueFd fd, LogFormat format);

/// Removes every sink (tests; the agent keeps its sinks for its whole life).
void clear_log_sinks() noexcept;

/// Lines dropped because a sink would have blocked.
[[nodiscard]] std::uint64_t dropped_log_lines() noexcept;

/// Writes one record to every sink. Never throws, never blocks.
void write_log(LogLevel level, std::string_view message) noexcept;

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (level < log_level()) return;
  try {
    write_log(level, fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {
    write_log(level, "(log message could not be formatted)");
  }
}

}  // namespace kata::agent_guest
