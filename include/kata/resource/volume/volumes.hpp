// A container's OCI mounts, prepared for the guest (upstream's volume handlers,
// runtime-rs-facts §9.3), in upstream's order of checks:
//
//   /dev/shm (not ephemeral)  -> bind of the sandbox's shm, /run/kata-containers/sandbox/shm, a
//                                tmpfs the agent mounts from sandbox_shm_storage()
//   type "ephemeral"          -> a tmpfs made by the agent (Storage driver "ephemeral") under
//                                /run/kata-containers/sandbox/ephemeral/, bound into the container
//   type "bind" (not /dev/*   -> the source bind-mounted into the shared directory under a
//   devices, not /proc, /sys)    generated name, the container binding the guest's path
//   anything else             -> unchanged (proc, tmpfs, devpts, sysfs, mqueue, cgroup, ...)
//
// Shares are counted per (source, mode) within a sandbox: two containers binding the same host
// directory read-only get the same guest path, and it is unshared when the last of them goes.
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
/// Upstream's DEFAULT_SHM_SIZE (64 MiB), used when the spec does not bind a sized /dev/shm.
inline constexpr std::uint64_t default_shm_size = 64ULL * 1024 * 1024;

/// The size of the sandbox's /dev/shm: when the spec binds /dev/shm from another host path (the
/// CRI's pod shm), that filesystem's size (statfs), otherwise default_shm_size. Errors: the
/// statfs error naming the source.
[[nodiscard]] std::uint64_t sandbox_shm_size(const std::vector<oci::Mount>& mounts);

/// The Storage that makes the sandbox's shm in the guest, for CreateSandbox: an "ephemeral"
/// tmpfs at guest_shm_dir with noexec,nosuid,nodev,mode=1777,size=<bytes>.
[[nodiscard]] grpc::Storage sandbox_shm_storage(std::uint64_t size_bytes);

enum class VolumeKind { shm, ephemeral, shared_bind, unchanged };

/// Which handler a mount gets (the table above). A bind whose destination is under /dev counts
/// as a device (unchanged) unless its source is a regular file such as a termination log.
[[nodiscard]] VolumeKind classify_volume(const oci::Mount& mount);

/// A container's mounts ready for CreateContainer. Holding it keeps the shares alive; dropping
/// it releases this container's references.
struct ContainerVolumes {
  /// The spec's mounts in their order, sources rewritten to guest paths where needed.
  std::vector<oci::Mount> mounts;
  /// For CreateContainerRequest.storages.
  std::vector<grpc::Storage> storages;
  /// This container's references to shares in the shared directory.
  std::vector<std::shared_ptr<const SharedPath>> shares;
};

/// The bind volumes of one sandbox.
///
/// Thread-safety: used from the sandbox's executor only. The SharedFs must outlive it; the
/// shares handed out may outlive both (SharedFs::cleanup() removes what they still hold).
class VolumeManager {
 public:
  explicit VolumeManager(SharedFs& shared_fs) : shared_fs_(shared_fs) {}
  VolumeManager(const VolumeManager&) = delete;
  VolumeManager& operator=(const VolumeManager&) = delete;

  /// Prepares `mounts` of container `container_id`. Errors name the mount's destination and
  /// source: not_found for a missing source of a bind or ephemeral volume; not_supported for a
  /// bind when the sandbox shares no filesystem (copying files into the guest is not
  /// implemented); the share's mount error. On error no new share is left.
  [[nodiscard]] ContainerVolumes prepare(const std::string& container_id, const std::vector<oci::Mount>& mounts);

  /// Number of distinct shares alive (for tests and the management API).
  [[nodiscard]] std::size_t share_count() const;

 private:
  std::shared_ptr<const SharedPath> share(const std::string& container_id, const oci::Mount& mount);

  SharedFs& shared_fs_;
  /// (canonical source, read-only) -> the share, while any container holds it.
  std::map<std::pair<std::string, bool>, std::weak_ptr<const SharedPath>> shares_;
};

/// The name of a bind volume in the shared directory: the first 10 characters of the container
/// id, 8 random hex digits and the source's file name ("0123456789-1a2b3c4d-config").
[[nodiscard]] std::string shared_volume_name(std::string_view container_id, const std::filesystem::path& source);

}  // namespace kata::resource
