#include "kata/resource/rootfs/shared_rootfs.hpp"

#include <algorithm>

#include "kata/core/error.hpp"

namespace kata::resource {
namespace {

namespace fs = std::filesystem;

// The option by which containerd marks a kata virtual volume (guest-pulled image).
constexpr std::string_view virtual_volume_option = "io.katacontainers.volume=";

void check_supported_layer(const runtime::RootfsMount& layer) {
  if (layer.type == "fuse.nydus-overlayfs") {
    fail(Errc::not_supported, "nydus rootfs (type fuse.nydus-overlayfs) is not supported");
  }
  const bool virtual_volume = std::any_of(layer.options.begin(), layer.options.end(), [](const std::string& option) {
    return option.starts_with(virtual_volume_option);
  });
  if (virtual_volume) fail(Errc::not_supported, "kata virtual volumes (guest-pulled images) are not supported");
}

}  // namespace

void SharedRootfs::release() {
  share_.unshare();
  layer_.unmount();
}

SharedRootfs share_rootfs(SharedFs& shared_fs, const std::string& container_id, const fs::path& bundle,
                          const std::vector<runtime::RootfsMount>& mounts, const fs::path& root_path) {
  return with_context(
      [&] { return fmt::format("share rootfs of container {}", container_id); },
      [&] {
        if (!shared_fs.sharing_supported()) {
          fail(Errc::not_supported,
               "the sandbox shares no filesystem (shared_fs = none) and guest-pulled or block-device rootfs are "
               "not supported");
        }
        if (mounts.size() > 1) {
          fail(Errc::not_supported,
               "{} rootfs mounts given; one (a single layer, as from containerd's overlayfs or native snapshotter) "
               "or none is supported, multi-layer EROFS rootfs is not",
               mounts.size());
        }
        SharedRootfs rootfs;
        if (mounts.empty()) {
          rootfs.host_rootfs_ = root_path.is_absolute() ? root_path : bundle / root_path;
        } else {
          const auto& layer = mounts.front();
          check_supported_layer(layer);
          rootfs.host_rootfs_ = bundle / "rootfs";
          fs::create_directories(rootfs.host_rootfs_);
          rootfs.layer_ = ScopedMount::mount(layer.source, rootfs.host_rootfs_, layer.type, layer.options);
        }
        rootfs.share_ = shared_fs.share(rootfs.host_rootfs_, fs::path(container_id) / "rootfs", false);
        return rootfs;
      });
}

}  // namespace kata::resource
