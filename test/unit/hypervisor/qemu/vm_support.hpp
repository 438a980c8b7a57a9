// Shared pieces of the QEMU tests: running a coroutine to completion on a test's io_context, a
// temporary state directory that is always removed, and VM contexts for the real QEMU.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <optional>

#include "kata/core/error.hpp"
#include "kata/hypervisor/vm.hpp"

namespace kata::testing {

/// Runs `task` on `io` until it completes (other work on `io`, such as an exit watcher, may stay
/// pending). Rethrows its exception. Fails the test instead of hanging past `limit`.
template <class T>
T run_task(asio::io_context& io, Task<T> task, std::chrono::seconds limit = std::chrono::seconds(300)) {
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

/// mkdtemp under $TMPDIR (or /tmp) named kata-test-*; removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/kata-test-qemu-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
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

inline bool process_exists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH); }

inline std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path().filename());
  return files;
}

}  // namespace kata::testing
