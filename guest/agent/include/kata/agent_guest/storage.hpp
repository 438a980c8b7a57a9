// Storages (agent.proto Storage) and the guest-wide settings of CreateSandbox.
//
// A storage is what the host asks the guest to mount before containers use it: the shared
// filesystem (driver "9p" or "virtio-fs", source = the mount tag "kataShared"), the sandbox's
// /dev/shm and ephemeral volumes ("ephemeral", a tmpfs), a plain directory ("local"), or a
// hotplugged virtio-blk device ("blk", source = its PCI path, "1e/00"). Each mounted storage is
// owned by a StorageMount, which unmounts it when destroyed.
//
// An "fsgid=<gid>" option (a pod's fsGroup, from the host) is not a mount option: the mounted
// directory is given to that group (setgid, group rwx) instead.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kata/agent.pb.h"
#include "kata/core/mount.hpp"

namespace kata::agent_guest {

/// Drivers mount_storage accepts, for GetGuestDetails (agent_details.storage_handlers).
inline constexpr const char* supported_storage_drivers[] = {"9p", "virtio-fs", "ephemeral", "local", "blk"};

/// Where mount_storage finds devices (injectable for tests).
struct StorageEnvironment {
  std::filesystem::path sysfs = "/sys";
  std::filesystem::path dev = "/dev";
  /// How long a "blk" storage waits for its hotplugged device to appear.
  std::chrono::milliseconds device_timeout{20'000};
};

class StorageMount {
 public:
  StorageMount() = default;
  StorageMount(std::filesystem::path mount_point, ScopedMount mount)
      : mount_point_(std::move(mount_point)), mount_(std::move(mount)) {}

  [[nodiscard]] const std::filesystem::path& mount_point() const noexcept { return mount_point_; }

 private:
  std::filesystem::path mount_point_;
  ScopedMount mount_;  ///< empty for a "local" directory
};

/// Creates mount_point (and parents) and mounts the storage there. Options are OCI mount words
/// (a word may itself carry comma-separated filesystem data, as the host's 9p options do).
/// "blk" waits up to device_timeout for the device at the PCI path and mounts it with fstype.
/// Throws invalid_argument for a missing mount_point or source, a malformed PCI path or fsgid;
/// not_supported naming the driver for a driver this agent has no handler for;
/// deadline_exceeded naming the PCI path when no block device appears there; or the mount(2)
/// error with source, target and type.
[[nodiscard]] StorageMount mount_storage(const grpc::Storage& storage, const StorageEnvironment& environment = {});

/// The block device node (<dev>/vdX) of the virtio-blk device at `pci_path`: slot numbers in
/// hex, one per hop from the root bus ("1e/00": the device in slot 00 behind the port in slot 1e,
/// as upstream's PciPath), function 0 each. nullopt while the device or its disk is not (yet) in
/// sysfs. Throws invalid_argument for a malformed path.
[[nodiscard]] std::optional<std::filesystem::path> block_device_at(std::string_view pci_path,
                                                                   const StorageEnvironment& environment = {});

/// Writes `dns` to `resolv_conf` (replacing it): each entry is a resolv.conf line ("nameserver
/// 10.0.0.1", "search example.com"); a bare address is taken as a nameserver.
void write_resolv_conf(const std::vector<std::string>& dns, const std::filesystem::path& resolv_conf = "/etc/resolv.conf");

}  // namespace kata::agent_guest
