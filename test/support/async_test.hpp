// Helpers every test suite needs: run a coroutine to completion, and a private temporary
// directory. One copy for all suites (test/unit/..., test/conformance, test/integration).
#pragma once

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "kata/core/asio.hpp"

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
