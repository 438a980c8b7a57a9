// A move-only owner of one file descriptor.
#pragma once

#include <utility>

namespace kata {

/// Owns a file descriptor and closes it on destruction. Never copies; moving transfers ownership
/// and leaves the source empty (-1). Closing errors are ignored: by the time an owner is destroyed
/// nobody can act on them, and EINTR on close must not be retried on Linux.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }

  /// Gives up ownership without closing.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

  /// Closes the owned descriptor (if any) and takes `fd`.
  void reset(int fd = -1) noexcept;

  /// dup(2)s the descriptor with O_CLOEXEC; throws kata::Error on failure.
  [[nodiscard]] UniqueFd duplicate() const;

 private:
  int fd_ = -1;
};

/// A pipe whose ends are both O_CLOEXEC.
struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

/// pipe2(O_CLOEXEC | extra_flags); throws kata::Error on failure.
[[nodiscard]] Pipe make_pipe(int extra_flags = 0);

}  // namespace kata
