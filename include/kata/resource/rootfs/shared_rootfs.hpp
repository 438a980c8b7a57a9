// A container's root filesystem, shared with the guest through the sandbox's shared directory
// (upstream's ShareFsRootfs, runtime-rs-facts §9.2).
//
// containerd hands CreateTask the rootfs as mounts it did not perform: the overlayfs
// snapshotter gives one `overlay` mount, the native one a `bind` mount, and no mount at all means
// the bundle's rootfs directory is already populated. As containerd's runc shim does, the layer
// is mounted at <bundle>/rootfs; that directory is then bind-mounted to
// rw/passthrough/<cid>/rootfs, which the guest sees at
// /run/kata-containers/shared/containers/passthrough/<cid>/rootfs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kata/core/mount.hpp"
#include "kata/resource/share_fs/shared_fs.hpp"
#include "kata/runtime/task_runtime.hpp"

namespace kata::resource {

/// Owns what share_rootfs set up: the layer mount at <bundle>/rootfs (when a layer was given)
/// and the share. Destroying it unshares, then unmounts the layer; the guest must have
/// unmounted the rootfs first (the container is gone), since it stays busy otherwise.
class SharedRootfs {
 public:
  SharedRootfs() = default;
  SharedRootfs(SharedRootfs&&) noexcept = default;
  SharedRootfs& operator=(SharedRootfs&&) noexcept = default;

  /// The container's root.path for the agent.
  [[nodiscard]] const std::string& guest_path() const noexcept { return share_.guest_path(); }
  /// The host directory that was shared (<bundle>/rootfs, or the spec's root.path).
  [[nodiscard]] const std::filesystem::path& host_rootfs() const noexcept { return host_rootfs_; }
  [[nodiscard]] const SharedPath& share() const noexcept { return share_; }
  /// Whether the layer was mounted here (false when the bundle's rootfs was used as it is).
  [[nodiscard]] bool mounted_layer() const noexcept { return layer_.owns_mount(); }

  /// Unshares and unmounts now, reporting failures.
  void release();

 private:
  friend SharedRootfs share_rootfs(SharedFs&, const std::string&, const std::filesystem::path&,
                                   const std::vector<runtime::RootfsMount>&, const std::filesystem::path&);
  // Declared first so that it is destroyed last: the share is a bind of this mount.
  ScopedMount layer_;
  SharedPath share_;
  std::filesystem::path host_rootfs_;
};

/// Shares container `container_id`'s rootfs. `root_path` is the spec's root.path (relative to
/// the bundle unless absolute); it is used as it is when `mounts` is empty. One mount is mounted
/// at <bundle>/rootfs first (created if missing) with its type and options.
///
/// Errors, each naming the container: Error(not_supported) when the sandbox shares no
/// filesystem (shared_fs = none: guest-pulled and block-device rootfs are not implemented here),
/// for more than one mount (naming the count; multi-layer EROFS is not implemented), and for
/// nydus (fuse.nydus-overlayfs) and kata virtual-volume layers; the mount(2) error naming
/// source, target, type and options when the layer cannot be mounted. Nothing is left mounted
/// when it throws.
[[nodiscard]] SharedRootfs share_rootfs(SharedFs& shared_fs, const std::string& container_id,
                                        const std::filesystem::path& bundle,
                                        const std::vector<runtime::RootfsMount>& mounts,
                                        const std::filesystem::path& root_path = "rootfs");

}  // namespace kata::resource
