// A container's OCI mounts, prepared for the guest (upstream's volume handlers,
// runtime-rs-facts §9.3), in upstream's order of checks:
//
//   /dev/shm (not ephemeral)  -> bind of the sandbox's shm, /run/kata-containers/sandbox/shm, a
//                                tmpfs the agent mounts from sandbox_shm_storage()
//   type "ephemeral", or a    -> a tmpfs made by the agent (Storage driver "ephemeral") under
//   Kubernetes memory            /run/kata-containers/sandbox/ephemeral/, bound into the container
//   emptyDir (a bind of .../kubernetes.io~empty-dir/<name> on a tmpfs)
//   type "local", or a disk   -> a directory made by the agent (driver "local") under
//   emptyDir when the sandbox    /run/kata-containers/sandbox/local/: guest memory, never the host
//   shares no filesystem
//   bind of a block device    -> the device hotplugged (virtio-blk), mounted by the agent (driver
//                                "blk", fstype ext4) under /run/kata-containers/sandbox/block/
//   direct volume: a bind (or -> the device named by the volume's mountInfo.json (upstream's
//   type directvol) whose        direct-volume format) hotplugged and mounted like a block volume
//   source has a directory under /run/kata-containers/shared/direct-volumes/<base64url(source)>/
//   type "bind" (not /dev/*   -> the source bind-mounted into the shared directory under a
//   devices, not /proc, /sys)    generated name, the container binding the guest's path
//   anything else             -> unchanged (proc, tmpfs, devpts, sysfs, mqueue, cgroup, ...)
//
// Read-only ("ro") volumes stay read-only at every layer: the host share, the block device and
// the guest's mount of it, and the container's bind (the agent remounts it MS_RDONLY).
//
// Shares are counted per (source, mode) within a sandbox: two containers binding the same host
// directory read-only get the same guest path, and it is unshared when the last of them goes.
// Block devices are attached by the sandbox (an asynchronous hotplug): prepare() says which, and
// the sandbox fills in each Storage's source with the device's guest PCI path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kata/agent.pb.h"
#include "kata/oci/spec.hpp"
#include "kata/resource/share_fs/shared_fs.hpp"

namespace kata::resource {

/// The sandbox's shared memory in the guest.
inline constexpr std::string_view guest_shm_dir = "/run/kata-containers/sandbox/shm";
/// Where ephemeral volumes live in the guest.
inline constexpr std::string_view guest_ephemeral_dir = "/run/kata-containers/sandbox/ephemeral";
/// Where guest-local ("local") volumes live in the guest.
inline constexpr std::string_view guest_local_dir = "/run/kata-containers/sandbox/local";
/// Where the agent mounts block and direct volumes in the guest (one directory per device).
inline constexpr std::string_view guest_block_dir = "/run/kata-containers/sandbox/block";
/// Where direct-volume metadata lives on the host (upstream's DEFAULT_KATA_DIRECT_VOLUME_ROOT_PATH).
inline constexpr std::string_view direct_volume_root = "/run/kata-containers/shared/direct-volumes";
/// The metadata file in a direct volume's directory.
inline constexpr std::string_view direct_volume_info_file = "mountInfo.json";
/// The filesystem a plain block volume is mounted with (upstream's DEFAULT_VOLUME_FS_TYPE).
inline constexpr std::string_view default_block_volume_fstype = "ext4";
/// Upstream's DEFAULT_SHM_SIZE (64 MiB), used when the spec does not size /dev/shm.
inline constexpr std::uint64_t default_shm_size = 64ULL * 1024 * 1024;

/// The size of the sandbox's /dev/shm, from the last /dev/shm mount of the spec: a bind from
/// another host path (the CRI's pod shm) gives that filesystem's size (statfs, as upstream); a
/// tmpfs gives its "size=" option (bytes, or with a k/m/g suffix as tmpfs(5) reads it; ctr's
/// default spec says size=65536k); otherwise default_shm_size. Errors: the statfs error naming
/// the source; invalid_argument naming a size option that is not a number with k/m/g.
[[nodiscard]] std::uint64_t sandbox_shm_size(const std::vector<oci::Mount>& mounts);

/// The Storage that makes the sandbox's shm in the guest, for CreateSandbox: an "ephemeral"
/// tmpfs at guest_shm_dir with noexec,nosuid,nodev,mode=1777,size=<bytes>.
[[nodiscard]] grpc::Storage sandbox_shm_storage(std::uint64_t size_bytes);

enum class VolumeKind { shm, ephemeral, local, block, direct, shared_bind, unchanged };

[[nodiscard]] std::string_view to_string(VolumeKind kind) noexcept;

/// What classification depends on besides the mount.
struct VolumeEnvironment {
  /// The sandbox shares a filesystem with the guest (shared_fs is not "none").
  bool fs_sharing = true;
  /// Root of the direct-volume metadata (direct_volume_root; injectable for tests).
  std::filesystem::path direct_volume_root{resource::direct_volume_root};
};

/// Which handler a mount gets (the table above). A bind whose destination is under /dev counts
/// as a device (unchanged) unless its source is a regular file such as a termination log.
/// Looks at the host (stat, statfs of the source; the direct-volume directory) but never fails:
/// a source that cannot be examined is classified by its type alone, and its error is reported
/// when the volume is prepared.
[[nodiscard]] VolumeKind classify_volume(const oci::Mount& mount, const VolumeEnvironment& environment = {});

/// A direct volume's mountInfo.json (upstream's DirectVolumeMountInfo): {"volume-type",
/// "device", "fstype", "metadata", "options"}.
struct DirectVolumeInfo {
  std::string volume_type;  ///< "directvol" (raw block) is attached; spdkvol, spoolvol, vfiovol are not
  std::string device;       ///< a block device or a file (an image) on the host
  std::string fstype;
  std::map<std::string, std::string> metadata;
  std::vector<std::string> options;
};

/// The directory of direct volume `volume_path`: <root>/<base64url(volume_path), padded>, as
/// upstream's kata-types join_path (kata-ctl direct-volume add writes there).
[[nodiscard]] std::filesystem::path direct_volume_dir(const std::filesystem::path& root, std::string_view volume_path);

/// Reads <direct_volume_dir>/mountInfo.json. Errors: not_found naming the file; invalid_argument
/// naming the file for JSON that is not the format above (a missing "device" or "volume-type").
[[nodiscard]] DirectVolumeInfo read_direct_volume_info(const std::filesystem::path& root, std::string_view volume_path);

/// RFC 4648 §5 base64 (URL and file name safe alphabet) with padding.
[[nodiscard]] std::string base64url_encode(std::string_view bytes);

/// A block device the sandbox must attach for a container (block and direct volumes).
struct BlockVolumeDevice {
  /// Unique within the sandbox; the hypervisor's device id.
  std::string device_id;
  /// A block device or a regular file on the host.
  std::filesystem::path host_path;
  bool read_only = false;
  /// Which of ContainerVolumes::storages mounts it; its source is set to the guest PCI path.
  std::size_t storage_index = 0;
  /// What it is for, in errors: "volume /data (source /dev/loop0)", "rootfs (source ...)".
  std::string description;
};

/// A container's mounts ready for CreateContainer. Holding it keeps the shares alive; dropping
/// it releases this container's references.
struct ContainerVolumes {
  /// The spec's mounts in their order, sources rewritten to guest paths where needed.
  std::vector<oci::Mount> mounts;
  /// For CreateContainerRequest.storages.
  std::vector<grpc::Storage> storages;
  /// This container's references to shares in the shared directory.
  std::vector<std::shared_ptr<const SharedPath>> shares;
  /// Devices to attach before CreateContainer, detached after the container is removed.
  std::vector<BlockVolumeDevice> block_devices;
};

/// The bind volumes of one sandbox.
///
/// Thread-safety: used from the sandbox's executor only. The SharedFs must outlive it; the
/// shares handed out may outlive both (SharedFs::cleanup() removes what they still hold).
class VolumeManager {
 public:
  explicit VolumeManager(SharedFs& shared_fs, std::filesystem::path direct_volumes = resource::direct_volume_root)
      : shared_fs_(shared_fs), direct_volumes_(std::move(direct_volumes)) {}
  VolumeManager(const VolumeManager&) = delete;
  VolumeManager& operator=(const VolumeManager&) = delete;

  /// Prepares `mounts` of container `container_id`. Errors name the container, the mount's
  /// destination and its source: not_found for a missing source of a bind, ephemeral or local
  /// volume, or a missing device of a direct volume; not_supported for a bind when the sandbox
  /// shares no filesystem (copying files into the guest is not implemented) and for direct
  /// volumes other than directvol; invalid_argument for a malformed mountInfo.json; the share's
  /// mount error. On error no new share is left (nothing is attached here).
  [[nodiscard]] ContainerVolumes prepare(const std::string& container_id, const std::vector<oci::Mount>& mounts);

  /// Number of distinct shares alive (for tests and the management API).
  [[nodiscard]] std::size_t share_count() const;

 private:
  std::shared_ptr<const SharedPath> share(const std::string& container_id, const oci::Mount& mount);

  SharedFs& shared_fs_;
  std::filesystem::path direct_volumes_;
  /// (canonical source, read-only) -> the share, while any container holds it.
  std::map<std::pair<std::string, bool>, std::weak_ptr<const SharedPath>> shares_;
};

/// The name of a bind volume in the shared directory: the first 10 characters of the container
/// id, 8 random hex digits and the source's file name ("0123456789-1a2b3c4d-config").
[[nodiscard]] std::string shared_volume_name(std::string_view container_id, const std::filesystem::path& source);

}  // namespace kata::resource
