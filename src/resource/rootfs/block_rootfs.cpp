#include "kata/resource/rootfs/block_rootfs.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "kata/core/error.hpp"

namespace kata::resource {
namespace {

constexpr std::string_view loop_option = "loop";
constexpr std::string_view virtual_volume_prefix = "io.katacontainers.volume=";

bool has_option(const runtime::RootfsMount& mount, std::string_view wanted) {
  return std::find(mount.options.begin(), mount.options.end(), wanted) != mount.options.end();
}

}  // namespace

std::string_view to_string(RootfsKind kind) noexcept {
  switch (kind) {
    case RootfsKind::bundle: return "bundle";
    case RootfsKind::virtual_volume: return "virtual volume";
    case RootfsKind::block: return "block";
    case RootfsKind::nydus: return "nydus";
    case RootfsKind::layer: return "layer";
    case RootfsKind::multiple: return "multiple layers";
  }
  return "unknown";
}

RootfsKind classify_rootfs(const std::vector<runtime::RootfsMount>& mounts) {
  if (mounts.empty()) return RootfsKind::bundle;
  if (mounts.size() > 1) return RootfsKind::multiple;
  const runtime::RootfsMount& mount = mounts.front();
  if (std::any_of(mount.options.begin(), mount.options.end(),
                  [](const std::string& option) { return option.starts_with(virtual_volume_prefix); })) {
    return RootfsKind::virtual_volume;
  }
  struct stat info{};
  if (!mount.source.empty() && ::stat(mount.source.c_str(), &info) == 0) {
    if (S_ISBLK(info.st_mode)) return RootfsKind::block;
    if (S_ISREG(info.st_mode) && has_option(mount, loop_option)) return RootfsKind::block;
  }
  if (mount.type == "fuse.nydus-overlayfs") return RootfsKind::nydus;
  return RootfsKind::layer;
}

BlockRootfs block_rootfs(const std::string& container_id, const runtime::RootfsMount& mount) {
  if (mount.type.empty()) {
    fail(Errc::invalid_argument, "rootfs of container {}: block device {} has no filesystem type", container_id,
         mount.source);
  }
  static constexpr std::string_view not_for_the_filesystem[] = {
      "loop", "bind", "rbind", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"};
  BlockRootfs rootfs;
  rootfs.device.device_id = shared_volume_name(container_id, "rootfs");
  rootfs.device.host_path = mount.source;
  rootfs.device.read_only = has_option(mount, "ro");
  rootfs.device.description = fmt::format("rootfs (source {})", mount.source);
  rootfs.storage.set_driver("blk");
  rootfs.storage.set_fstype(mount.type);
  rootfs.storage.set_mount_point((std::filesystem::path(guest_block_dir) / rootfs.device.device_id).string());
  for (const auto& option : mount.options) {
    const auto skip = std::find(std::begin(not_for_the_filesystem), std::end(not_for_the_filesystem), option);
    if (skip == std::end(not_for_the_filesystem)) rootfs.storage.add_options(option);
  }
  if (mount.type == "xfs" && !has_option(mount, "nouuid")) rootfs.storage.add_options("nouuid");
  return rootfs;
}

}  // namespace kata::resource
