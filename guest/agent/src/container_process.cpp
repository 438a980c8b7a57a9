#include "kata/agent_guest/container_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <thread>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

// ---------------------------------------------------------------------------------------------
// Parent side: the plan the child follows, all strings owned by PlanStorage.

enum class Step : int {
  ready = 0,
  signals,
  join_namespace,
  session,
  controlling_terminal,
  stdio,
  rootfs_propagation,
  rootfs_bind,
  mount_target,
  mount,
  mount_remount,
  mount_propagation,
  device,
  pivot_root,
  detach_old_root,
  mask_path,
  readonly_path,
  rootfs_readonly,
  symlink,
  hostname,
  rlimit,
  groups,
  gid,
  uid,
  no_new_privs,
  cwd,
  start_gate,
  exec,
};

std::string_view describe_step(Step step) {
  switch (step) {
    case Step::ready: return "setup";
    case Step::signals: return "reset signals";
    case Step::join_namespace: return "join namespace";
    case Step::session: return "create session";
    case Step::controlling_terminal: return "set controlling terminal";
    case Step::stdio: return "set up stdio";
    case Step::rootfs_propagation: return "set rootfs propagation";
    case Step::rootfs_bind: return "bind rootfs";
    case Step::mount_target: return "create mount point";
    case Step::mount: return "mount";
    case Step::mount_remount: return "remount";
    case Step::mount_propagation: return "set mount propagation";
    case Step::device: return "bind device";
    case Step::pivot_root: return "pivot_root";
    case Step::detach_old_root: return "detach old root";
    case Step::mask_path: return "mask path";
    case Step::readonly_path: return "make path read-only";
    case Step::rootfs_readonly: return "make rootfs read-only";
    case Step::symlink: return "create /dev link";
    case Step::hostname: return "set hostname";
    case Step::rlimit: return "set rlimit";
    case Step::groups: return "set additional groups";
    case Step::gid: return "set gid";
    case Step::uid: return "set uid";
    case Step::no_new_privs: return "set no_new_privs";
    case Step::cwd: return "change to working directory";
    case Step::start_gate: return "wait for start";
    case Step::exec: return "exec";
  }
  return "setup";
}

struct Report {
  Step step;
  int error;
  int index;  // which mount/namespace/path, -1 if none
};

struct PlanMount {
  const char* source;
  const char* destination;  // relative to the rootfs, no leading '/'
  const char* fstype;
  unsigned long flags;
  unsigned long propagation;
  const char* data;
  bool bind;
};

struct PlanNamespace {
  int fd;
  int type;
};

struct Plan {
  // namespaces to join (setns in the child; pid is handled by the spawning thread)
  const PlanNamespace* joins = nullptr;
  std::size_t join_count = 0;
  // stdio
  bool terminal = false;
  int stdio[3] = {-1, -1, -1};
  // rootfs
  bool has_rootfs = false;
  const char* rootfs = nullptr;
  int rootfs_fd = -1;
  unsigned long rootfs_propagation = 0;
  bool rootfs_read_only = false;
  const PlanMount* mounts = nullptr;
  std::size_t mount_count = 0;
  const char* const* devices = nullptr;
  std::size_t device_count = 0;
  const char* const* masked = nullptr;
  std::size_t masked_count = 0;
  const char* const* readonly = nullptr;
  std::size_t readonly_count = 0;
  const char* hostname = nullptr;
  // identity and limits
  const RlimitSpec* rlimits = nullptr;
  std::size_t rlimit_count = 0;
  const gid_t* groups = nullptr;
  std::size_t group_count = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  bool set_umask = false;
  mode_t umask = 022;
  bool no_new_privs = false;
  const char* cwd = "/";
  // exec
  int start_gate = -1;  // read end, -1 when not held
  const char* const* candidates = nullptr;  // absolute paths to try in order
  std::size_t candidate_count = 0;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Child side: system calls only.

[[noreturn]] void child_fail(int report_fd, Step step, int index = -1) {
  const Report report{step, errno, index};
  [[maybe_unused]] auto ignored = ::write(report_fd, &report, sizeof report);
  ::_exit(127);
}

std::size_t c_strlen(const char* s) {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// "/proc/self/fd/<fd>" into `out` (which holds at least 32 bytes).
const char* fd_path(char* out, int fd) {
  constexpr char prefix[] = "/proc/self/fd/";
  std::size_t n = sizeof prefix - 1;
  for (std::size_t i = 0; i < n; ++i) out[i] = prefix[i];
  char digits[12];
  std::size_t d = 0;
  unsigned value = static_cast<unsigned>(fd);
  do {
    digits[d++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (d != 0) out[n++] = digits[--d];
  out[n] = '\0';
  return out;
}

int open_in_root(int root_fd, const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<unsigned long long>(flags) | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path, &how, sizeof how));
}

// Creates `path` (relative to root_fd, resolved inside it) as a directory, or as an empty file
// when `file` is set, with missing parents; returns an O_PATH descriptor of it.
int make_target(int root_fd, const char* path, bool file) {
  char buffer[4096];
  const std::size_t length = c_strlen(path);
  if (length >= sizeof buffer) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::size_t i = 0;
  while (i <= length) {
    std::size_t end = i;
    while (end < length && path[end] != '/') ++end;
    if (end > i) {
      for (std::size_t k = 0; k < end; ++k) buffer[k] = path[k];
      buffer[end] = '\0';
      const bool last = end == length;
      // parent of this component, resolved inside the root
      int parent = root_fd;
      bool close_parent = false;
      if (i > 0) {
        buffer[i - 1] = '\0';
        parent = open_in_root(root_fd, buffer, O_PATH | O_DIRECTORY);
        buffer[i - 1] = '/';
        if (parent < 0) return -1;
        close_parent = true;
      }
      int made = 0;
      if (last && file) {
        made = ::openat(parent, buffer + i, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (made >= 0) {
          ::close(made);
          made = 0;
        }
        if (made < 0 && (errno == EEXIST || errno == ELOOP || errno == EISDIR)) made = 0;
      } else {
        made = ::mkdirat(parent, buffer + i, 0755);
        if (made < 0 && errno == EEXIST) made = 0;
      }
      const int saved = errno;
      if (close_parent) ::close(parent);
      errno = saved;
      if (made < 0) return -1;
    }
    i = end + 1;
  }
  return open_in_root(root_fd, path, O_PATH);
}

bool is_directory_path(const char* path) {
  struct stat st{};
  return ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

[[noreturn]] void run_child(const Plan& plan, int report_fd) {
  sigset_t none;
  ::sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) child_fail(report_fd, Step::signals);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);  // EINVAL for KILL/STOP is fine

  for (std::size_t i = 0; i < plan.join_count; ++i) {
    if (::setns(plan.joins[i].fd, plan.joins[i].type) != 0) child_fail(report_fd, Step::join_namespace, int(i));
  }

  if (::setsid() < 0) child_fail(report_fd, Step::session);
  for (int target = 0; target < 3; ++target) {
    if (::dup2(plan.stdio[target], target) < 0) child_fail(report_fd, Step::stdio);
  }
  if (plan.terminal && ::ioctl(0, TIOCSCTTY, 0) != 0) child_fail(report_fd, Step::controlling_terminal);

  char proc_fd[32];
  if (plan.has_rootfs) {
    if (::mount(nullptr, "/", nullptr, plan.rootfs_propagation, nullptr) != 0) {
      child_fail(report_fd, Step::rootfs_propagation);
    }
    if (::mount(plan.rootfs, plan.rootfs, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      child_fail(report_fd, Step::rootfs_bind);
    }
    const int root = ::open(plan.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) child_fail(report_fd, Step::rootfs_bind);
    for (std::size_t i = 0; i < plan.mount_count; ++i) {
      const PlanMount& m = plan.mounts[i];
      const bool file = m.bind && !is_directory_path(m.source);
      const int target = make_target(root, m.destination, file);
      if (target < 0) child_fail(report_fd, Step::mount_target, int(i));
      fd_path(proc_fd, target);
      // Bind mounts ignore most flags on the first call; they take effect on a remount.
      if (::mount(m.source, proc_fd, m.fstype, m.flags, m.bind ? nullptr : m.data) != 0) {
        child_fail(report_fd, Step::mount, int(i));
      }
      ::close(target);
      const int mounted = open_in_root(root, m.destination, O_PATH);
      if (mounted < 0) child_fail(report_fd, Step::mount, int(i));
      fd_path(proc_fd, mounted);
      const unsigned long remount_flags = m.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                                                     MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME);
      if (m.bind && remount_flags != 0 &&
          ::mount(nullptr, proc_fd, nullptr, MS_REMOUNT | MS_BIND | remount_flags, nullptr) != 0) {
        child_fail(report_fd, Step::mount_remount, int(i));
      }
      if (m.propagation != 0 && ::mount(nullptr, proc_fd, nullptr, m.propagation, nullptr) != 0) {
        child_fail(report_fd, Step::mount_propagation, int(i));
      }
      ::close(mounted);
    }
    for (std::size_t i = 0; i < plan.device_count; ++i) {
      const char* device = plan.devices[i];
      const int target = make_target(root, device + 1, true);
      if (target < 0) child_fail(report_fd, Step::device, int(i));
      fd_path(proc_fd, target);
      if (::mount(device, proc_fd, nullptr, MS_BIND, nullptr) != 0) child_fail(report_fd, Step::device, int(i));
      ::close(target);
    }
    ::close(root);

    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the
    // container's tree, with no directory to hide it in.
    if (::chdir(plan.rootfs) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0) child_fail(report_fd, Step::pivot_root);
    if (::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0) child_fail(report_fd, Step::detach_old_root);

    for (std::size_t i = 0; i < plan.masked_count; ++i) {
      const char* path = plan.masked[i];
      int rc = is_directory_path(path) ? ::mount("tmpfs", path, "tmpfs", MS_RDONLY, nullptr)
                                       : ::mount("/dev/null", path, nullptr, MS_BIND, nullptr);
      if (rc != 0 && errno != ENOENT) child_fail(report_fd, Step::mask_path, int(i));
    }
    for (std::size_t i = 0; i < plan.readonly_count; ++i) {
      const char* path = plan.readonly[i];
      if (::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        if (errno == ENOENT) continue;
        child_fail(report_fd, Step::readonly_path, int(i));
      }
      if (::mount(nullptr, path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) !=
          0) {
        child_fail(report_fd, Step::readonly_path, int(i));
      }
    }
    static constexpr const char* links[][2] = {{"/proc/self/fd", "/dev/fd"},
                                               {"/proc/self/fd/0", "/dev/stdin"},
                                               {"/proc/self/fd/1", "/dev/stdout"},
                                               {"/proc/self/fd/2", "/dev/stderr"},
                                               {"pts/ptmx", "/dev/ptmx"}};
    if (is_directory_path("/dev")) {
      for (const auto& link : links) {
        if (::symlink(link[0], link[1]) != 0 && errno != EEXIST) child_fail(report_fd, Step::symlink);
      }
    }
    if (plan.rootfs_read_only &&
        ::mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      child_fail(report_fd, Step::rootfs_readonly);
    }
  }
  if (plan.hostname != nullptr && ::sethostname(plan.hostname, c_strlen(plan.hostname)) != 0) {
    child_fail(report_fd, Step::hostname);
  }

  for (std::size_t i = 0; i < plan.rlimit_count; ++i) {
    const rlimit limit{plan.rlimits[i].soft, plan.rlimits[i].hard};
    if (::setrlimit(static_cast<__rlimit_resource>(plan.rlimits[i].resource), &limit) != 0) {
      child_fail(report_fd, Step::rlimit, int(i));
    }
  }
  if (::syscall(SYS_setgroups, plan.group_count, plan.groups) != 0) child_fail(report_fd, Step::groups);
  if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) child_fail(report_fd, Step::gid);
  if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) child_fail(report_fd, Step::uid);
  if (plan.set_umask) ::umask(plan.umask);
  if (plan.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(report_fd, Step::no_new_privs);
  if (::chdir(plan.cwd) != 0) child_fail(report_fd, Step::cwd);

  if (plan.start_gate >= 0) {
    const Report ready{Step::ready, 0, -1};
    if (::write(report_fd, &ready, sizeof ready) != sizeof ready) ::_exit(127);
    char go = 0;
    ssize_t n;
    while ((n = ::read(plan.start_gate, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) ::_exit(127);  // the owner went away without starting us
    ::close(plan.start_gate);
  }

  // Nothing of the agent's may reach the container, whoever opened it without O_CLOEXEC (a
  // library's socket); the report pipe is already close-on-exec.
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);

  int error = ENOENT;
  for (std::size_t i = 0; i < plan.candidate_count; ++i) {
    ::execve(plan.candidates[i], plan.argv, plan.envp);
    // Keep looking on "not here"; anything else (EACCES, ENOEXEC) is the answer, like execvp.
    if (errno != ENOENT && errno != ENOTDIR) {
      error = errno;
      break;
    }
  }
  errno = error;
  child_fail(report_fd, Step::exec);
}

// ---------------------------------------------------------------------------------------------

struct PlanStorage {
  std::vector<std::string> strings_argv;
  std::vector<char*> argv;
  std::vector<std::string> strings_env;
  std::vector<char*> envp;
  std::vector<std::string> candidate_strings;
  std::vector<const char*> candidates;
  std::vector<UniqueFd> namespace_fds;
  std::vector<PlanNamespace> joins;
  std::vector<std::string> mount_destinations;
  std::vector<MountFlags> mount_flags;
  std::vector<PlanMount> mounts;
  std::vector<const char*> devices;
  std::vector<std::string> masked_strings;
  std::vector<const char*> masked;
  std::vector<std::string> readonly_strings;
  std::vector<const char*> readonly;
  std::string rootfs;
  std::string cwd;
};

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

unsigned long propagation_flags(std::string_view name) {
  if (name.empty() || name == "rslave") return MS_SLAVE | MS_REC;
  if (name == "slave") return MS_SLAVE;
  if (name == "rprivate") return MS_PRIVATE | MS_REC;
  if (name == "private") return MS_PRIVATE;
  if (name == "rshared") return MS_SHARED | MS_REC;
  if (name == "shared") return MS_SHARED;
  if (name == "runbindable") return MS_UNBINDABLE | MS_REC;
  if (name == "unbindable") return MS_UNBINDABLE;
  fail(Errc::invalid_argument, "rootfs propagation '{}' is not one of {{r}}private, {{r}}slave, {{r}}shared, {{r}}unbindable",
       name);
}

std::string strip_leading_slashes(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return std::string(path);
}

std::vector<std::string> exec_candidates(const ProcessSpec& process) {
  const std::string& program = process.args.front();
  if (program.find('/') != std::string::npos) return {program};
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& entry : process.env) {
    if (entry.starts_with("PATH=")) path = entry.substr(5);
  }
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    std::string dir = path.substr(start, end - start);
    out.push_back((dir.empty() ? std::string(".") : dir) + "/" + program);
    start = end + 1;
  }
  return out;
}

int sys_clone3(clone_args* args) { return static_cast<int>(::syscall(SYS_clone3, args, sizeof *args)); }

}  // namespace

MountFlags parse_mount_options(const std::vector<std::string>& options) {
  struct Word {
    std::string_view name;
    bool clear;
    unsigned long flag;
  };
  static constexpr Word words[] = {
      {"ro", false, MS_RDONLY},        {"rw", true, MS_RDONLY},          {"nosuid", false, MS_NOSUID},
      {"suid", true, MS_NOSUID},       {"nodev", false, MS_NODEV},       {"dev", true, MS_NODEV},
      {"noexec", false, MS_NOEXEC},    {"exec", true, MS_NOEXEC},        {"sync", false, MS_SYNCHRONOUS},
      {"async", true, MS_SYNCHRONOUS}, {"dirsync", false, MS_DIRSYNC},   {"remount", false, MS_REMOUNT},
      {"mand", false, MS_MANDLOCK},    {"nomand", true, MS_MANDLOCK},    {"atime", true, MS_NOATIME},
      {"noatime", false, MS_NOATIME},  {"diratime", true, MS_NODIRATIME}, {"nodiratime", false, MS_NODIRATIME},
      {"relatime", false, MS_RELATIME}, {"norelatime", true, MS_RELATIME}, {"strictatime", false, MS_STRICTATIME},
      {"nostrictatime", true, MS_STRICTATIME}, {"bind", false, MS_BIND}, {"rbind", false, MS_BIND | MS_REC},
      {"defaults", false, 0},
  };
  static constexpr Word propagations[] = {
      {"private", false, MS_PRIVATE},  {"rprivate", false, MS_PRIVATE | MS_REC},
      {"slave", false, MS_SLAVE},      {"rslave", false, MS_SLAVE | MS_REC},
      {"shared", false, MS_SHARED},    {"rshared", false, MS_SHARED | MS_REC},
      {"unbindable", false, MS_UNBINDABLE}, {"runbindable", false, MS_UNBINDABLE | MS_REC},
  };
  MountFlags out;
  for (const std::string& option : options) {
    bool known = false;
    for (const Word& w : words) {
      if (option == w.name) {
        out.flags = w.clear ? (out.flags & ~w.flag) : (out.flags | w.flag);
        known = true;
      }
    }
    for (const Word& w : propagations) {
      if (option == w.name) {
        out.propagation = w.flag;
        known = true;
      }
    }
    if (!known) {
      if (!out.data.empty()) out.data += ',';
      out.data += option;
    }
  }
  out.read_only = (out.flags & MS_RDONLY) != 0;
  return out;
}

ContainerProcess& ContainerProcess::operator=(ContainerProcess&& other) noexcept {
  if (this != &other) {
    kill_and_wait();
    stdin_writer = std::move(other.stdin_writer);
    stdout_reader = std::move(other.stdout_reader);
    stderr_reader = std::move(other.stderr_reader);
    pty_master = std::move(other.pty_master);
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    exit_ = std::move(other.exit_);
    start_gate_ = std::move(other.start_gate_);
    exec_report_ = std::move(other.exec_report_);
    name_ = std::move(other.name_);
  }
  return *this;
}

ContainerProcess::~ContainerProcess() { kill_and_wait(); }

void ContainerProcess::kill_and_wait() noexcept {
  if (pid_ <= 0 || !exit_) return;
  if (!exit_->status()) {
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    (void)exit_->wait_blocking();
  }
  pid_ = -1;
}

namespace {

// Reads the child's report pipe until EOF (exec happened) or a record. Returns the record, if any.
std::optional<Report> read_report(int fd) {
  Report report{};
  std::size_t got = 0;
  while (got < sizeof report) {
    const ssize_t n = ::read(fd, reinterpret_cast<char*>(&report) + got, sizeof report - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got != sizeof report) return std::nullopt;
  return report;
}

[[noreturn]] void throw_report(const Report& report, const SpawnRequest& request) {
  std::string what(describe_step(report.step));
  if (report.index >= 0) {
    const auto i = static_cast<std::size_t>(report.index);
    switch (report.step) {
      case Step::mount_target:
      case Step::mount:
      case Step::mount_remount:
      case Step::mount_propagation:
        if (request.rootfs && i < request.rootfs->mounts.size()) {
          const MountSpec& m = request.rootfs->mounts[i];
          what = fmt::format("{} {} on {}", what, m.type.empty() ? m.source : m.type, m.destination);
        }
        break;
      case Step::device:
        if (request.rootfs && i < request.rootfs->devices.size()) what += " " + request.rootfs->devices[i];
        break;
      case Step::mask_path:
        if (request.rootfs && i < request.rootfs->masked_paths.size()) what += " " + request.rootfs->masked_paths[i];
        break;
      case Step::readonly_path:
        if (request.rootfs && i < request.rootfs->readonly_paths.size()) what += " " + request.rootfs->readonly_paths[i];
        break;
      default:
        break;
    }
  }
  fail_errno(report.error, "{}", what);
}

}  // namespace

ContainerProcess ContainerProcess::spawn(const SpawnRequest& request) {
  if (request.process.args.empty()) fail(Errc::invalid_argument, "spawn: process.args is empty");
  const std::string name = request.process.args.front();
  return with_context([&] { return fmt::format("spawn {}", name); }, [&] {
    const ProcessSpec& process = request.process;
    PlanStorage storage;
    Plan plan;

    storage.strings_argv = process.args;
    storage.argv = pointers(storage.strings_argv);
    storage.strings_env = process.env;
    storage.envp = pointers(storage.strings_env);
    storage.candidate_strings = exec_candidates(process);
    for (const auto& c : storage.candidate_strings) storage.candidates.push_back(c.c_str());
    plan.argv = storage.argv.data();
    plan.envp = storage.envp.data();
    plan.candidates = storage.candidates.data();
    plan.candidate_count = storage.candidates.size();

    std::uint64_t clone_flags = CLONE_PIDFD;
    UniqueFd pid_namespace;
    for (const NamespaceSpec& ns : request.namespaces) {
      if (ns.path.empty()) {
        clone_flags |= static_cast<std::uint64_t>(ns.type);
        continue;
      }
      UniqueFd fd(::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) fail_errno(errno, "open namespace {}", ns.path.string());
      if (ns.type == CLONE_NEWPID) {
        pid_namespace = std::move(fd);
      } else {
        storage.joins.push_back(PlanNamespace{fd.get(), ns.type});
        storage.namespace_fds.push_back(std::move(fd));
      }
    }
    plan.joins = storage.joins.data();
    plan.join_count = storage.joins.size();

    ContainerProcess result;
    result.name_ = name;
    UniqueFd child_stdio[3];
    if (process.terminal) {
      UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!master) fail_errno(errno, "open pty");
      if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) fail_errno(errno, "unlock pty");
      char slave_name[128];
      if (::ptsname_r(master.get(), slave_name, sizeof slave_name) != 0) fail_errno(errno, "name pty");
      UniqueFd slave(::open(slave_name, O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!slave) fail_errno(errno, "open {}", slave_name);
      child_stdio[0] = slave.duplicate();
      child_stdio[1] = slave.duplicate();
      child_stdio[2] = std::move(slave);
      result.pty_master = std::move(master);
      plan.terminal = true;
    } else {
      Pipe in = make_pipe();
      Pipe out = make_pipe();
      Pipe err = make_pipe();
      child_stdio[0] = std::move(in.read_end);
      child_stdio[1] = std::move(out.write_end);
      child_stdio[2] = std::move(err.write_end);
      result.stdin_writer = std::move(in.write_end);
      result.stdout_reader = std::move(out.read_end);
      result.stderr_reader = std::move(err.read_end);
    }
    for (int i = 0; i < 3; ++i) plan.stdio[i] = child_stdio[i].get();

    UniqueFd rootfs_fd;
    if (request.rootfs) {
      const RootfsSpec& rootfs = *request.rootfs;
      storage.rootfs = rootfs.path.string();
      plan.has_rootfs = true;
      plan.rootfs = storage.rootfs.c_str();
      plan.rootfs_propagation = propagation_flags(rootfs.propagation);
      plan.rootfs_read_only = rootfs.read_only;
      storage.mount_destinations.reserve(rootfs.mounts.size());
      storage.mount_flags.reserve(rootfs.mounts.size());
      for (const MountSpec& m : rootfs.mounts) {
        if (!m.destination.starts_with('/')) {
          fail(Errc::invalid_argument, "mount destination '{}' is not absolute", m.destination);
        }
        MountFlags flags = parse_mount_options(m.options);
        const bool bind = m.type == "bind" || (flags.flags & MS_BIND) != 0;
        if (bind) flags.flags |= MS_BIND;
        storage.mount_destinations.push_back(strip_leading_slashes(m.destination));
        storage.mount_flags.push_back(std::move(flags));
        const MountFlags& f = storage.mount_flags.back();
        storage.mounts.push_back(PlanMount{m.source.c_str(), storage.mount_destinations.back().c_str(),
                                           bind ? nullptr : m.type.c_str(), f.flags, f.propagation,
                                           f.data.empty() ? nullptr : f.data.c_str(), bind});
      }
      for (const std::string& d : rootfs.devices) {
        if (!d.starts_with("/dev/")) fail(Errc::invalid_argument, "device '{}' is not under /dev", d);
        storage.devices.push_back(d.c_str());
      }
      for (const std::string& p : rootfs.masked_paths) storage.masked.push_back(p.c_str());
      for (const std::string& p : rootfs.readonly_paths) storage.readonly.push_back(p.c_str());
      plan.mounts = storage.mounts.data();
      plan.mount_count = storage.mounts.size();
      plan.devices = storage.devices.data();
      plan.device_count = storage.devices.size();
      plan.masked = storage.masked.data();
      plan.masked_count = storage.masked.size();
      plan.readonly = storage.readonly.data();
      plan.readonly_count = storage.readonly.size();
      if ((clone_flags & CLONE_NEWUTS) != 0 && !rootfs.hostname.empty()) plan.hostname = rootfs.hostname.c_str();
    }
    plan.rlimits = process.rlimits.data();
    plan.rlimit_count = process.rlimits.size();
    plan.groups = process.additional_gids.data();
    plan.group_count = process.additional_gids.size();
    plan.uid = process.uid;
    plan.gid = process.gid;
    plan.set_umask = process.umask.has_value();
    plan.umask = process.umask.value_or(022);
    plan.no_new_privs = process.no_new_privileges;
    storage.cwd = process.cwd.empty() ? "/" : process.cwd;
    plan.cwd = storage.cwd.c_str();

    Pipe gate;
    if (request.hold_before_exec) {
      gate = make_pipe();
      plan.start_gate = gate.read_end.get();
    }

    UniqueFd cgroup_fd;
    if (!request.cgroup.empty()) {
      cgroup_fd.reset(::open(request.cgroup.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (!cgroup_fd) fail_errno(errno, "open cgroup {}", request.cgroup.string());
      clone_flags |= CLONE_INTO_CGROUP;
    }

    Pipe report = make_pipe();
    int pidfd = -1;
    clone_args args{};
    args.flags = clone_flags;
    args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    args.cgroup = cgroup_fd ? static_cast<std::uint64_t>(cgroup_fd.get()) : 0;

    auto lock = Reaper::instance().lock_for_spawn();
    pid_t pid = -1;
    int clone_error = 0;
    const int report_fd = report.write_end.get();
    auto do_clone = [&] {
      pid = sys_clone3(&args);
      if (pid == 0) run_child(plan, report_fd);
      if (pid < 0) clone_error = errno;
    };
    if (pid_namespace) {
      // A thread's pid namespace for children can only be changed by setns, and only for that
      // thread: a short-lived thread enters the container's and makes the child there.
      std::thread([&] {
        if (::setns(pid_namespace.get(), CLONE_NEWPID) != 0) {
          clone_error = errno;
          return;
        }
        do_clone();
      }).join();
    } else {
      do_clone();
    }
    if (pid < 0) fail_errno(clone_error, "clone");
    result.pid_ = pid;
    result.pidfd_.reset(pidfd);
    result.exit_ = Reaper::instance().watch(lock, pid);
    lock.unlock();

    report.write_end.reset();
    for (auto& fd : child_stdio) fd.reset();
    gate.read_end.reset();
    if (const auto failure = read_report(report.read_end.get()); failure && failure->step != Step::ready) {
      (void)result.exit_->wait_blocking();
      result.pid_ = -1;
      throw_report(*failure, request);
    }
    if (request.hold_before_exec) {
      result.start_gate_ = std::move(gate.write_end);
      result.exec_report_ = std::move(report.read_end);
    }
    return result;
  });
}

void ContainerProcess::start() {
  if (!exec_report_) fail(Errc::failed_precondition, "start {}: process {} was already started", name_, pid_);
  with_context([&] { return fmt::format("start {}", name_); }, [&] {
    const char go = 1;
    if (::write(start_gate_.get(), &go, 1) != 1) fail_errno(errno, "release process {}", pid_);
    start_gate_.reset();
    UniqueFd report = std::move(exec_report_);
    if (const auto failure = read_report(report.get())) {
      (void)exit_->wait_blocking();
      fail_errno(failure->error, "{}", describe_step(failure->step));
    }
  });
}

void ContainerProcess::signal(int signal) const {
  if (pid_ <= 0 || !exit_ || exit_->status()) return;
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0) != 0 && errno != ESRCH) {
    fail_errno(errno, "signal {} to process {}", signal, pid_);
  }
}

void ContainerProcess::resize_terminal(unsigned short rows, unsigned short columns) const {
  if (!pty_master) fail(Errc::failed_precondition, "process {} has no terminal", pid_);
  const winsize size{rows, columns, 0, 0};
  if (::ioctl(pty_master.get(), TIOCSWINSZ, &size) != 0) fail_errno(errno, "resize terminal of process {}", pid_);
}

}  // namespace kata::agent_guest
