#include "kata/resource/share_fs/shared_fs.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <array>

#include <boost/asio/posix/stream_descriptor.hpp>

#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"
#include "kata/core/fd_wait.hpp"
#include "kata/log/log.hpp"
#include "kata/resource/share_fs/virtiofsd.hpp"
#include "resource/share_fs/pipe_reader.hpp"

namespace kata::resource {
namespace {

namespace fs = std::filesystem;

const log::Logger& logger() {
  static const log::Logger instance("share_fs");
  return instance;
}

void check_daemon_path(const config::SharedFsInfo& config) {
  const std::string& daemon = config.virtio_fs_daemon;
  if (daemon.empty()) fail(Errc::invalid_argument, "virtio_fs_daemon is empty; set the virtiofsd binary");
  const auto& allowed = config.valid_virtio_fs_daemon_paths;
  if (allowed.empty()) return;
  const bool listed = std::any_of(allowed.begin(), allowed.end(), [&](const std::string& pattern) {
    return ::fnmatch(pattern.c_str(), daemon.c_str(), 0) == 0;
  });
  if (!listed) {
    fail(Errc::invalid_argument, "virtio_fs_daemon = \"{}\" is not allowed by valid_virtio_fs_daemon_paths [{}]", daemon,
         fmt::join(allowed, ", "));
  }
}

void check_socket_path(const fs::path& socket) {
  if (socket.empty()) fail(Errc::invalid_argument, "no socket path for virtiofsd");
  constexpr std::size_t max_length = sizeof(sockaddr_un{}.sun_path) - 1;
  if (socket.native().size() > max_length) {
    fail(Errc::invalid_argument, "virtiofsd socket path {} is {} bytes long; a unix socket path has at most {}",
         socket.string(), socket.native().size(), max_length);
  }
}

// Removes `dir` after everything below it was unmounted; refuses to recurse across a mount, so a
// volume's data can never be deleted by a cleanup.
void unmount_and_remove(const fs::path& dir) {
  std::error_code error;
  if (!fs::exists(fs::symlink_status(dir, error))) return;
  unmount_all_under(dir);
  if (const auto left = mount_points_under(dir); !left.empty()) {
    fail(Errc::failed_precondition, "{} is still mounted; not removing {}", left.front().string(), dir.string());
  }
  fs::remove_all(dir, error);
  if (error) throw_errno(error.value(), fmt::format("remove {}", dir.string()));
}

void remove_if_present(const fs::path& path) {
  std::error_code error;
  fs::remove(path, error);
  if (error && error != std::errc::no_such_file_or_directory) {
    throw_errno(error.value(), fmt::format("remove {}", path.string()));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view to_string(ShareFsKind kind) noexcept {
  switch (kind) {
    case ShareFsKind::none:
      return "none";
    case ShareFsKind::virtio_fs:
      return "virtio-fs";
    case ShareFsKind::virtio_9p:
      return "virtio-9p";
  }
  return "unknown";
}

ShareFsKind share_fs_kind(const std::optional<std::string>& configured) {
  if (!configured || *configured == "none") return ShareFsKind::none;
  if (configured->empty() || *configured == "virtio-fs") return ShareFsKind::virtio_fs;
  if (*configured == "virtio-9p") return ShareFsKind::virtio_9p;
  if (*configured == "inline-virtio-fs" || *configured == "virtio-fs-nydus") {
    fail(Errc::not_supported, "shared_fs = \"{}\" is not supported by this runtime; allowed: virtio-fs, virtio-9p, none",
         *configured);
  }
  fail(Errc::invalid_argument, "shared_fs = \"{}\" is not a shared filesystem; allowed: virtio-fs, virtio-9p, none",
       *configured);
}

fs::path default_virtiofsd_socket(const fs::path& state_dir) { return state_dir / "root" / "virtiofsd.sock"; }

// ---------------------------------------------------------------------------------------------
// SharedPath

SharedPath& SharedPath::operator=(SharedPath&& other) noexcept {
  if (this != &other) {
    release();
    mount_ = std::move(other.mount_);
    view_path_ = std::move(other.view_path_);
    guest_path_ = std::move(other.guest_path_);
    read_only_ = other.read_only_;
    created_ = std::move(other.created_);
    other.created_.clear();
  }
  return *this;
}

SharedPath::~SharedPath() { release(); }

void SharedPath::release() noexcept {
  try {
    unshare();
  } catch (const std::exception& error) {
    logger().warn("release share {}: {}", guest_path_, describe(error));
  }
}

void SharedPath::unshare() {
  // Unmounting the rw side propagates to the read-only view and into the daemon's namespace.
  try {
    mount_.unmount();
  } catch (const Error& error) {
    // Already gone: SharedFs::cleanup() unmounted and removed the whole sandbox directory.
    if (error.code() != Errc::not_found && error.code() != Errc::invalid_argument) throw;
  }
  auto created = std::exchange(created_, {});
  for (const auto& path : created) {
    std::error_code error;
    fs::remove(path, error);  // a parent still holding another share stays (ENOTEMPTY)
    if (error && error != std::errc::no_such_file_or_directory && error != std::errc::directory_not_empty) {
      throw_errno(error.value(), fmt::format("remove {}", path.string()));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The daemon's stderr after it is up: copied line by line into our log until the daemon exits.

namespace detail {

struct DaemonLog {
  DaemonLog(const Executor& executor, int fd) : stream(executor, fd), finished(executor) {}
  asio::posix::stream_descriptor stream;
  AsyncEvent finished;
};

}  // namespace detail

namespace {

void log_daemon_lines(std::string& pending, bool flush) {
  std::size_t end;
  while ((end = pending.find('\n')) != std::string::npos) {
    std::string_view line(pending.data(), end);
    if (!line.empty()) logger().info("virtiofsd: {}", line);
    pending.erase(0, end + 1);
  }
  if (flush && !pending.empty()) {
    logger().info("virtiofsd: {}", pending);
    pending.clear();
  }
}

Task<void> copy_daemon_log(std::shared_ptr<detail::DaemonLog> log) {
  std::array<char, 4096> buffer{};
  std::string pending;
  for (;;) {
    boost::system::error_code error;
    const std::size_t got =
        co_await log->stream.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, error));
    pending.append(buffer.data(), got);
    log_daemon_lines(pending, static_cast<bool>(error));
    if (error) break;  // eof once the daemon exited, operation_aborted when the owner gave up
  }
  log->finished.set();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SharedFs

SharedFs::SharedFs(Executor executor, SharedFsOptions options)
    : executor_(std::move(executor)), options_(std::move(options)) {
  with_context(
      [&] { return fmt::format("prepare shared filesystem of sandbox {}", options_.sandbox_id); },
      [&] {
        kind_ = share_fs_kind(options_.config.shared_fs);
        if (kind_ == ShareFsKind::none) return;
        if (options_.sandbox_id.empty() || options_.sandbox_id.find('/') != std::string::npos ||
            options_.sandbox_id == "." || options_.sandbox_id == "..") {
          fail(Errc::invalid_argument, "sandbox id \"{}\" cannot name a directory", options_.sandbox_id);
        }
        if (kind_ == ShareFsKind::virtio_fs) {
          check_daemon_path(options_.config);
          check_socket_path(options_.daemon_socket);
        }
        const fs::path sandbox_dir = options_.host_root / options_.sandbox_id;
        // A crashed shim of the same sandbox may have left its mounts; the id is ours now.
        unmount_and_remove(sandbox_dir);
        sandbox_dir_ = sandbox_dir;
        try {
          const fs::path rw = rw_dir();
          const fs::path ro = ro_dir();
          fs::create_directories(rw);
          fs::create_directories(ro);
          // rw becomes a mount of its own in a fresh peer group, so what is mounted below it
          // propagates to the view whatever the propagation of /run is on this host.
          rw_mount_ = ScopedMount::bind(rw, rw, {.recursive = false});
          rw_mount_.set_propagation(MS_PRIVATE);
          rw_mount_.set_propagation(MS_SHARED);
          view_mount_ = ScopedMount::bind(rw, ro, {.recursive = false});
          view_mount_.set_propagation(MS_SLAVE);
          view_mount_.remount_read_only(true);
          fs::create_directories(rw / passthrough_dir);
        } catch (...) {
          view_mount_ = {};
          rw_mount_ = {};
          std::error_code ignored;
          fs::remove_all(sandbox_dir_, ignored);
          sandbox_dir_.clear();
          throw;
        }
      });
}

SharedFs::~SharedFs() {
  if (daemon_log_) daemon_log_->stream.close();
  try {
    cleanup();
  } catch (const std::exception& error) {
    logger().error("clean up shared filesystem of sandbox {}: {}", options_.sandbox_id, describe(error));
  }
}

std::optional<hypervisor::ShareFsDevice> SharedFs::device() const {
  if (kind_ == ShareFsKind::none) return std::nullopt;
  hypervisor::ShareFsDevice device;
  device.mount_tag = std::string(shared_fs_mount_tag);
  if (kind_ == ShareFsKind::virtio_fs) {
    device.kind = hypervisor::ShareFsDevice::Kind::virtio_fs;
    device.daemon_socket = options_.daemon_socket;
    const std::uint32_t queue_size = options_.config.virtio_fs_queue_size;
    device.queue_size = queue_size != 0 ? queue_size : default_virtio_fs_queue_size;
  } else {
    device.kind = hypervisor::ShareFsDevice::Kind::virtio_9p;
    device.shared_dir = ro_dir();
  }
  return device;
}

std::vector<grpc::Storage> SharedFs::storages() const {
  if (kind_ == ShareFsKind::none) return {};
  grpc::Storage storage;
  storage.set_source(std::string(shared_fs_mount_tag));
  storage.set_mount_point(std::string(guest_shared_dir));
  if (kind_ == ShareFsKind::virtio_fs) {
    storage.set_driver("virtio-fs");
    storage.set_fstype("virtiofs");
    storage.add_options("nodev");
  } else {
    // The Go runtime's list, kept as it is: the first entry carries three options.
    storage.set_driver("9p");
    storage.set_fstype("9p");
    storage.add_options("trans=virtio,version=9p2000.L,cache=mmap");
    storage.add_options("nodev");
    storage.add_options(fmt::format("msize={}", options_.msize_9p));
  }
  return {std::move(storage)};
}

Task<void> SharedFs::start() {
  if (kind_ != ShareFsKind::virtio_fs || daemon_pid() > 0) co_return;
  const fs::path daemon_path = options_.config.virtio_fs_daemon;
  try {
    const auto flavor = co_await detect_virtiofsd_flavor(executor_, daemon_path, options_.daemon_ready_timeout);
    VirtiofsdSettings settings;
    settings.socket = options_.daemon_socket;
    settings.shared_dir = ro_dir();
    settings.cache = options_.config.virtio_fs_cache.empty() ? "never" : options_.config.virtio_fs_cache;
    settings.extra_args = options_.config.virtio_fs_extra_args;
    settings.xattr = !options_.disable_guest_selinux;
    SpawnOptions spawn;
    spawn.program = daemon_path;
    spawn.arguments = virtiofsd_arguments(flavor, settings);

    fs::create_directories(options_.daemon_socket.parent_path());
    remove_if_present(options_.daemon_socket);
    Pipe output = make_pipe();
    if (::fcntl(output.read_end.get(), F_SETFL, O_NONBLOCK) != 0) fail_errno(errno, "set O_NONBLOCK");
    spawn.stderr_fd = output.write_end.get();
    spawn.stdout_fd = output.write_end.get();
    logger().info("starting {} ({}): {}", daemon_path.string(), to_string(flavor), fmt::join(spawn.arguments, " "));
    ChildProcess daemon = ChildProcess::spawn(spawn);
    output.write_end.reset();

    const auto deadline = std::chrono::steady_clock::now() + options_.daemon_ready_timeout;
    auto startup = co_await detail::read_pipe_until(executor_, output.read_end.get(), virtiofsd_ready_marker, deadline,
                                                    fmt::format("wait for {} to listen on {}", daemon_path.string(),
                                                                options_.daemon_socket.string()));
    if (!startup.matched) {
      const ExitStatus status = co_await daemon.wait(executor_);
      fail(Errc::unavailable, "{} exited with status {} before listening on {}: {}", daemon_path.string(),
           status.as_exit_code(), options_.daemon_socket.string(), detail::tail_lines(startup.text));
    }
    std::string startup_lines = std::move(startup.text);
    log_daemon_lines(startup_lines, true);
    daemon_ = std::move(daemon);
    daemon_log_ = std::make_shared<detail::DaemonLog>(executor_, output.read_end.release());
    asio::co_spawn(executor_, copy_daemon_log(daemon_log_), asio::detached);
    logger().info("virtiofsd pid {} serves {} on {}", daemon_.pid(), ro_dir().string(), options_.daemon_socket.string());
  } catch (...) {
    rethrow_with_context(fmt::format("start virtiofsd for sandbox {}", options_.sandbox_id));
  }
}

Task<void> SharedFs::stop() {
  if (daemon_.valid() && !daemon_.try_wait()) {
    daemon_.signal(SIGTERM);
    const UniqueFd exited = open_pidfd(daemon_.pid());
    const auto deadline = std::chrono::steady_clock::now() + options_.daemon_stop_grace;
    if (!co_await wait_fd_until(executor_, exited.get(), FdReadiness::readable, deadline)) {
      logger().warn("virtiofsd pid {} ignored SIGTERM for {} ms; killing it", daemon_.pid(),
                    options_.daemon_stop_grace.count());
      daemon_.signal(SIGKILL);
    }
  }
  // The reaped ChildProcess is kept: it answers concurrent and later waiters with the status.
  if (daemon_.valid()) {
    const ExitStatus status = co_await daemon_.wait(executor_);
    logger().info("virtiofsd pid {} exited with status {}", daemon_.pid(), status.as_exit_code());
  }
  if (daemon_log_) {
    // The pipe reports end of file once the daemon is gone; do not wait for a straggler that
    // inherited it.
    if (!co_await daemon_log_->finished.wait_for(options_.daemon_stop_grace)) daemon_log_->stream.close();
    daemon_log_.reset();
  }
  if (kind_ == ShareFsKind::virtio_fs) remove_if_present(options_.daemon_socket);
}

Task<ExitStatus> SharedFs::wait_daemon_exit() {
  if (!daemon_.valid()) fail(Errc::failed_precondition, "virtiofsd of sandbox {} is not running", options_.sandbox_id);
  co_return co_await daemon_.wait(executor_);
}

pid_t SharedFs::daemon_pid() noexcept {
  return daemon_.valid() && !daemon_.try_wait() ? daemon_.pid() : -1;
}

SharedPath SharedFs::share(const fs::path& source, const fs::path& relative, bool read_only) {
  return with_context(
      [&] { return fmt::format("share {} with the guest", source.string()); },
      [&] {
        if (kind_ == ShareFsKind::none) {
          fail(Errc::not_supported, "sharing a host path is not supported with shared_fs = none");
        }
        const fs::path normal = relative.lexically_normal();
        if (relative.empty() || normal.is_absolute() || normal.empty() || *normal.begin() == ".." || normal == ".") {
          fail(Errc::invalid_argument, "share name \"{}\" must be a relative path inside the shared directory",
               relative.string());
        }
        struct stat source_stat{};
        if (::stat(source.c_str(), &source_stat) != 0) fail_errno(errno, "stat {}", source.string());
        const bool is_directory = S_ISDIR(source_stat.st_mode);

        SharedPath shared;
        const fs::path base = rw_dir() / passthrough_dir;
        const fs::path target = base / normal;
        // Record every directory we create, innermost first, so unsharing removes exactly those.
        std::vector<fs::path> new_parents;
        for (fs::path parent = target.parent_path(); parent != base && !fs::exists(parent);
             parent = parent.parent_path()) {
          new_parents.push_back(parent);
        }
        fs::create_directories(target.parent_path());
        shared.created_ = new_parents;
        if (is_mount_point(target)) fail(Errc::already_exists, "{} is already shared", target.string());
        std::error_code exists_error;
        if (!fs::exists(fs::symlink_status(target, exists_error))) {
          if (is_directory) {
            fs::create_directory(target);
          } else {
            const UniqueFd created(::open(target.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
            if (!created) fail_errno(errno, "create mount point {}", target.string());
          }
          shared.created_.insert(shared.created_.begin(), target);
        }
        shared.mount_ = ScopedMount::bind(source, target, {.read_only = read_only, .recursive = true});
        shared.view_path_ = ro_dir() / passthrough_dir / normal;
        shared.guest_path_ = (fs::path(guest_shared_dir) / passthrough_dir / normal).string();
        shared.read_only_ = read_only;
        return shared;
      });
}

void SharedFs::cleanup() {
  with_context([&] { return fmt::format("clean up shared filesystem of sandbox {}", options_.sandbox_id); },
               [&] {
                 if (daemon_.valid() && !daemon_.try_wait()) {
                   daemon_.terminate_blocking(options_.daemon_stop_grace);
                 }
                 if (kind_ == ShareFsKind::virtio_fs) remove_if_present(options_.daemon_socket);
                 view_mount_ = {};
                 rw_mount_ = {};
                 if (!sandbox_dir_.empty()) unmount_and_remove(sandbox_dir_);
               });
}

}  // namespace kata::resource
