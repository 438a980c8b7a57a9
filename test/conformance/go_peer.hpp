// Running the Go reference peers from a C++ test: as a server we talk to, or as a client that
// talks to a server of ours and reports its verdict through its exit status and output.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "kata/core/asio.hpp"
#include "support/async_test.hpp"
#include "kata/core/child_process.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::conformance {

using kata::testing::run;

/// TempDir with this suite's name in the path.
class TempDir : public kata::testing::TempDir {
 public:
  TempDir() : kata::testing::TempDir("conformance") {}
};

/// A Go peer serving on a unix socket. Construction returns once the peer printed "ready" (it
/// is listening); every later line it prints is available through read_line(). Destruction
/// kills and reaps it.
class GoServer {
 public:
  GoServer(const std::filesystem::path& program, std::vector<std::string> arguments) {
    Pipe output = make_pipe();
    SpawnOptions options;
    options.program = program;
    options.arguments = std::move(arguments);
    options.stdout_fd = output.write_end.get();
    options.stderr_fd = STDERR_FILENO;  // a Go panic shows up in the test log
    process_ = ChildProcess::spawn(options);
    output.write_end.reset();
    output_ = std::move(output.read_end);
    auto first = read_line();
    if (first != "ready") {
      throw std::runtime_error(program.string() + " did not start: " + (first ? "printed " + *first : "exited"));
    }
  }

  /// The next line the peer printed, blocking until it is complete; std::nullopt at EOF (the
  /// peer exited). Only call it when the peer has printed, or is about to print, a line.
  std::optional<std::string> read_line() {
    while (true) {
      if (auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      char chunk[4096];
      ssize_t n = ::read(output_.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  ChildProcess process_;
  UniqueFd output_;
  std::string buffer_;
};

/// What a Go client peer reported.
struct GoClientResult {
  ExitStatus status;
  std::string output;  ///< stdout and stderr, interleaved
};

/// Runs a Go client peer to completion while the calling io_context keeps serving (the wait is
/// on the child's pidfd, not blocking). Output goes through a file in `scratch`, so a chatty peer
/// can never block on a full pipe.
inline Task<GoClientResult> run_go_client(const std::filesystem::path& program, std::vector<std::string> arguments,
                                          const std::filesystem::path& scratch) {
  const auto log = scratch / (program.filename().string() + ".log");
  UniqueFd log_fd(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log_fd) throw std::runtime_error("cannot create " + log.string());
  SpawnOptions options;
  options.program = program;
  options.arguments = std::move(arguments);
  options.stdout_fd = log_fd.get();
  options.stderr_fd = log_fd.get();
  ChildProcess child = ChildProcess::spawn(options);
  log_fd.reset();
  GoClientResult result;
  result.status = co_await child.wait(co_await asio::this_coro::executor);
  std::ifstream in(log);
  std::ostringstream text;
  text << in.rdbuf();
  result.output = text.str();
  co_return result;
}

}  // namespace kata::conformance
