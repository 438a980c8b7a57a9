// RAII ownership of a mount point.
//
// The shim mounts container rootfs layers, bind-mounts them into the shared directory the guest
// sees, and bind-mounts volumes there too. Upstream tied the unmounts to explicit cleanup calls,
// so any error between mount and cleanup left mounts behind that blocked the next sandbox with the
// same id (kata #11496). Here every mount the shim makes is owned by exactly one ScopedMount, and
// destroying it unmounts (lazily, MNT_DETACH, so a busy mount never makes teardown hang).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace kata {

/// What mount(2) needs, from fstab-style option strings.
struct MountFlags {
  unsigned long flags = 0;        ///< MS_* flags given to mount(2)
  unsigned long propagation = 0;  ///< MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), set afterwards
  std::string data;               ///< the remaining options, comma-separated, for the filesystem
  friend bool operator==(const MountFlags&, const MountFlags&) = default;
};

/// Parses options the way containerd's mount package does: "ro", "nosuid", "bind", "rbind",
/// "noatime", ... become flags ("rw", "suid", "dev", "exec", "atime" clear theirs), "defaults" is
/// ignored, "private"/"rslave"/... become the propagation, everything else ("lowerdir=...",
/// "size=64m", "mode=1777") goes to `data` in order.
[[nodiscard]] MountFlags parse_mount_options(const std::vector<std::string>& options);

/// "MS_RDONLY|MS_BIND|MS_REC" (known flags by name, any rest in hex); "0" for none. For errors.
[[nodiscard]] std::string mount_flags_to_string(unsigned long flags);

struct BindOptions {
  bool read_only = false;
  /// MS_REC: mounts below the source come along (a volume with submounts stays whole).
  bool recursive = true;
};

/// Owns one mount point and unmounts it (umount2 with MNT_DETACH) when destroyed. Move-only; a
/// moved-from or default-constructed ScopedMount owns nothing.
///
/// Every error is a kata::Error whose code comes from errno and whose message names the source,
/// the target, the filesystem type and the flags, e.g.
///   "mount /srv/lower on /run/b/rootfs (type overlay, flags MS_NODEV, data lowerdir=/x): No such file or directory"
///
/// Thread-safety: a ScopedMount is used by one thread at a time; distinct objects are independent.
class ScopedMount {
 public:
  ScopedMount() noexcept = default;
  ScopedMount(ScopedMount&& other) noexcept;
  ScopedMount& operator=(ScopedMount&& other) noexcept;
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  /// Unmounts with MNT_DETACH. Errors are ignored: the mount may already be gone (a sandbox-wide
  /// cleanup unmounted everything below the shared directory), and nobody could act on them.
  ~ScopedMount();

  /// mount(2). For a bind mount with per-mount flags (MS_RDONLY, MS_NOSUID, ...) the kernel
  /// ignores those flags on the first call, so a remount follows, as containerd does; if it fails
  /// the mount is undone before the error is thrown. Nothing is mounted when this throws.
  static ScopedMount mount(const std::filesystem::path& source, const std::filesystem::path& target,
                           const std::string& fstype, unsigned long flags, const std::string& data = {});

  /// Parses `options` (parse_mount_options), mounts, then applies the propagation if any.
  static ScopedMount mount(const std::filesystem::path& source, const std::filesystem::path& target,
                           const std::string& fstype, const std::vector<std::string>& options);

  /// Bind-mounts `source` (file or directory) on `target` (which must exist, of the same kind).
  /// A read-only bind is made read-only before it is attached (open_tree, mount_setattr,
  /// move_mount), so every copy that mount propagation creates, in any mount namespace, is
  /// read-only from the start. A later remount would reach only this one copy.
  static ScopedMount bind(const std::filesystem::path& source, const std::filesystem::path& target,
                          BindOptions options = {});

  /// Takes ownership of a mount that already exists at `target` (for example the copy that
  /// propagation created), so it is unmounted like one made here.
  static ScopedMount adopt(const std::filesystem::path& target);

  /// Makes the (bind) mount read-only or writable again, keeping nosuid, nodev, noexec and the
  /// atime flags it has. Affects this mount only: remounts never propagate.
  void remount_read_only(bool read_only);

  /// Changes the propagation type: MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE, optionally
  /// with MS_REC.
  void set_propagation(unsigned long propagation);

  /// Unmounts now (MNT_DETACH) and reports failure; afterwards this object owns nothing, whether
  /// or not it threw.
  void unmount();

  /// Stops owning the mount without unmounting it; returns its target.
  std::filesystem::path release() noexcept;

  [[nodiscard]] const std::filesystem::path& target() const noexcept { return target_; }
  [[nodiscard]] bool owns_mount() const noexcept { return !target_.empty(); }
  [[nodiscard]] explicit operator bool() const noexcept { return owns_mount(); }

 private:
  explicit ScopedMount(std::filesystem::path target) noexcept : target_(std::move(target)) {}
  void reset() noexcept;

  std::filesystem::path target_;
};

/// Mount points at or below `path` in this process's mount namespace (from /proc/self/mountinfo),
/// deepest first, so unmounting in this order never hits a busy parent. A path stacked with
/// several mounts appears once per mount. `path` is made absolute and its symlinks resolved
/// as far as it exists.
[[nodiscard]] std::vector<std::filesystem::path> mount_points_under(const std::filesystem::path& path);

/// Whether `path` itself is a mount point.
[[nodiscard]] bool is_mount_point(const std::filesystem::path& path);

/// Lazily unmounts every mount at or below `path`, deepest first; returns how many were
/// unmounted. Throws (naming the mount point) only if one could not be unmounted.
std::size_t unmount_all_under(const std::filesystem::path& path);

}  // namespace kata
