// Container rootfs sharing for real (root on the host, in a temporary directory): an overlay layer
// as containerd's overlayfs snapshotter describes it, a native bind layer, and a pre-populated
// bundle rootfs, each visible through the sandbox's read-only view.
#include "kata/resource/rootfs/shared_rootfs.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <regex>

#include <optional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "kata/resource/rootfs/block_rootfs.hpp"
#include "unit/resource/test_support.hpp"

namespace kata::resource {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test::create_errno;
using test::read_file;
using test::write_file;

class RootfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "rootfs tests need root";
    dir_ = test::make_temp_dir("kata-test-rootfs");
    bundle_ = dir_ / "bundle";
    fs::create_directories(bundle_);
  }

  void TearDown() override {
    shared_.reset();
    if (dir_.empty()) return;
    EXPECT_TRUE(mount_points_under(dir_).empty()) << "mounts left behind";
    unmount_all_under(dir_);
    fs::remove_all(dir_);
  }

  SharedFs& make_shared_fs(std::optional<std::string> kind = "virtio-9p") {
    SharedFsOptions options;
    options.sandbox_id = "sandbox-r";
    options.config.shared_fs = std::move(kind);
    options.host_root = dir_ / "sandboxes";
    shared_.emplace(io_.get_executor(), std::move(options));
    return *shared_;
  }

  runtime::RootfsMount overlay_layer() {
    for (const char* name : {"lower", "upper", "work"}) fs::create_directories(dir_ / name);
    write_file(dir_ / "lower" / "from-lower", "image content");
    runtime::RootfsMount layer;
    layer.type = "overlay";
    layer.source = "overlay";
    layer.options = {"index=off", "workdir=" + (dir_ / "work").string(), "upperdir=" + (dir_ / "upper").string(),
                     "lowerdir=" + (dir_ / "lower").string()};
    return layer;
  }

  asio::io_context io_;
  fs::path dir_;
  fs::path bundle_;
  std::optional<SharedFs> shared_;
};

TEST_F(RootfsTest, OverlayLayerIsMountedAndShared) {
  auto& shared = make_shared_fs();
  {
    SharedRootfs rootfs = share_rootfs(shared, "container-1", bundle_, {overlay_layer()});
    EXPECT_EQ(rootfs.guest_path(), "/run/kata-containers/shared/containers/passthrough/container-1/rootfs");
    EXPECT_EQ(rootfs.host_rootfs(), bundle_ / "rootfs");
    EXPECT_TRUE(rootfs.mounted_layer());
    EXPECT_TRUE(is_mount_point(bundle_ / "rootfs"));
    const fs::path view = shared.ro_dir() / "passthrough" / "container-1" / "rootfs";
    EXPECT_EQ(rootfs.share().view_path(), view);
    EXPECT_EQ(read_file(view / "from-lower"), "image content");
    // The container's rootfs is writable from the guest; writes land in the upper layer.
    write_file(view / "written-by-guest", "new");
    EXPECT_EQ(read_file(dir_ / "upper" / "written-by-guest"), "new");
  }
  EXPECT_FALSE(is_mount_point(bundle_ / "rootfs"));
  EXPECT_FALSE(fs::exists(shared.rw_dir() / "passthrough" / "container-1"));
  EXPECT_EQ(read_file(dir_ / "lower" / "from-lower"), "image content");
}

TEST_F(RootfsTest, NativeSnapshotterBindLayer) {
  auto& shared = make_shared_fs();
  fs::create_directories(dir_ / "snapshot");
  write_file(dir_ / "snapshot" / "etc-release", "native");
  runtime::RootfsMount layer;
  layer.type = "bind";
  layer.source = (dir_ / "snapshot").string();
  layer.options = {"rbind", "rw"};
  SharedRootfs rootfs = share_rootfs(shared, "container-2", bundle_, {layer});
  EXPECT_EQ(read_file(rootfs.share().view_path() / "etc-release"), "native");
  rootfs.release();
  EXPECT_FALSE(is_mount_point(bundle_ / "rootfs"));
}

TEST_F(RootfsTest, PopulatedBundleRootfsIsSharedAsItIs) {
  auto& shared = make_shared_fs();
  fs::create_directories(bundle_ / "rootfs" / "bin");
  write_file(bundle_ / "rootfs" / "bin" / "sh", "#!");
  SharedRootfs rootfs = share_rootfs(shared, "container-3", bundle_, {});
  EXPECT_FALSE(rootfs.mounted_layer());
  EXPECT_EQ(read_file(rootfs.share().view_path() / "bin" / "sh"), "#!");
  EXPECT_EQ(rootfs.guest_path(), "/run/kata-containers/shared/containers/passthrough/container-3/rootfs");

  fs::create_directories(dir_ / "elsewhere");
  SharedRootfs absolute = share_rootfs(shared, "container-4", bundle_, {}, dir_ / "elsewhere");
  EXPECT_EQ(absolute.host_rootfs(), dir_ / "elsewhere");
}

TEST_F(RootfsTest, SeveralMountsAreRefusedWithTheCount) {
  auto& shared = make_shared_fs();
  runtime::RootfsMount layer;
  layer.type = "erofs";
  layer.source = "/dev/loop0";
  try {
    (void)share_rootfs(shared, "container-5", bundle_, {layer, layer});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_supported);
    const std::string text = describe(error);
    EXPECT_THAT(text, HasSubstr("share rootfs of container container-5"));
    EXPECT_THAT(text, HasSubstr("2 rootfs mounts"));
    EXPECT_THAT(text, HasSubstr("EROFS"));
  }
}

TEST_F(RootfsTest, UnsupportedLayersAndNoSharedFs) {
  auto& shared = make_shared_fs();
  runtime::RootfsMount nydus;
  nydus.type = "fuse.nydus-overlayfs";
  nydus.source = "overlay";
  EXPECT_THROW((void)share_rootfs(shared, "c", bundle_, {nydus}), Error);
  runtime::RootfsMount guest_pull;
  guest_pull.type = "overlay";
  guest_pull.options = {"io.katacontainers.volume=eyJ2b2x1bWVfdHlwZSI6ICJpbWFnZV9ndWVzdF9wdWxsIn0="};
  EXPECT_THROW((void)share_rootfs(shared, "c", bundle_, {guest_pull}), Error);

  shared_.reset();
  auto& none = make_shared_fs("none");
  try {
    (void)share_rootfs(none, "c", bundle_, {});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_supported);
    EXPECT_THAT(describe(error), HasSubstr("shared_fs = none"));
  }
}

TEST_F(RootfsTest, LayerMountFailureNamesItAndLeavesNothing) {
  auto& shared = make_shared_fs();
  runtime::RootfsMount layer = overlay_layer();
  layer.options.back() = "lowerdir=" + (dir_ / "missing-lower").string();
  try {
    (void)share_rootfs(shared, "container-6", bundle_, {layer});
    FAIL();
  } catch (const Error& error) {
    const std::string text = describe(error);
    EXPECT_THAT(text, HasSubstr("share rootfs of container container-6"));
    EXPECT_THAT(text, HasSubstr("type overlay"));
    EXPECT_THAT(text, HasSubstr((bundle_ / "rootfs").string()));
    EXPECT_THAT(text, HasSubstr("missing-lower"));
  }
  EXPECT_TRUE(mount_points_under(bundle_).empty());
  EXPECT_FALSE(fs::exists(shared.rw_dir() / "passthrough" / "container-6"));
}

TEST_F(RootfsTest, ShareFailureUnmountsTheLayer) {
  auto& shared = make_shared_fs();
  // Something already shared at the container's place makes the share fail after the layer
  // was mounted; the layer must not stay mounted.
  fs::create_directories(bundle_ / "rootfs");
  fs::create_directories(dir_ / "other");
  auto occupied = shared.share(dir_ / "other", "container-7/rootfs", false);
  try {
    (void)share_rootfs(shared, "container-7", bundle_, {overlay_layer()});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::already_exists);
  }
  EXPECT_FALSE(is_mount_point(bundle_ / "rootfs"));
}

runtime::RootfsMount rootfs_mount(std::string type, std::string source, std::vector<std::string> options = {}) {
  return runtime::RootfsMount{.type = std::move(type), .source = std::move(source), .target = {}, .options = std::move(options)};
}

// The devmapper snapshotter's rootfs is a block device (a thin device); an image file counts
// with the "loop" option. Classified from the host alone, as upstream's is_block_rootfs.
TEST_F(RootfsTest, BlockRootfsClassificationAndStorage) {
  const fs::path device = dir_ / "thin-1";
  ASSERT_EQ(::mknod(device.c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  write_file(dir_ / "rootfs.img", "");
  EXPECT_EQ(classify_rootfs({}), RootfsKind::bundle);
  EXPECT_EQ(classify_rootfs({rootfs_mount("ext4", device.string())}), RootfsKind::block);
  EXPECT_EQ(classify_rootfs({rootfs_mount("ext4", (dir_ / "rootfs.img").string(), {"loop"})}), RootfsKind::block);
  EXPECT_EQ(classify_rootfs({rootfs_mount("ext4", (dir_ / "rootfs.img").string())}), RootfsKind::layer);
  EXPECT_EQ(classify_rootfs({overlay_layer()}), RootfsKind::layer);
  EXPECT_EQ(classify_rootfs({rootfs_mount("bind", bundle_.string(), {"rbind"})}), RootfsKind::layer);
  EXPECT_EQ(classify_rootfs({rootfs_mount("ext4", "/nonexistent/thin")}), RootfsKind::layer);
  EXPECT_EQ(classify_rootfs({rootfs_mount("fuse.nydus-overlayfs", "overlay")}), RootfsKind::nydus);
  EXPECT_EQ(classify_rootfs({rootfs_mount("overlay", "overlay", {"io.katacontainers.volume=e30="})}),
            RootfsKind::virtual_volume);
  EXPECT_EQ(classify_rootfs({overlay_layer(), overlay_layer()}), RootfsKind::multiple);

  const BlockRootfs rootfs = block_rootfs("container-long-id", rootfs_mount("xfs", device.string(), {"rw", "loop", "rbind"}));
  EXPECT_TRUE(std::regex_match(rootfs.device.device_id, std::regex("container--[0-9a-f]{8}-rootfs"))) << rootfs.device.device_id;
  EXPECT_EQ(rootfs.device.host_path, device);
  EXPECT_FALSE(rootfs.device.read_only);
  EXPECT_EQ(rootfs.storage.driver(), "blk");
  EXPECT_EQ(rootfs.storage.fstype(), "xfs");
  EXPECT_EQ(rootfs.storage.mount_point(), "/run/kata-containers/sandbox/block/" + rootfs.device.device_id);
  EXPECT_THAT(rootfs.storage.options(), ::testing::ElementsAre("rw", "nouuid"));
  try {
    (void)block_rootfs("c9", rootfs_mount("", device.string()));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::invalid_argument);
    EXPECT_THAT(describe(error), HasSubstr("container c9"));
    EXPECT_THAT(describe(error), HasSubstr(device.string()));
  }
}

}  // namespace
}  // namespace kata::resource
