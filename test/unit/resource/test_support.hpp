// Helpers shared by the host-side resource tests (share_fs, rootfs, volume).
#pragma once

#include "support/async_test.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <type_traits>

#include <gtest/gtest.h>

#include "kata/core/asio.hpp"

namespace kata::resource::test {

inline std::filesystem::path make_temp_dir(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
  return pattern;
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out.good()) throw std::runtime_error("write " + path.string());
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// errno of creating a file in `dir` (0 when that works; the file is removed again).
inline int create_errno(const std::filesystem::path& dir) {
  const auto probe = dir / ".kata-probe";
  std::FILE* file = std::fopen(probe.c_str(), "w");
  if (file == nullptr) return errno;
  std::fclose(file);
  std::filesystem::remove(probe);
  return 0;
}

/// The shared runner (test/support/async_test.hpp): the task alone decides when it is done.
template <class T>
T run_task(asio::io_context& io, Task<T> task) {
  return kata::testing::run_until_done(io, std::move(task));
}

}  // namespace kata::resource::test
