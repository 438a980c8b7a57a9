// Command lines for the two virtiofsd implementations.
//
// Upstream runtime-rs only knew the Rust virtiofsd's flags and could not start QEMU's C one
// (kata #5572, #5655). Both are in use: QEMU up to 7.2 ships the C daemon (Debian 12:
// /usr/lib/qemu/virtiofsd), newer distributions the Rust one. The flavour is read from the
// daemon's own --help, and the command line is built for it.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "kata/core/asio.hpp"

namespace kata::resource {

enum class VirtiofsdFlavor {
  /// QEMU's C virtiofsd (tools/virtiofsd, removed from QEMU in 8.0):
  /// `--socket-path=PATH -o source=DIR -o cache=none|auto|always`.
  qemu_c,
  /// The Rust virtiofsd (gitlab.com/virtio-fs/virtiofsd):
  /// `--socket-path PATH --shared-dir DIR --cache never|auto|always|metadata`.
  rust,
};

[[nodiscard]] std::string_view to_string(VirtiofsdFlavor flavor) noexcept;

/// Decides the flavour from the text `virtiofsd --help` printed: one that documents
/// `--shared-dir` is the Rust daemon, one that documents `-o source=` the C daemon. Throws
/// Error(failed_precondition) naming what was looked for when it is neither.
[[nodiscard]] VirtiofsdFlavor virtiofsd_flavor_from_help(std::string_view help_text);

/// Runs `<daemon> --help` and applies virtiofsd_flavor_from_help. The probe is killed if it has
/// not finished within `timeout` (Error(deadline_exceeded)); a daemon that cannot be executed
/// gives the exec error.
[[nodiscard]] Task<VirtiofsdFlavor> detect_virtiofsd_flavor(Executor executor, std::filesystem::path daemon,
                                                            std::chrono::milliseconds timeout);

struct VirtiofsdSettings {
  std::filesystem::path socket;      ///< the vhost-user socket the daemon creates and QEMU connects to
  std::filesystem::path shared_dir;  ///< the tree it serves (the sandbox's read-only view)
  /// virtio_fs_cache as configured: never, auto, always (metadata: Rust only). The C daemon
  /// calls "never" "none"; the translation is done here.
  std::string cache = "never";
  /// virtio_fs_extra_args, appended as given. Both daemons accept `--thread-pool-size=N` and
  /// the C-style `-o announce_submounts` the shipped configurations use.
  std::vector<std::string> extra_args;
  /// Forward extended attributes (needed when the guest enforces SELinux, i.e.
  /// disable_guest_selinux = false).
  bool xattr = false;
};

/// The daemon's arguments (without argv[0]). Throws Error(invalid_argument) for a cache mode the
/// flavour does not have, naming the accepted ones.
[[nodiscard]] std::vector<std::string> virtiofsd_arguments(VirtiofsdFlavor flavor, const VirtiofsdSettings& settings);

/// The line both daemons print on stderr once the socket listens.
inline constexpr std::string_view virtiofsd_ready_marker = "Waiting for vhost-user socket connection";

}  // namespace kata::resource
