// A container rootfs that containerd hands over as a block device (upstream's BlockRootfs,
// runtime-rs-facts §9.2): the devmapper snapshotter's thin device, or an image file with the
// "loop" option. Instead of being mounted on the host and shared, the device is attached to the
// VM (like a block volume, volumes.hpp) and the agent mounts it as the container's root.
#pragma once

#include <string>
#include <vector>

#include "kata/agent.pb.h"
#include "kata/resource/volume/volumes.hpp"
#include "kata/runtime/task_runtime.hpp"

namespace kata::resource {

/// How containerd's rootfs mounts reach the guest, in upstream's order of checks
/// (rootfs/mod.rs handler_rootfs).
enum class RootfsKind {
  bundle,          ///< no mount: <bundle>/rootfs (or root.path) is shared as it is
  virtual_volume,  ///< an "io.katacontainers.volume=" option (guest pull): not implemented
  block,           ///< a block device, or a regular file with the "loop" option: attached
  nydus,           ///< fuse.nydus-overlayfs: not implemented
  layer,           ///< one other mount (overlay, bind): mounted on the host and shared
  multiple,        ///< more than one mount (upstream: multi-layer EROFS): not implemented
};

[[nodiscard]] std::string_view to_string(RootfsKind kind) noexcept;

/// Which kind `mounts` is. Looks at the host (stat of a single mount's source) but never fails:
/// a source that cannot be examined is not a block device.
[[nodiscard]] RootfsKind classify_rootfs(const std::vector<runtime::RootfsMount>& mounts);

/// What the sandbox needs for a block rootfs: the device to attach and the Storage that mounts
/// it at the container's root.path in the guest (the device's directory under guest_block_dir).
struct BlockRootfs {
  BlockVolumeDevice device;  ///< storage_index is 0: the caller places the storage
  grpc::Storage storage;     ///< driver blk, source empty until attached, fstype the mount's type
};

/// The block rootfs of container `container_id` from containerd's one `mount` (classified
/// block). Options are the mount's, without "loop" and bind/propagation words; an xfs rootfs
/// gets "nouuid" (every snapshot of one image has the same UUID), as upstream. Errors:
/// invalid_argument naming the container and the source when the mount has no type.
[[nodiscard]] BlockRootfs block_rootfs(const std::string& container_id, const runtime::RootfsMount& mount);

}  // namespace kata::resource
