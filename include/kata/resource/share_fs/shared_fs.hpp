// The sandbox's shared filesystem on the host: the directory the guest mounts at
// /run/kata-containers/shared/containers/, the daemon that serves it, and the shares placed in it.
//
// Layout (upstream's, runtime-rs-facts §9.1):
//
//   <host_root>/<sid>/rw/                 where the shim places shares (a shared mount)
//   <host_root>/<sid>/rw/passthrough/...  container rootfs and volumes, one mount each
//   <host_root>/<sid>/ro/                 read-only view of rw (a slave of it): what the guest gets
//
// The view is read-only at its top, so the guest can neither create nor delete entries next to
// the shares; each share keeps its own mode (container rootfs writable, "ro" volumes read-only).
// Shares made after the daemon started still reach it through mount propagation.
//
// Kinds (config `shared_fs`): "virtio-fs" runs a vhost-user daemon (virtiofsd), "virtio-9p" needs
// no daemon (QEMU serves the directory itself), "none" shares nothing (confidential guests pull
// images themselves; volumes would have to be copied).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kata/agent.pb.h"
#include "kata/config/schema.hpp"
#include "kata/core/asio.hpp"
#include "kata/core/child_process.hpp"
#include "kata/core/mount.hpp"
#include "kata/hypervisor/vm.hpp"

namespace kata::resource {

namespace detail {
struct DaemonLog;
}  // namespace detail

/// Where every sandbox's shared directory lives on the host.
inline constexpr std::string_view host_shared_root = "/run/kata-containers/shared/sandboxes";
/// Where the guest agent mounts the shared directory (trailing slash as upstream sends it).
inline constexpr std::string_view guest_shared_dir = "/run/kata-containers/shared/containers/";
/// The subdirectory holding one mount per share, on both sides.
inline constexpr std::string_view passthrough_dir = "passthrough";
/// The virtio-fs / 9p tag the guest mounts.
inline constexpr std::string_view shared_fs_mount_tag = "kataShared";
/// Upstream's virtio_fs_queue_size default, used when the configuration says 0.
inline constexpr std::uint32_t default_virtio_fs_queue_size = 1024;
/// Upstream's msize_9p default (Go runtime DEFMSIZE9P).
inline constexpr std::uint32_t default_msize_9p = 8192;

enum class ShareFsKind { none, virtio_fs, virtio_9p };

[[nodiscard]] std::string_view to_string(ShareFsKind kind) noexcept;

/// The kind a configured `shared_fs` value selects: unset or "none" -> none, "" or "virtio-fs" ->
/// virtio_fs, "virtio-9p" -> virtio_9p. inline-virtio-fs (Dragonball's built-in server) and
/// virtio-fs-nydus are Error(not_supported); anything else Error(invalid_argument); both name
/// the value and the accepted ones.
[[nodiscard]] ShareFsKind share_fs_kind(const std::optional<std::string>& configured);

/// The daemon's socket where upstream puts it: <state_dir>/root/virtiofsd.sock.
[[nodiscard]] std::filesystem::path default_virtiofsd_socket(const std::filesystem::path& state_dir);

struct SharedFsOptions {
  std::string sandbox_id;
  /// The [hypervisor.X] shared-fs keys, as adjusted by the config loader.
  config::SharedFsInfo config;
  /// [hypervisor.X] disable_guest_selinux; false makes virtiofsd forward xattrs.
  bool disable_guest_selinux = true;
  /// Injectable for tests; production uses host_shared_root.
  std::filesystem::path host_root{host_shared_root};
  /// virtio-fs: the daemon's vhost-user socket (default_virtiofsd_socket of the sandbox state
  /// dir). Its directory is created if missing; the socket is removed again by stop().
  std::filesystem::path daemon_socket;
  /// 9p: the msize mount option given to the guest.
  std::uint32_t msize_9p = default_msize_9p;
  /// How long start() waits for the daemon to listen (and for the --help probe).
  std::chrono::milliseconds daemon_ready_timeout{10'000};
  /// How long stop() waits after SIGTERM before SIGKILL.
  std::chrono::milliseconds daemon_stop_grace{2'000};
};

/// One source shared into the sandbox's directory: owns the bind mount at
/// rw/passthrough/<relative> (its copy in the read-only view goes with it) and the mount point
/// it created. Destroying it unmounts and removes them; errors there are ignored because a
/// sandbox-wide SharedFs::cleanup() may already have removed everything.
class SharedPath {
 public:
  SharedPath() = default;
  SharedPath(SharedPath&&) noexcept = default;
  SharedPath& operator=(SharedPath&& other) noexcept;
  SharedPath(const SharedPath&) = delete;
  SharedPath& operator=(const SharedPath&) = delete;
  ~SharedPath();

  /// Where the guest finds it: /run/kata-containers/shared/containers/passthrough/<relative>.
  [[nodiscard]] const std::string& guest_path() const noexcept { return guest_path_; }
  /// The bind mount on the host, under rw/.
  [[nodiscard]] const std::filesystem::path& host_path() const noexcept { return mount_.target(); }
  /// The same share as the guest's daemon sees it, under ro/.
  [[nodiscard]] const std::filesystem::path& view_path() const noexcept { return view_path_; }
  [[nodiscard]] bool read_only() const noexcept { return read_only_; }
  [[nodiscard]] bool owns_share() const noexcept { return mount_.owns_mount(); }

  /// Unmounts and removes the mount point now, reporting failures.
  void unshare();

 private:
  friend class SharedFs;
  void release() noexcept;

  ScopedMount mount_;
  std::filesystem::path view_path_;
  std::string guest_path_;
  bool read_only_ = false;
  /// The mount point, then each directory created for it, innermost first.
  std::vector<std::filesystem::path> created_;
};

/// The shared filesystem of one sandbox.
///
/// Lifecycle: construct (directories and the read-only view), start() (virtio-fs: the daemon
/// listens) before the VMM starts with device() cold-plugged, storages() into CreateSandbox,
/// share() per rootfs/volume, stop() when the VM is gone, cleanup() last. The destructor does
/// whatever stop() and cleanup() have not, synchronously (SIGKILL for the daemon).
///
/// Thread-safety: used from the sandbox's executor only.
class SharedFs {
 public:
  /// Validates the kind and, for virtio-fs, the daemon (non-empty, one of
  /// valid_virtio_fs_daemon_paths when that list is set, a socket path that fits sockaddr_un);
  /// creates <host_root>/<sid>/{rw,ro,rw/passthrough} and mounts the read-only view. A directory
  /// left by a crashed shim for the same sandbox is unmounted and removed first. For kind none
  /// nothing is created. Throws with nothing left behind.
  SharedFs(Executor executor, SharedFsOptions options);
  SharedFs(const SharedFs&) = delete;
  SharedFs& operator=(const SharedFs&) = delete;
  ~SharedFs();

  [[nodiscard]] ShareFsKind kind() const noexcept { return kind_; }
  [[nodiscard]] bool sharing_supported() const noexcept { return kind_ != ShareFsKind::none; }
  [[nodiscard]] const std::filesystem::path& sandbox_dir() const noexcept { return sandbox_dir_; }
  [[nodiscard]] std::filesystem::path rw_dir() const { return sandbox_dir_ / "rw"; }
  [[nodiscard]] std::filesystem::path ro_dir() const { return sandbox_dir_ / "ro"; }

  /// The device the VMM must be started with; nullopt for kind none.
  [[nodiscard]] std::optional<hypervisor::ShareFsDevice> device() const;

  /// The Storage list for CreateSandbox that mounts the shared directory in the guest; empty for
  /// kind none.
  [[nodiscard]] std::vector<grpc::Storage> storages() const;

  /// virtio-fs: probes the daemon's flavour, spawns it and completes once it reported that its
  /// socket listens. Errors: the exec error; Error(unavailable) with the daemon's stderr when it
  /// exits first; Error(deadline_exceeded) after daemon_ready_timeout. On error the daemon is
  /// gone. Other kinds, or a daemon already running: completes at once.
  Task<void> start();

  /// Terminates the daemon (SIGTERM, SIGKILL after daemon_stop_grace), waits for it, and removes
  /// its socket. Idempotent; a no-op without a daemon.
  Task<void> stop();

  /// Completes when the daemon exits (for VM-death handling). Error(failed_precondition) when
  /// no daemon was started. The SharedFs must outlive the wait.
  Task<ExitStatus> wait_daemon_exit();

  /// The running daemon's pid (state.json's virtiofs_daemon_pid), or -1 once it exited (an
  /// exited daemon is reaped here).
  [[nodiscard]] pid_t daemon_pid() noexcept;

  /// Bind-mounts `source` (directory or file, symlinks followed, submounts included) at
  /// rw/passthrough/<relative>, creating the mount point and its parents. A read-only share is
  /// read-only in every view (see ScopedMount::bind). Errors: Error(not_supported) for kind
  /// none; not_found naming the source when it is missing; invalid_argument for a `relative`
  /// that is absolute or climbs out with ".."; already_exists when something is mounted there.
  [[nodiscard]] SharedPath share(const std::filesystem::path& source, const std::filesystem::path& relative,
                                 bool read_only);

  /// Stops the daemon if still running (blocking, SIGKILL), unmounts everything below the
  /// sandbox directory and removes it. Idempotent. Never removes anything while a mount remains
  /// below it (Error(failed_precondition) naming it instead).
  void cleanup();

 private:
  Executor executor_;
  SharedFsOptions options_;
  ShareFsKind kind_ = ShareFsKind::none;
  std::filesystem::path sandbox_dir_;
  ScopedMount rw_mount_;
  ScopedMount view_mount_;
  ChildProcess daemon_;
  std::shared_ptr<detail::DaemonLog> daemon_log_;
};

}  // namespace kata::resource
