#include "kata/persist/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::persist {

namespace {

void write_all(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "write {}: write temporary file", path.string());
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Removes the temporary file unless the rename consumed it.
struct TemporaryFile {
  std::string path;
  bool committed = false;
  ~TemporaryFile() {
    if (!committed) ::unlink(path.c_str());
  }
};

}  // namespace

void write_file_atomic(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  const std::filesystem::path directory = path.has_parent_path() ? path.parent_path() : ".";
  TemporaryFile temporary{(directory / ("." + path.filename().string() + ".tmp-XXXXXX")).string()};
  UniqueFd fd(::mkostemp(temporary.path.data(), O_CLOEXEC));
  if (!fd) {
    temporary.committed = true;  // nothing was created
    fail_errno(errno, "write {}: create temporary file in {}", path.string(), directory.string());
  }
  if (::fchmod(fd.get(), mode) != 0) fail_errno(errno, "write {}: chmod temporary file", path.string());
  write_all(fd.get(), content, path);
  if (::fsync(fd.get()) != 0) fail_errno(errno, "write {}: fsync", path.string());
  fd.reset();
  if (::rename(temporary.path.c_str(), path.c_str()) != 0) {
    fail_errno(errno, "write {}: rename {}", path.string(), temporary.path);
  }
  temporary.committed = true;
  // Without this the rename itself may not survive a power cut.
  UniqueFd dir_fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd || ::fsync(dir_fd.get()) != 0) fail_errno(errno, "write {}: fsync {}", path.string(), directory.string());
}

std::optional<std::string> read_file_if_exists(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    fail_errno(errno, "read {}", path.string());
  }
  std::string content;
  char buffer[8192];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "read {}", path.string());
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
  }
  return content;
}

}  // namespace kata::persist
