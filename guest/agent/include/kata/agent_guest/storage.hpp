// Storages (agent.proto Storage) and the guest-wide settings of CreateSandbox.
//
// A storage is what the host asks the guest to mount before containers use it: the shared
// filesystem (driver "9p" or "virtio-fs", source = the mount tag "kataShared"), the sandbox's
// /dev/shm ("ephemeral", a tmpfs), or a plain directory ("local"). Each mounted storage is owned
// by a StorageMount, which unmounts it when destroyed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kata/agent.pb.h"
#include "kata/core/mount.hpp"

namespace kata::agent_guest {

/// Drivers mount_storage accepts, for GetGuestDetails (agent_details.storage_handlers).
inline constexpr const char* supported_storage_drivers[] = {"9p", "virtio-fs", "ephemeral", "local"};

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
/// Throws invalid_argument for a missing mount_point or source, not_supported naming the driver
/// for a driver this agent has no handler for, or the mount(2) error with source, target and type.
[[nodiscard]] StorageMount mount_storage(const grpc::Storage& storage);

/// Writes `dns` to `resolv_conf` (replacing it): each entry is a resolv.conf line ("nameserver
/// 10.0.0.1", "search example.com"); a bare address is taken as a nameserver.
void write_resolv_conf(const std::vector<std::string>& dns, const std::filesystem::path& resolv_conf = "/etc/resolv.conf");

}  // namespace kata::agent_guest
