#include "kata/core/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <boost/asio/posix/stream_descriptor.hpp>

#include "kata/core/error.hpp"

namespace kata {
namespace {

int sys_pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int sys_pidfd_send_signal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

// What the child reports through the exec-error pipe when it cannot exec.
enum class ChildStage : int { setsid = 1, netns_open, netns_enter, dup_fds, chdir, exec };

struct ChildFailure {
  ChildStage stage;
  int error;
};

std::string_view describe_stage(ChildStage stage) {
  switch (stage) {
    case ChildStage::setsid: return "create session";
    case ChildStage::netns_open: return "open network namespace";
    case ChildStage::netns_enter: return "enter network namespace";
    case ChildStage::dup_fds: return "set up descriptors";
    case ChildStage::chdir: return "change directory";
    case ChildStage::exec: return "exec";
  }
  return "start";
}

ExitStatus status_from_siginfo(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return ExitStatus{info.si_status, 0};
  return ExitStatus{0, info.si_status};
}

// Everything below runs in the child, which shares the parent's memory until it execs (see
// spawn): only async-signal-safe calls, and no writes to anything the parent reads later except
// the report pipe.
[[noreturn]] void child_fail(int report_fd, ChildStage stage) {
  const ChildFailure failure{stage, errno};
  [[maybe_unused]] auto ignored = ::write(report_fd, &failure, sizeof failure);
  ::_exit(127);
}

struct ChildPlan {
  const char* program;
  char* const* argv;
  char* const* envp;
  const char* cwd;
  const char* netns;
  bool new_session;
  // (source, target) pairs, sources valid in the parent.
  std::array<std::pair<int, int>, 64> mappings;
  std::size_t mapping_count;
};

[[noreturn]] void run_child(const ChildPlan& plan, int report_fd) {
  // All signals arrive blocked (spawn blocks them around the clone). A handler of the parent must
  // never run here, in memory shared with the parent, so every caught signal goes back to its
  // default before anything is unblocked. Dispositions set to "ignore" survive exec; the shim
  // ignores SIGPIPE, a VMM must not.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction current {};
    if (::sigaction(sig, nullptr, &current) != 0) continue;  // reserved real-time signals
    if (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN) ::signal(sig, SIG_DFL);
  }
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) ::signal(sig, SIG_DFL);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (plan.new_session && ::setsid() < 0) child_fail(report_fd, ChildStage::setsid);

  if (plan.netns != nullptr) {
    const int ns = ::open(plan.netns, O_RDONLY | O_CLOEXEC);
    if (ns < 0) child_fail(report_fd, ChildStage::netns_open);
    if (::setns(ns, CLONE_NEWNET) != 0) child_fail(report_fd, ChildStage::netns_enter);
    ::close(ns);
  }

  // Move every source above every target first, so that dup2 never clobbers a source that a
  // later mapping still needs.
  int floor = report_fd;
  for (std::size_t i = 0; i < plan.mapping_count; ++i) {
    floor = std::max({floor, plan.mappings[i].first, plan.mappings[i].second});
  }
  ++floor;
  const int report = ::fcntl(report_fd, F_DUPFD_CLOEXEC, floor);
  if (report < 0) child_fail(report_fd, ChildStage::dup_fds);
  std::array<int, 64> staged{};
  for (std::size_t i = 0; i < plan.mapping_count; ++i) {
    staged[i] = ::fcntl(plan.mappings[i].first, F_DUPFD_CLOEXEC, floor);
    if (staged[i] < 0) child_fail(report, ChildStage::dup_fds);
  }
  for (std::size_t i = 0; i < plan.mapping_count; ++i) {
    if (::dup2(staged[i], plan.mappings[i].second) < 0) child_fail(report, ChildStage::dup_fds);
  }
  int highest_target = 2;
  for (std::size_t i = 0; i < plan.mapping_count; ++i) highest_target = std::max(highest_target, plan.mappings[i].second);
  // Close everything we do not hand over, except the report pipe (CLOEXEC, closes on exec).
  if (report > highest_target + 1) ::close_range(static_cast<unsigned>(highest_target + 1), static_cast<unsigned>(report - 1), 0);
  ::close_range(static_cast<unsigned>(report + 1), ~0U, 0);

  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) child_fail(report, ChildStage::chdir);

  ::execve(plan.program, plan.argv, plan.envp);
  child_fail(report, ChildStage::exec);
}

struct ChildStart {
  const ChildPlan* plan;
  int report_fd;
};

int child_entry(void* start) {
  const auto* what = static_cast<const ChildStart*>(start);
  run_child(*what->plan, what->report_fd);
}

// The child's stack while it shares our memory: run_child needs well under a page of it.
constexpr std::size_t child_stack_size = 64 * 1024;

// Starts run_child in a child that shares our memory and suspends us until it has exec'd or
// died (what posix_spawn does inside glibc). A fork would copy our page tables and mark every
// private page copy-on-write, only for the child to throw it all away at exec, and the parent
// would then take a fault on each page it writes; `shim start` and every QEMU, virtiofsd or
// logger launch pay that otherwise. Returns the pid, or -1 with errno set.
pid_t clone_child(const ChildPlan& plan, int report_fd) {
  void* stack = ::mmap(nullptr, child_stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED) return -1;
  sigset_t all;
  sigset_t previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &previous);
  ChildStart start{&plan, report_fd};
  const pid_t pid = ::clone(child_entry, static_cast<char*>(stack) + child_stack_size,
                            CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
  const int clone_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ::munmap(stack, child_stack_size);
  errno = clone_error;
  return pid;
}

std::vector<char*> as_argv(std::vector<std::string>& storage) {
  std::vector<char*> out;
  out.reserve(storage.size() + 1);
  for (auto& s : storage) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

ChildProcess::ChildProcess(pid_t pid, UniqueFd pidfd, std::filesystem::path program) noexcept
    : pid_(pid), pidfd_(std::move(pidfd)), program_(std::move(program)) {}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      program_(std::move(other.program_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    program_ = std::move(other.program_);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() { kill_and_reap(); }

ChildProcess ChildProcess::spawn(const SpawnOptions& options) {
  const std::string program = options.program.string();
  if (!options.program.is_absolute()) fail(Errc::invalid_argument, "exec {}: program path must be absolute", program);

  std::vector<std::string> argv_storage;
  argv_storage.reserve(options.arguments.size() + 1);
  argv_storage.push_back(program);
  argv_storage.insert(argv_storage.end(), options.arguments.begin(), options.arguments.end());
  std::vector<char*> argv = as_argv(argv_storage);

  std::vector<std::string> env_storage;
  if (options.environment) {
    env_storage = *options.environment;
  } else {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) env_storage.emplace_back(*e);
  }
  std::vector<char*> envp = as_argv(env_storage);

  UniqueFd dev_null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!dev_null) fail_errno(errno, "exec {}: open /dev/null", program);

  ChildPlan plan{};
  plan.program = program.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  const std::string cwd = options.working_directory.string();
  plan.cwd = cwd.empty() ? nullptr : cwd.c_str();
  const std::string netns = options.network_namespace.string();
  plan.netns = netns.empty() ? nullptr : netns.c_str();
  plan.new_session = options.new_session;
  if (options.extra_fds.size() + 3 > plan.mappings.size()) {
    fail(Errc::invalid_argument, "exec {}: too many descriptors to pass ({})", program, options.extra_fds.size());
  }
  auto add = [&](int source, int target) { plan.mappings[plan.mapping_count++] = {source, target}; };
  add(options.stdin_fd >= 0 ? options.stdin_fd : dev_null.get(), 0);
  add(options.stdout_fd >= 0 ? options.stdout_fd : dev_null.get(), 1);
  add(options.stderr_fd >= 0 ? options.stderr_fd : dev_null.get(), 2);
  for (const auto& m : options.extra_fds) add(m.parent_fd, m.child_fd);

  Pipe report = make_pipe();
  const pid_t pid = clone_child(plan, report.write_end.get());
  if (pid < 0) fail_errno(errno, "exec {}: clone", program);

  report.write_end.reset();
  UniqueFd pidfd(sys_pidfd_open(pid));
  const int pidfd_error = pidfd ? 0 : errno;
  ChildProcess child(pid, std::move(pidfd), options.program);

  ChildFailure failure{};
  ssize_t got;
  do {
    got = ::read(report.read_end.get(), &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    child.reap_blocking();
    const std::string stage(describe_stage(failure.stage));
    if (failure.stage == ChildStage::netns_open || failure.stage == ChildStage::netns_enter) {
      fail_errno(failure.error, "exec {}: {} {}", program, stage, netns);
    }
    if (failure.stage == ChildStage::chdir) fail_errno(failure.error, "exec {}: {} {}", program, stage, cwd);
    if (failure.stage == ChildStage::exec) fail_errno(failure.error, "exec {}", program);
    fail_errno(failure.error, "exec {}: {}", program, stage);
  }
  if (pidfd_error != 0) fail_errno(pidfd_error, "exec {}: pidfd_open", program);
  return child;
}

std::optional<ExitStatus> ChildProcess::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG) == 0 && info.si_pid == pid_) {
    status_ = status_from_siginfo(info);
    pidfd_.reset();
  }
  return status_;
}

Task<ExitStatus> ChildProcess::wait(Executor executor) {
  if (auto done = try_wait()) co_return *done;
  asio::posix::stream_descriptor readiness(executor, pidfd_.duplicate().release());
  co_await readiness.async_wait(asio::posix::stream_descriptor::wait_read, asio::use_awaitable);
  co_return reap_blocking();
}

void ChildProcess::signal(int signal) noexcept {
  if (status_ || !pidfd_) return;
  sys_pidfd_send_signal(pidfd_.get(), signal);
}

ExitStatus ChildProcess::terminate_blocking(std::chrono::milliseconds grace) {
  if (auto done = try_wait()) return *done;
  signal(SIGTERM);
  pollfd readiness{pidfd_.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&readiness, 1, static_cast<int>(grace.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) signal(SIGKILL);
  return reap_blocking();
}

pid_t ChildProcess::release() noexcept {
  pidfd_.reset();
  status_.reset();
  return std::exchange(pid_, -1);
}

ExitStatus ChildProcess::reap_blocking() {
  if (status_) return *status_;
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) fail_errno(errno, "wait for {} (pid {})", program_.string(), pid_);
  status_ = status_from_siginfo(info);
  pidfd_.reset();
  return *status_;
}

void ChildProcess::kill_and_reap() noexcept {
  if (pid_ <= 0 || status_) return;
  signal(SIGKILL);
  try {
    reap_blocking();
  } catch (...) {
    // ECHILD: someone else reaped it; nothing left to release.
  }
}

UniqueFd open_pidfd(pid_t pid) {
  UniqueFd fd(sys_pidfd_open(pid));
  if (!fd) fail_errno(errno, "pidfd_open {}", pid);
  return fd;
}

}  // namespace kata
