// Helpers every test suite needs: run a coroutine to completion, and a private temporary
// directory. One copy for all suites (test/unit/..., test/conformance, test/integration).
#pragma once

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "kata/core/asio.hpp"
#include "kata/core/error.hpp"

namespace kata::testing {

/// Runs `task` on `io` until the context has no work left; rethrows what the task threw.
template <class T>
T run(asio::io_context& io, Task<T> task) {
  std::exception_ptr failure;
  std::optional<T> result;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) result.emplace(std::move(value));
  });
  io.run();
  io.restart();
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

inline void run(asio::io_context& io, Task<void> task) {
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) { failure = e; });
  io.run();
  io.restart();
  if (failure) std::rethrow_exception(failure);
}

/// Runs `task` on `io` until the task itself completes, even when other work stays pending on
/// `io` (a ttRPC reader, an exit watcher, long polls), which run() would wait for. Rethrows what
/// the task threw; throws deadline_exceeded instead of hanging past `limit`.
template <class T>
T run_until_done(asio::io_context& io, Task<T> task, std::chrono::seconds limit = std::chrono::seconds(300)) {
  bool done = false;
  std::exception_ptr error;
  std::optional<std::conditional_t<std::is_void_v<T>, int, T>> result;
  if constexpr (std::is_void_v<T>) {
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
      error = e;
      done = true;
    });
  } else {
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
      error = e;
      if (!e) result.emplace(std::move(value));
      done = true;
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(Errc::deadline_exceeded, "test task did not complete in time");
    }
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(100));
  }
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

/// A private directory $TMPDIR/kata-test-<suite>-XXXXXX (or under /tmp), removed with everything
/// in it.
class TempDir {
 public:
  explicit TempDir(std::string_view suite) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/kata-test-" + std::string(suite) + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern + " failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace kata::testing
