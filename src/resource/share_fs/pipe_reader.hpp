// Reading a child's output pipe with a deadline, without blocking the executor.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "kata/core/asio.hpp"

namespace kata::resource::detail {

struct PipeText {
  std::string text;      ///< everything read (the last 64 KiB of it)
  bool matched = false;  ///< `marker` was seen; false means the writers closed the pipe (EOF)
};

/// Reads the non-blocking descriptor `fd` (not owned) until `marker` appears in the text (an
/// empty marker never matches: read to EOF) or EOF. Error(deadline_exceeded) naming `what` when
/// `deadline` passes first.
Task<PipeText> read_pipe_until(Executor executor, int fd, std::string_view marker,
                               std::chrono::steady_clock::time_point deadline, std::string what);

/// The last non-empty lines of a daemon's output, for an error message.
[[nodiscard]] std::string tail_lines(std::string_view text, std::size_t max_lines = 5);

}  // namespace kata::resource::detail
