// Shared pieces of the QEMU tests; running coroutines and temporary directories come from
// test/support/async_test.hpp (run_until_done, TempDir).
#pragma once

#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <vector>

#include "kata/core/error.hpp"
#include "kata/hypervisor/vm.hpp"
#include "support/async_test.hpp"

namespace kata::testing {

inline bool process_exists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH); }

inline std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path().filename());
  return files;
}

}  // namespace kata::testing
