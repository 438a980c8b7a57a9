// The shim binary's actions: -version, start, delete, and the preparation of serve mode.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "kata/build_info.hpp"
#include "kata/core/child_process.hpp"
#include "kata/core/error.hpp"
#include "kata/log/log.hpp"
#include "kata/oci/k8s.hpp"
#include "kata/shim/detail/serve.hpp"
#include "kata/shim/messages.hpp"
#include "kata/shim/shim.hpp"

extern char** environ;

namespace kata::shim::detail {
namespace {

using namespace std::chrono_literals;

/// containerd gives `delete` 5 s; the cleanup gets most of it, the rest is ours.
constexpr auto cleanup_budget = 4s;
constexpr auto shim_exit_budget = 500ms;

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "write to fd {}", fd);
    }
    data.remove_prefix(static_cast<std::size_t>(written));
  }
}

std::string getenv_string(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  return value != nullptr ? std::string(value) : std::string();
}

std::filesystem::path socket_dir() {
  auto dir = getenv_string(socket_dir_env);
  return dir.empty() ? std::filesystem::path(default_socket_dir) : std::filesystem::path(dir);
}

std::string version_line() {
  return fmt::format("{} containerd shim (C++): id: {}, version: {}, commit: {}\n", build_info::project_name,
                     build_info::containerd_runtime_name, build_info::version, build_info::commit);
}

// stdin of `start`: containerd writes the runtime options Any and closes it (or gives
// /dev/null). A terminal means a person ran us by hand: do not wait for them.
std::string read_stdin() {
  if (::isatty(STDIN_FILENO) != 0) return {};
  std::string data;
  char buffer[4096];
  while (true) {
    const ssize_t got = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF, or no usable stdin (EBADF): no options
    data.append(buffer, static_cast<std::size_t>(got));
  }
  return data;
}

std::string start_config_path(const log::Logger& logger) {
  const std::string bytes = read_stdin();
  try {
    return config_path_from_any_bytes(bytes).value_or("");
  } catch (const std::exception& error) {
    // Options are a hint for the server; a Create carries them again.
    logger.warn("ignoring runtime options on stdin: {}", describe(error));
    return {};
  }
}

std::optional<oci::Classification> classify_bundle(const std::filesystem::path& bundle) {
  const auto spec_path = bundle / "config.json";
  std::error_code error;
  if (!std::filesystem::exists(spec_path, error)) return std::nullopt;
  return oci::classify(oci::load_spec(spec_path));
}

// True when something accepts connections on `path` (a live shim from an earlier start).
bool is_served(const std::filesystem::path& path) {
  const UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const auto& text = path.native();
  if (text.size() >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

std::filesystem::path self_executable() {
  std::error_code error;
  auto path = std::filesystem::read_symlink("/proc/self/exe", error);
  // A replaced binary reads as "<path> (deleted)"; /proc/self/exe still execs the running one.
  if (error || path.native().ends_with(" (deleted)")) return "/proc/self/exe";
  return path;
}

std::vector<std::string> child_environment(std::string_view config_path) {
  const std::string bind_prefix = std::string(bind_fd_env) + "=";
  const std::string config_prefix = std::string(start_config_path_env) + "=";
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (text.starts_with(bind_prefix) || text.starts_with(config_prefix)) continue;
    env.emplace_back(text);
  }
  env.push_back(bind_prefix + "3");
  if (!config_path.empty()) env.push_back(config_prefix + std::string(config_path));
  return env;
}

/// Removes a socket file on scope exit unless released (start failed after binding).
class SocketFileGuard {
 public:
  explicit SocketFileGuard(std::filesystem::path path) : path_(std::move(path)) {}
  SocketFileGuard(const SocketFileGuard&) = delete;
  SocketFileGuard& operator=(const SocketFileGuard&) = delete;
  ~SocketFileGuard() {
    if (!path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove(path_, ignored);
    }
  }
  void release() noexcept { path_.clear(); }

 private:
  std::filesystem::path path_;
};

void init_logging(const Arguments& arguments, const std::filesystem::path& bundle, bool to_stderr) {
  log::Config config;
  config.level = arguments.debug ? log::Level::debug : log::Level::info;
  config.sandbox = arguments.id;
  config.fifo = bundle / "log";
  config.syslog = true;
  config.to_stderr = to_stderr;
  log::init(config);
}

int start_command(Arguments arguments) {
  validate(arguments, false);
  const auto bundle = std::filesystem::current_path();
  // containerd reads stdout and stderr together as the address: nothing may go to stderr.
  init_logging(arguments, bundle, false);
  const log::Logger logger = log::Logger("shim").with("container", arguments.id);
  const std::string config_path = start_config_path(logger);
  const auto dir = socket_dir();

  const auto classification = classify_bundle(bundle);
  if (classification && classification->type == oci::ContainerType::pod_container) {
    if (!classification->sandbox_id || classification->sandbox_id->empty()) {
      fail(Errc::invalid_argument, "start {}: a pod container without a sandbox id annotation ({}, {} or {})",
           arguments.id, oci::annotation::crio_sandbox_id, oci::annotation::containerd_sandbox_id,
           oci::annotation::dockershim_sandbox_id);
    }
    const auto address =
        socket_address(arguments.address, arguments.namespace_name, *classification->sandbox_id, dir);
    write_address_file(bundle, address);
    write_all(STDOUT_FILENO, address);
    logger.debug("joining sandbox {} at {}", *classification->sandbox_id, address);
    return 0;
  }

  const auto address = socket_address(arguments.address, arguments.namespace_name, arguments.id, dir);
  const auto path = socket_path_of(address);
  if (is_served(path)) {
    write_address_file(bundle, address);
    write_all(STDOUT_FILENO, address);
    logger.info("a shim already serves {}", address);
    return 0;
  }

  with_context([&] { return fmt::format("create {}", path.parent_path().string()); },
               [&] { std::filesystem::create_directories(path.parent_path()); });
  UniqueFd listener = ttrpc::listen_unix(path);
  SocketFileGuard socket_guard(path);

  SpawnOptions options;
  options.program = self_executable();
  options.arguments = {"-namespace", arguments.namespace_name, "-address", arguments.address,
                       "-publish-binary", arguments.publish_binary, "-id", arguments.id};
  if (arguments.debug) options.arguments.emplace_back("-debug");
  options.environment = child_environment(config_path);
  options.working_directory = bundle;
  options.extra_fds.push_back({.parent_fd = listener.get(), .child_fd = 3});
  options.new_session = true;
  ChildProcess server = with_context("start the serving shim", [&] { return ChildProcess::spawn(options); });

  write_pid_file(bundle, server.pid());
  write_address_file(bundle, address);
  const pid_t pid = server.release();
  socket_guard.release();
  write_all(STDOUT_FILENO, address);
  logger.info("started shim pid {} serving {}", pid, address);
  return 0;
}

// --- delete ---

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Is `pid` this binary serving `id`? Guards against a recycled pid in a stale shim.pid.
bool is_our_shim(pid_t pid, std::string_view id) {
  const auto proc = std::filesystem::path("/proc") / std::to_string(pid);
  std::error_code error;
  auto exe = std::filesystem::read_symlink(proc / "exe", error);
  if (error) return false;
  auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return false;
  constexpr std::string_view deleted = " (deleted)";
  auto strip = [&](const std::filesystem::path& p) {
    std::string_view text = p.native();
    if (text.ends_with(deleted)) text.remove_suffix(deleted.size());
    return std::string(text);
  };
  if (strip(exe) != strip(self)) return false;
  // argv is NUL-separated: look for "-id" followed by the id (Go flag syntax also allows
  // "-id=<id>" and "--id").
  const std::string cmdline = read_text(proc / "cmdline");
  std::vector<std::string_view> argv;
  for (std::size_t start = 0; start < cmdline.size();) {
    const auto end = cmdline.find('\0', start);
    argv.emplace_back(std::string_view(cmdline).substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const auto arg = argv[i];
    if ((arg == "-id" || arg == "--id") && i + 1 < argv.size() && argv[i + 1] == id) return true;
    if (arg == fmt::format("-id={}", id) || arg == fmt::format("--id={}", id)) return true;
  }
  return false;
}

void kill_recorded_shim(const std::filesystem::path& bundle, std::string_view id, const log::Logger& logger) {
  pid_t pid = 0;
  try {
    pid = read_pid_file(bundle);
  } catch (const std::exception& error) {
    logger.warn("ignoring unreadable shim.pid: {}", describe(error));
    return;
  }
  if (pid <= 0 || pid == ::getpid()) return;
  UniqueFd pidfd;
  try {
    pidfd = open_pidfd(pid);  // before the identity check: the pid cannot be recycled under us
  } catch (const std::exception&) {
    return;  // already gone
  }
  if (!is_our_shim(pid, id)) {
    logger.debug("pid {} from shim.pid is not a shim serving {}; left alone", pid, id);
    return;
  }
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) != 0) {
    if (errno != ESRCH) logger.warn("kill shim {}: {}", pid, std::strerror(errno));
    return;
  }
  logger.info("killed shim pid {}", pid);
  pollfd exited{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
  const int wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(shim_exit_budget).count());
  while (::poll(&exited, 1, wait_ms) < 0 && errno == EINTR) {
  }
}

// Runs the factory's cleanup on an io_context of its own thread, waiting at most `budget`.
void run_cleanup(CleanupFunction cleanup, const DeleteContext& context, const log::Logger& logger) {
  auto context_copy = std::make_shared<DeleteContext>(context);
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  std::thread worker([cleanup, context_copy, done, logger] {
    try {
      asio::io_context io(1);
      std::exception_ptr failure;
      asio::co_spawn(io, cleanup(*context_copy), [&](std::exception_ptr error) { failure = error; });
      io.run();
      if (failure) std::rethrow_exception(failure);
    } catch (const std::exception& error) {
      logger.error("cleanup of sandbox {} failed: {}", context_copy->sandbox_id, describe(error));
    }
    done->set_value();
  });
  if (finished.wait_for(cleanup_budget) == std::future_status::ready) {
    worker.join();
  } else {
    logger.error("cleanup of sandbox {} did not finish within {} s", context.sandbox_id, cleanup_budget.count());
    worker.detach();  // the process exits right after printing; the thread goes with it
  }
}

int delete_command(Arguments arguments, CleanupFunction cleanup) {
  validate(arguments, false);
  const std::filesystem::path bundle =
      arguments.bundle.empty() ? std::filesystem::current_path() : std::filesystem::path(arguments.bundle);
  init_logging(arguments, bundle, true);
  const log::Logger logger = log::Logger("shim").with("container", arguments.id);

  runtime::ExitInfo exit{.pid = 0, .exit_status = 128 + SIGKILL, .exited_at = std::chrono::system_clock::now()};
  const std::string response = to_delete_response(exit).SerializeAsString();

  std::optional<oci::Classification> classification;
  try {
    classification = classify_bundle(bundle);
  } catch (const std::exception& error) {
    logger.warn("cannot classify the bundle, treating it as a sandbox: {}", describe(error));
  }
  const bool is_sandbox = !classification || classification->type != oci::ContainerType::pod_container;

  kill_recorded_shim(bundle, arguments.id, logger);
  try {
    const auto path = socket_path(arguments.address, arguments.namespace_name, arguments.id, socket_dir());
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  } catch (const std::exception& error) {
    logger.warn("removing the shim socket: {}", describe(error));
  }
  if (is_sandbox) {
    const DeleteContext context{.sandbox_id = arguments.id, .bundle = bundle, .namespace_name = arguments.namespace_name};
    run_cleanup(cleanup, context, logger);
  }
  write_all(STDOUT_FILENO, response);
  return 0;
}

// --- serve ---

UniqueFd inherited_listener() {
  const std::string text = getenv_string(bind_fd_env);
  if (text.empty()) {
    fail(Errc::invalid_argument, "no {} in the environment: serve mode is started by `start`", bind_fd_env);
  }
  int fd = -1;
  const auto [end, parse_error] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (parse_error != std::errc() || end != text.data() + text.size() || fd < 0) {
    fail(Errc::invalid_argument, "{}={} is not a file descriptor number", bind_fd_env, text);
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail_errno(errno, "{}={}", bind_fd_env, fd);
  if (!S_ISSOCK(info.st_mode)) fail(Errc::invalid_argument, "{}={} is not a socket", bind_fd_env, fd);
  // Nothing we start (VMM, virtiofsd) may inherit the listener.
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::unsetenv(std::string(bind_fd_env).c_str());
  return UniqueFd(fd);
}

int serve_command(Arguments arguments, ServeFunction serve) {
  // Like upstream: systemd or a terminal must not kill a shim whose containers still run; only
  // a Shutdown RPC (or SIGINT, during development) ends it.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  validate(arguments, false);
  ServeContext context;
  context.bundle = std::filesystem::current_path();
  init_logging(arguments, context.bundle, false);
  context.listener = inherited_listener();
  context.socket_path = socket_path(arguments.address, arguments.namespace_name, arguments.id, socket_dir());
  context.config_path = getenv_string(start_config_path_env);
  ::unsetenv(std::string(start_config_path_env).c_str());
  context.ttrpc_address = getenv_string("TTRPC_ADDRESS");
  context.arguments = std::move(arguments);
  return serve(std::move(context));
}

}  // namespace

int run_main(int argc, char** argv, ServeFunction serve, CleanupFunction cleanup) noexcept {
  Arguments arguments;
  try {
    arguments = parse_arguments(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", argv[0], describe(error).c_str());
    return 2;  // Go's flag package exits 2 on usage errors
  }
  try {
    if (arguments.version) {
      write_all(STDOUT_FILENO, version_line());
      return 0;
    }
    if (arguments.info) {
      fail(Errc::not_supported, "-info is not supported by this shim (no containerd.types.RuntimeInfo)");
    }
    switch (arguments.action) {
      case Action::start:
        return start_command(std::move(arguments));
      case Action::delete_:
        return delete_command(std::move(arguments), cleanup);
      case Action::serve:
        return serve_command(std::move(arguments), serve);
    }
    fail(Errc::internal, "unknown action");
  } catch (const std::exception& error) {
    const std::string message = describe(error);
    log::Logger("shim").error("{} failed: {}", to_string(arguments.action), message);
    std::fprintf(stderr, "%s %s: %s\n", argv[0], std::string(to_string(arguments.action)).c_str(), message.c_str());
    return 1;
  }
}

}  // namespace kata::shim::detail
