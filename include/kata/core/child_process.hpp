// RAII ownership of a child process: the VMM, virtiofsd, a logger binary, ...
//
// Upstream leaked QEMU zombies when QMP failed after spawn (kata #13564) and left virtiofsd behind
// after a crashed shim (#2198). Here a process is owned by exactly one ChildProcess; when that
// object goes away without the process having been reaped, it is killed with SIGKILL and reaped,
// so no failure path can leak it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kata/core/asio.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata {

/// How a process ended.
struct ExitStatus {
  int exit_code = 0;  ///< valid when signal == 0
  int signal = 0;     ///< terminating signal, 0 if it exited normally

  /// The shell convention containerd uses: the exit code, or 128 + signal.
  [[nodiscard]] int as_exit_code() const noexcept { return signal != 0 ? 128 + signal : exit_code; }
  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

/// What to run and how. Descriptors not listed are closed in the child (everything we open is
/// O_CLOEXEC, and the child closes the rest defensively before exec).
struct SpawnOptions {
  struct FdMapping {
    int parent_fd;  ///< descriptor in this process (not consumed)
    int child_fd;   ///< number it gets in the child
  };

  std::filesystem::path program;        ///< absolute path; PATH is not searched
  std::vector<std::string> arguments;   ///< argv[1..]; argv[0] is the program path
  std::optional<std::vector<std::string>> environment;  ///< "K=V" list; nullopt inherits ours
  std::filesystem::path working_directory;              ///< empty keeps ours
  int stdin_fd = -1;                    ///< -1 means /dev/null
  int stdout_fd = -1;                   ///< -1 means /dev/null
  int stderr_fd = -1;                   ///< -1 means /dev/null
  std::vector<FdMapping> extra_fds;     ///< e.g. a QMP listener passed as fd 3
  std::filesystem::path network_namespace;  ///< setns(CLONE_NEWNET) before exec when not empty
  bool new_session = true;              ///< setsid(), so terminal signals for the shim skip the child
};

/// A running (or finished, not yet forgotten) child process.
///
/// Thread-safety: one ChildProcess is used from one executor at a time.
class ChildProcess {
 public:
  /// Forks and execs. Completes after exec succeeded in the child; throws kata::Error
  /// ("exec <program>: <errno text>") if setns, chdir or exec failed, after reaping the child.
  static ChildProcess spawn(const SpawnOptions& options);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Kills (SIGKILL) and reaps a process that has not been reaped yet. Never throws.
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool valid() const noexcept { return pid_ > 0; }
  [[nodiscard]] const std::filesystem::path& program() const noexcept { return program_; }

  /// The exit status if the process has already been reaped or has exited now (non-blocking).
  [[nodiscard]] std::optional<ExitStatus> try_wait();

  /// Completes when the process exits (noticed at once through its pidfd, no polling). Safe to
  /// call again after completion: returns the recorded status. Cancellation of the awaiting
  /// coroutine leaves the process running and owned.
  [[nodiscard]] Task<ExitStatus> wait(Executor executor);

  /// Sends `signal` through the pidfd, so a recycled pid is never hit. No-op once reaped.
  void signal(int signal) noexcept;

  /// SIGTERM, wait up to `grace`, then SIGKILL; reaps. Blocking; meant for teardown paths
  /// outside the event loop (shim delete) and destructors.
  ExitStatus terminate_blocking(std::chrono::milliseconds grace);

  /// Stops owning the process without killing it (it keeps running, e.g. for a daemonised shim).
  pid_t release() noexcept;

 private:
  ChildProcess(pid_t pid, UniqueFd pidfd, std::filesystem::path program) noexcept;
  ExitStatus reap_blocking();
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::filesystem::path program_;
  std::optional<ExitStatus> status_;
};

/// pidfd_open(2) for a process this one does not own (e.g. a shim found through its pid file).
[[nodiscard]] UniqueFd open_pidfd(pid_t pid);

}  // namespace kata
