// Starting a container's processes inside the guest: namespaces, the container rootfs with its
// OCI mounts and pivot_root, identity and limits, stdio over pipes or a pty, and exit tracking.
//
// This is the machinery behind CreateContainer/StartContainer (a process that is set up but held
// before exec until start()) and ExecProcess (a process that joins an existing container's
// namespaces and runs at once). The request types mirror the OCI runtime spec, already resolved
// to guest paths; translating the agent protocol's oci.Spec into them is the RPC layer's job.
//
// How the child is made: everything is computed in the parent (strings, flags, PATH candidates,
// descriptors); the child, created with clone3(2), only makes system calls, because the agent is
// multi-threaded and a raw clone runs no fork handlers (no malloc, no locks in the child). Mount
// targets are resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), so a symlink in an image
// cannot send a mount outside it. Failures come back over a CLOEXEC pipe as (step, errno).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kata/agent_guest/reaper.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {

/// One OCI mount (`mounts[]`), destination relative to the container root.
struct MountSpec {
  std::string destination;
  std::string type;     ///< "bind", "proc", "tmpfs", ... ("bind" or a bind option makes it a bind mount)
  std::string source;
  std::vector<std::string> options;  ///< OCI option words: ro, nosuid, rbind, rprivate, size=65536k ...
};

/// Mount flags, propagation and filesystem data decoded from OCI option words.
struct MountFlags {
  unsigned long flags = 0;        ///< MS_* for mount(2), MS_BIND/MS_REC included
  unsigned long propagation = 0;  ///< MS_PRIVATE/MS_SLAVE/MS_SHARED/MS_UNBINDABLE (| MS_REC), or 0
  std::string data;               ///< unknown words, comma-joined, for the filesystem
  bool read_only = false;
};

/// Decodes option words the way runc and upstream's agent do.
[[nodiscard]] MountFlags parse_mount_options(const std::vector<std::string>& options);

/// A namespace the process gets: a new one (`path` empty) or an existing one to join.
struct NamespaceSpec {
  int type = 0;                  ///< CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWCGROUP
  std::filesystem::path path;    ///< e.g. /proc/<pid>/ns/net or a bind-mounted sandbox netns
};

/// The container filesystem of a new container (absent for exec, which joins the mount namespace).
struct RootfsSpec {
  std::filesystem::path path;                  ///< the rootfs directory in the guest
  bool read_only = false;
  std::string propagation = "rslave";          ///< linux.rootfsPropagation
  std::vector<MountSpec> mounts;               ///< in order
  std::vector<std::string> devices;            ///< /dev nodes bound in from the guest, e.g. "/dev/null"
  std::vector<std::string> masked_paths;       ///< linux.maskedPaths
  std::vector<std::string> readonly_paths;     ///< linux.readonlyPaths
  std::string hostname;                        ///< set when a new UTS namespace is made
};

struct RlimitSpec {
  int resource = 0;  ///< RLIMIT_*
  rlim_t soft = 0;
  rlim_t hard = 0;
};

/// process.* of the OCI spec.
struct ProcessSpec {
  std::vector<std::string> args;           ///< args[0] is searched in PATH when it has no '/'
  std::vector<std::string> env;            ///< "K=V"
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;
  std::optional<mode_t> umask;
  bool no_new_privileges = false;
  std::vector<RlimitSpec> rlimits;
  bool terminal = false;                   ///< stdio on a new pty instead of three pipes
};

struct SpawnRequest {
  ProcessSpec process;
  std::optional<RootfsSpec> rootfs;        ///< set for a container's first process
  std::vector<NamespaceSpec> namespaces;
  std::filesystem::path cgroup;            ///< a cgroup v2 directory the process starts in (CLONE_INTO_CGROUP)
  bool hold_before_exec = false;           ///< create now, exec on start() (CreateContainer/StartContainer)
};

/// A process started by spawn(). Move-only. Destroying an unreaped process kills it (SIGKILL) and
/// waits for the reaper to collect it, so no failure path leaks a container process.
class ContainerProcess {
 public:
  /// Creates the process. Completes when the child finished its setup (with hold_before_exec) or
  /// exec'd (without). Throws kata::Error naming the failed step, e.g.
  /// "spawn /bin/sh: mount proc on /proc: Permission denied" or "spawn nope: exec: No such file or
  /// directory"; the child is gone by then.
  static ContainerProcess spawn(const SpawnRequest& request);

  ContainerProcess() = default;
  ContainerProcess(ContainerProcess&&) noexcept = default;
  ContainerProcess& operator=(ContainerProcess&& other) noexcept;
  ContainerProcess(const ContainerProcess&) = delete;
  ContainerProcess& operator=(const ContainerProcess&) = delete;
  ~ContainerProcess();

  /// Releases a process created with hold_before_exec and waits for its exec. Throws kata::Error
  /// if exec failed (the process has exited with 127 then), or if it was already started.
  void start();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool started() const noexcept { return !exec_report_; }

  /// Sends `signal` through the pidfd (never to a recycled pid). ESRCH after exit is ignored.
  void signal(int signal) const;

  /// The exit, shared with the reaper.
  [[nodiscard]] const std::shared_ptr<ExitState>& exit_state() const noexcept { return exit_; }

  /// Descriptors of this end of stdio; each may be taken (moved out) by the I/O layer.
  UniqueFd stdin_writer;   ///< pipe write end, or empty with a terminal
  UniqueFd stdout_reader;  ///< pipe read end, empty with a terminal
  UniqueFd stderr_reader;  ///< pipe read end, empty with a terminal
  UniqueFd pty_master;     ///< with a terminal: output is read from it, input written to it

  /// Sets the terminal size (TtyWinResize). Throws Errc::failed_precondition without a terminal.
  void resize_terminal(unsigned short rows, unsigned short columns) const;

 private:
  void kill_and_wait() noexcept;

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::shared_ptr<ExitState> exit_;
  UniqueFd start_gate_;    ///< write end; one byte lets the held child exec
  UniqueFd exec_report_;   ///< read end of the child's report pipe until exec is confirmed
  std::string name_;
};

}  // namespace kata::agent_guest
