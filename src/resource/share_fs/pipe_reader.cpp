#include "resource/share_fs/pipe_reader.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <vector>

#include "kata/core/error.hpp"
#include "kata/core/fd_wait.hpp"

namespace kata::resource::detail {

namespace {
constexpr std::size_t max_kept = 64 * 1024;
}  // namespace

Task<PipeText> read_pipe_until(Executor executor, int fd, std::string_view marker,
                               std::chrono::steady_clock::time_point deadline, std::string what) {
  PipeText result;
  std::array<char, 4096> buffer{};
  for (;;) {
    const bool readable = co_await wait_fd_until(executor, fd, FdReadiness::readable, deadline);
    if (!readable) {
      fail(Errc::deadline_exceeded, "{}: no {} within the time limit{}{}", what,
           marker.empty() ? "end of output" : fmt::format("\"{}\"", marker),
           result.text.empty() ? "" : "; output so far: ", tail_lines(result.text));
    }
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      fail_errno(errno, "{}: read output", what);
    }
    if (got == 0) co_return result;
    result.text.append(buffer.data(), static_cast<std::size_t>(got));
    if (!marker.empty() && result.text.find(marker) != std::string::npos) {
      result.matched = true;
      co_return result;
    }
    if (result.text.size() > max_kept) result.text.erase(0, result.text.size() - max_kept);
  }
}

std::string tail_lines(std::string_view text, std::size_t max_lines) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto end = text.find('\n');
    auto line = text.substr(0, end);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  std::string joined;
  const std::size_t first = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (std::size_t i = first; i < lines.size(); ++i) {
    if (!joined.empty()) joined += " | ";
    joined += lines[i];
  }
  return joined;
}

}  // namespace kata::resource::detail
