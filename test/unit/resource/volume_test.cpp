// Volumes for real (root on the host, in a temporary directory): bind volumes shared into the
// sandbox's directory with their mode, reference counting, /dev/shm and ephemeral mapping.
#include "kata/resource/volume/volumes.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <optional>
#include <regex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "unit/resource/test_support.hpp"

namespace kata::resource {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test::create_errno;
using test::read_file;
using test::write_file;

oci::Mount make_mount(std::string destination, std::string type, std::string source,
                      std::vector<std::string> options = {}) {
  oci::Mount mount;
  mount.destination = std::move(destination);
  mount.type = std::move(type);
  mount.source = std::move(source);
  mount.options = std::move(options);
  return mount;
}

TEST(VolumeKinds, Classification) {
  EXPECT_EQ(classify_volume(make_mount("/dev/shm", "bind", "/run/containerd/shm", {"rbind"})), VolumeKind::shm);
  EXPECT_EQ(classify_volume(make_mount("/dev/shm", "tmpfs", "shm")), VolumeKind::shm);
  EXPECT_EQ(classify_volume(make_mount("/dev/shm", "ephemeral", "/x")), VolumeKind::ephemeral);
  EXPECT_EQ(classify_volume(make_mount("/cache", "ephemeral", "/var/lib/kubelet/x")), VolumeKind::ephemeral);
  EXPECT_EQ(classify_volume(make_mount("/data", "bind", "/srv/data", {"rbind"})), VolumeKind::shared_bind);
  EXPECT_EQ(classify_volume(make_mount("/data", "none", "/srv/data", {"rbind", "ro"})), VolumeKind::shared_bind);
  EXPECT_EQ(classify_volume(make_mount("/data", "", "/srv/data", {"bind"})), VolumeKind::shared_bind);
  EXPECT_EQ(classify_volume(make_mount("/data", "none", "/srv/data")), VolumeKind::unchanged);
  EXPECT_EQ(classify_volume(make_mount("/dev/null", "bind", "/dev/null")), VolumeKind::unchanged);
  EXPECT_EQ(classify_volume(make_mount("/dev", "bind", "/dev")), VolumeKind::unchanged);
  EXPECT_EQ(classify_volume(make_mount("/host/proc", "bind", "/proc", {"rbind"})), VolumeKind::unchanged);
  EXPECT_EQ(classify_volume(make_mount("/sys/fs", "bind", "/sys/fs/cgroup")), VolumeKind::unchanged);
  EXPECT_EQ(classify_volume(make_mount("/procfs-like", "bind", "/procedures")), VolumeKind::shared_bind);
  for (const char* type : {"proc", "tmpfs", "devpts", "sysfs", "mqueue", "cgroup"}) {
    EXPECT_EQ(classify_volume(make_mount("/x", type, type)), VolumeKind::unchanged) << type;
  }
}

TEST(VolumeKinds, LocalTypeAndDirectVolumesWithoutTheHost) {
  VolumeEnvironment environment;
  environment.direct_volume_root = "/nonexistent/direct-volumes";
  EXPECT_EQ(classify_volume(make_mount("/cache", "local", "/var/lib/x/cache"), environment), VolumeKind::local);
  // No direct-volume directory: a bind of a missing source is a shared bind (whose share then
  // reports the missing source).
  EXPECT_EQ(classify_volume(make_mount("/data", "bind", "/nonexistent/volume", {"rbind"}), environment),
            VolumeKind::shared_bind);
  EXPECT_EQ(to_string(VolumeKind::direct), "direct");
}

TEST(VolumeKinds, Base64UrlAsUpstreamJoinPath) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg==");
  EXPECT_EQ(base64url_encode("fo"), "Zm8=");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  // The URL-safe alphabet: '-' and '_' where standard base64 has '+' and '/'.
  EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");
  // kata-ctl direct-volume add --volume-path /mnt/disk writes under L21udC9kaXNr.
  EXPECT_EQ(direct_volume_dir("/run/kata-containers/shared/direct-volumes", "/mnt/disk"),
            "/run/kata-containers/shared/direct-volumes/L21udC9kaXNr");
}

TEST(VolumeKinds, ShmSizeFromTmpfsOptions) {
  EXPECT_EQ(sandbox_shm_size({make_mount("/dev/shm", "tmpfs", "shm", {"nosuid", "size=65536k"})}), 64ULL << 20);
  EXPECT_EQ(sandbox_shm_size({make_mount("/dev/shm", "tmpfs", "shm", {"size=32m"})}), 32ULL << 20);
  EXPECT_EQ(sandbox_shm_size({make_mount("/dev/shm", "tmpfs", "shm", {"size=1G"})}), 1ULL << 30);
  EXPECT_EQ(sandbox_shm_size({make_mount("/dev/shm", "tmpfs", "shm", {"size=4096"})}), 4096U);
  EXPECT_EQ(sandbox_shm_size({make_mount("/dev/shm", "tmpfs", "shm", {"nosuid"})}), default_shm_size);
  // The last /dev/shm mount wins, as it does in the container.
  EXPECT_EQ(sandbox_shm_size({make_mount("/dev/shm", "tmpfs", "shm", {"size=1m"}),
                              make_mount("/dev/shm", "tmpfs", "shm", {"size=2m"})}),
            2ULL << 20);
  for (const char* bad : {"size=50%", "size=", "size=12x", "size=0", "size=k"}) {
    try {
      (void)sandbox_shm_size({make_mount("/dev/shm", "tmpfs", "shm", {bad})});
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(code_of(error), Errc::invalid_argument);
      EXPECT_THAT(describe(error), HasSubstr(bad));
    }
  }
}

TEST(VolumeKinds, SharedNameFollowsUpstream) {
  const std::string name = shared_volume_name("0123456789abcdef", "/var/lib/kubelet/pods/x/volumes/config");
  EXPECT_TRUE(std::regex_match(name, std::regex("0123456789-[0-9a-f]{8}-config"))) << name;
  EXPECT_TRUE(std::regex_match(shared_volume_name("short", "/etc/hosts"), std::regex("short-[0-9a-f]{8}-hosts")));
}

TEST(VolumeKinds, SandboxShmStorage) {
  const auto storage = sandbox_shm_storage(65536 * 1024);
  EXPECT_EQ(storage.driver(), "ephemeral");
  EXPECT_EQ(storage.source(), "shm");
  EXPECT_EQ(storage.fstype(), "tmpfs");
  EXPECT_EQ(storage.mount_point(), "/run/kata-containers/sandbox/shm");
  EXPECT_THAT(storage.options(), ElementsAre("noexec", "nosuid", "nodev", "mode=1777", "size=67108864"));
  EXPECT_EQ(sandbox_shm_size({make_mount("/proc", "proc", "proc")}), default_shm_size);
  EXPECT_EQ(sandbox_shm_size({make_mount("/dev/shm", "bind", "/dev/shm", {"rbind"})}), default_shm_size);
}

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "volume tests need root";
    dir_ = test::make_temp_dir("kata-test-volume");
    fs::create_directories(dir_ / "data");
    write_file(dir_ / "data" / "file", "in dir");
    write_file(dir_ / "hosts", "127.0.0.1 localhost\n");
  }

  void TearDown() override {
    manager_.reset();
    shared_.reset();
    if (dir_.empty()) return;
    EXPECT_TRUE(mount_points_under(dir_).empty()) << "mounts left behind";
    unmount_all_under(dir_);
    fs::remove_all(dir_);
  }

  VolumeManager& make_manager(std::optional<std::string> kind = "virtio-9p") {
    SharedFsOptions options;
    options.sandbox_id = "sandbox-v";
    options.config.shared_fs = std::move(kind);
    options.host_root = dir_ / "sandboxes";
    shared_.emplace(io_.get_executor(), std::move(options));
    manager_.emplace(*shared_);
    return *manager_;
  }

  // Where a guest path is on the host, in the view the guest's daemon serves.
  fs::path view_of(const std::string& guest_path) {
    const std::string prefix = std::string(guest_shared_dir) + "passthrough/";
    EXPECT_TRUE(guest_path.starts_with(prefix)) << guest_path;
    return shared_->ro_dir() / "passthrough" / guest_path.substr(prefix.size());
  }

  asio::io_context io_;
  fs::path dir_;
  std::optional<SharedFs> shared_;
  std::optional<VolumeManager> manager_;
};

TEST_F(VolumeTest, BindVolumesAreSharedWithTheirMode) {
  auto& manager = make_manager();
  const std::vector<oci::Mount> mounts = {
      make_mount("/proc", "proc", "proc", {"nosuid"}),
      make_mount("/data", "bind", (dir_ / "data").string(), {"rbind", "rw"}),
      make_mount("/etc/hosts", "bind", (dir_ / "hosts").string(), {"rbind", "ro"}),
  };
  auto volumes = manager.prepare("container-long-id-1", mounts);
  ASSERT_EQ(volumes.mounts.size(), 3U);
  EXPECT_EQ(volumes.mounts[0], mounts[0]);
  EXPECT_TRUE(volumes.storages.empty());
  ASSERT_EQ(volumes.shares.size(), 2U);
  EXPECT_EQ(manager.share_count(), 2U);

  const auto& data = volumes.mounts[1];
  EXPECT_EQ(data.destination, "/data");
  EXPECT_EQ(data.type, "bind");
  EXPECT_THAT(data.options, ElementsAre("rbind", "rw"));
  EXPECT_TRUE(std::regex_match(
      data.source, std::regex("/run/kata-containers/shared/containers/passthrough/container--[0-9a-f]{8}-data")))
      << data.source;
  EXPECT_EQ(read_file(view_of(data.source) / "file"), "in dir");
  EXPECT_EQ(create_errno(view_of(data.source)), 0);

  const auto& hosts = volumes.mounts[2];
  EXPECT_THAT(hosts.options, ElementsAre("rbind", "ro"));
  EXPECT_EQ(read_file(view_of(hosts.source)), "127.0.0.1 localhost\n");
  std::FILE* writer = std::fopen(view_of(hosts.source).c_str(), "a");
  EXPECT_EQ(writer, nullptr);  // read-only volume: EROFS even for the host's view
  if (writer != nullptr) std::fclose(writer);
  EXPECT_EQ(errno, EROFS);

  volumes = ContainerVolumes();
  EXPECT_EQ(manager.share_count(), 0U);
  EXPECT_TRUE(mount_points_under(shared_->rw_dir() / "passthrough").empty());
  EXPECT_TRUE(fs::is_empty(shared_->rw_dir() / "passthrough"));
}

TEST_F(VolumeTest, IdenticalSourcesAreSharedOncePerMode) {
  auto& manager = make_manager();
  const auto data_ro = make_mount("/data", "bind", (dir_ / "data").string(), {"rbind", "ro"});
  const auto data_rw = make_mount("/data", "bind", (dir_ / "data").string() + "/", {"rbind"});
  auto first = manager.prepare("container-1", {data_ro});
  auto second = manager.prepare("container-2", {data_ro});
  EXPECT_EQ(first.mounts[0].source, second.mounts[0].source);
  EXPECT_EQ(manager.share_count(), 1U);
  auto writer = manager.prepare("container-3", {data_rw});
  EXPECT_NE(writer.mounts[0].source, first.mounts[0].source);
  EXPECT_EQ(manager.share_count(), 2U);

  const fs::path view = view_of(first.mounts[0].source);
  first = ContainerVolumes();
  EXPECT_TRUE(is_mount_point(view));  // container-2 still uses it
  second = ContainerVolumes();
  EXPECT_FALSE(fs::exists(view));
  EXPECT_EQ(manager.share_count(), 1U);
}

TEST_F(VolumeTest, MissingSourceNamesDestinationAndSource) {
  auto& manager = make_manager();
  const std::vector<oci::Mount> mounts = {
      make_mount("/data", "bind", (dir_ / "data").string(), {"rbind"}),
      make_mount("/config", "bind", (dir_ / "absent").string(), {"rbind"}),
  };
  try {
    (void)manager.prepare("container-1", mounts);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_found);
    const std::string text = describe(error);
    EXPECT_THAT(text, HasSubstr("prepare volumes of container container-1"));
    EXPECT_THAT(text, HasSubstr("volume /config"));
    EXPECT_THAT(text, HasSubstr((dir_ / "absent").string()));
  }
  // The share made for /data before the failure is gone again.
  EXPECT_EQ(manager.share_count(), 0U);
  EXPECT_TRUE(fs::is_empty(shared_->rw_dir() / "passthrough"));
}

TEST_F(VolumeTest, ShmMapsToTheSandboxShm) {
  auto& manager = make_manager();
  fs::create_directories(dir_ / "pod-shm");
  auto pod_shm = ScopedMount::mount("shm", dir_ / "pod-shm", "tmpfs", MS_NOSUID, "size=1m");
  const std::vector<oci::Mount> mounts = {make_mount("/dev/shm", "bind", (dir_ / "pod-shm").string(), {"rbind", "ro"})};
  EXPECT_EQ(sandbox_shm_size(mounts), 1024U * 1024U);
  auto volumes = manager.prepare("container-1", mounts);
  ASSERT_EQ(volumes.mounts.size(), 1U);
  EXPECT_EQ(volumes.mounts[0].destination, "/dev/shm");
  EXPECT_EQ(volumes.mounts[0].type, "bind");
  EXPECT_EQ(volumes.mounts[0].source, "/run/kata-containers/sandbox/shm");
  EXPECT_THAT(volumes.mounts[0].options, ElementsAre("rbind"));
  EXPECT_TRUE(volumes.shares.empty());
}

TEST_F(VolumeTest, EphemeralBecomesAGuestTmpfs) {
  auto& manager = make_manager();
  fs::create_directories(dir_ / "scratch");
  ASSERT_EQ(::chown((dir_ / "scratch").c_str(), 0, 1234), 0);
  auto volumes = manager.prepare(
      "container-1", {make_mount("/scratch", "ephemeral", (dir_ / "scratch").string(), {"rbind", "rw"})});
  ASSERT_EQ(volumes.storages.size(), 1U);
  const auto& storage = volumes.storages[0];
  EXPECT_EQ(storage.driver(), "ephemeral");
  EXPECT_EQ(storage.source(), "tmpfs");
  EXPECT_EQ(storage.fstype(), "tmpfs");
  EXPECT_EQ(storage.mount_point(), "/run/kata-containers/sandbox/ephemeral/scratch");
  EXPECT_THAT(storage.options(), ElementsAre("fsgid=1234"));
  EXPECT_EQ(volumes.mounts[0].source, "/run/kata-containers/sandbox/ephemeral/scratch");
  EXPECT_EQ(volumes.mounts[0].type, "bind");
  EXPECT_THAT(volumes.mounts[0].options, ElementsAre("rbind", "rw"));

  try {
    (void)manager.prepare("container-1", {make_mount("/scratch", "ephemeral", (dir_ / "gone").string())});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_found);
    EXPECT_THAT(describe(error), HasSubstr("volume /scratch"));
  }
}

TEST_F(VolumeTest, KubernetesEmptyDirsByMedium) {
  // kubelet's layout: .../volumes/kubernetes.io~empty-dir/<name>; medium Memory is a tmpfs.
  const fs::path empty_dirs = dir_ / "pod" / "volumes" / "kubernetes.io~empty-dir";
  fs::create_directories(empty_dirs / "memory");
  fs::create_directories(empty_dirs / "disk");
  auto tmpfs = ScopedMount::mount("tmpfs", empty_dirs / "memory", "tmpfs", 0, "size=1m");
  // The disk medium must not be a tmpfs whatever holds the test's directory (/tmp is a tmpfs on
  // some machines, CI's fresh chroot among them): ramfs stands in for a disk filesystem.
  auto not_tmpfs = ScopedMount::mount("ramfs", empty_dirs / "disk", "ramfs", 0, "");
  const auto memory = make_mount("/memory", "bind", (empty_dirs / "memory").string(), {"rbind"});
  const auto disk = make_mount("/disk", "bind", (empty_dirs / "disk").string(), {"rbind"});
  VolumeEnvironment sharing;
  VolumeEnvironment not_sharing;
  not_sharing.fs_sharing = false;
  EXPECT_EQ(classify_volume(memory, sharing), VolumeKind::ephemeral);
  EXPECT_EQ(classify_volume(memory, not_sharing), VolumeKind::ephemeral);
  EXPECT_EQ(classify_volume(disk, sharing), VolumeKind::shared_bind);
  EXPECT_EQ(classify_volume(disk, not_sharing), VolumeKind::local);

  auto& manager = make_manager();
  auto volumes = manager.prepare("container-1", {memory, make_mount("/scratch", "local", (empty_dirs / "disk").string())});
  ASSERT_EQ(volumes.storages.size(), 2U);
  EXPECT_EQ(volumes.storages[0].driver(), "ephemeral");
  EXPECT_EQ(volumes.storages[0].mount_point(), "/run/kata-containers/sandbox/ephemeral/memory");
  EXPECT_EQ(volumes.mounts[0].source, "/run/kata-containers/sandbox/ephemeral/memory");
  EXPECT_EQ(volumes.storages[1].driver(), "local");
  EXPECT_EQ(volumes.storages[1].fstype(), "local");
  EXPECT_EQ(volumes.storages[1].mount_point(), "/run/kata-containers/sandbox/local/disk");
  EXPECT_THAT(volumes.storages[1].options(), ElementsAre("mode=0777"));
  EXPECT_EQ(volumes.mounts[1].type, "bind");
  EXPECT_EQ(volumes.mounts[1].source, "/run/kata-containers/sandbox/local/disk");
  EXPECT_THAT(volumes.mounts[1].options, ElementsAre("rbind"));
  EXPECT_TRUE(volumes.shares.empty());
  EXPECT_TRUE(volumes.block_devices.empty());
}

TEST_F(VolumeTest, BlockDeviceSourceIsAttachedAndMountedByTheAgent) {
  // A device node of its own: loop0's numbers, nothing is opened for real here.
  const fs::path device = dir_ / "disk0";
  ASSERT_EQ(::mknod(device.c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  auto& manager = make_manager();
  const auto mount = make_mount("/data", "bind", device.string(), {"rbind", "ro", "nosuid"});
  EXPECT_EQ(classify_volume(mount), VolumeKind::block);
  auto volumes = manager.prepare("container-long-id-1", {mount});
  ASSERT_EQ(volumes.block_devices.size(), 1U);
  const auto& block = volumes.block_devices[0];
  EXPECT_TRUE(std::regex_match(block.device_id, std::regex("container--[0-9a-f]{8}-data"))) << block.device_id;
  EXPECT_EQ(block.host_path, device);
  EXPECT_TRUE(block.read_only);
  ASSERT_EQ(block.storage_index, 0U);
  const auto& storage = volumes.storages[0];
  EXPECT_EQ(storage.driver(), "blk");
  EXPECT_EQ(storage.source(), "");  // the sandbox sets the PCI path once attached
  EXPECT_EQ(storage.fstype(), "ext4");
  EXPECT_EQ(storage.mount_point(), "/run/kata-containers/sandbox/block/" + block.device_id);
  EXPECT_THAT(storage.options(), ElementsAre("ro", "nosuid"));
  EXPECT_EQ(volumes.mounts[0].source, storage.mount_point());
  EXPECT_EQ(volumes.mounts[0].type, "bind");
  EXPECT_THAT(volumes.mounts[0].options, ElementsAre("rbind", "ro", "nosuid"));
  EXPECT_TRUE(volumes.shares.empty());
}

TEST_F(VolumeTest, DirectVolumesFollowTheirMountInfo) {
  const fs::path root = dir_ / "direct-volumes";
  const std::string volume = "/mnt/vol-direct";  // need not exist on the host
  fs::create_directories(direct_volume_dir(root, volume));
  write_file(dir_ / "disk.img", std::string(4096, '\0'));
  const auto info_file = direct_volume_dir(root, volume) / "mountInfo.json";
  write_file(info_file, R"({"volume-type":"directvol","device":")" + (dir_ / "disk.img").string() +
                            R"(","fstype":"xfs","metadata":{"k":"v"},"options":["noatime"]})");
  SharedFsOptions options;
  options.sandbox_id = "sandbox-v";
  options.config.shared_fs = "virtio-9p";
  options.host_root = dir_ / "sandboxes";
  shared_.emplace(io_.get_executor(), std::move(options));
  VolumeManager manager(*shared_, root);

  const auto mount = make_mount("/direct", "bind", volume, {"rbind"});
  VolumeEnvironment environment;
  environment.direct_volume_root = root;
  EXPECT_EQ(classify_volume(mount, environment), VolumeKind::direct);
  EXPECT_EQ(classify_volume(make_mount("/direct", "directvol", volume), environment), VolumeKind::direct);

  const DirectVolumeInfo info = read_direct_volume_info(root, volume);
  EXPECT_EQ(info.volume_type, "directvol");
  EXPECT_EQ(info.fstype, "xfs");
  EXPECT_EQ(info.metadata.at("k"), "v");
  EXPECT_THAT(info.options, ElementsAre("noatime"));

  auto volumes = manager.prepare("container-1", {mount});
  ASSERT_EQ(volumes.block_devices.size(), 1U);
  EXPECT_EQ(volumes.block_devices[0].host_path, dir_ / "disk.img");
  EXPECT_FALSE(volumes.block_devices[0].read_only);
  EXPECT_EQ(volumes.storages[0].driver(), "blk");
  EXPECT_EQ(volumes.storages[0].fstype(), "xfs");
  EXPECT_THAT(volumes.storages[0].options(), ElementsAre("noatime"));
  volumes = ContainerVolumes();

  // Its device is missing: one error naming the volume, the mount and the device.
  write_file(info_file, R"({"volume-type":"directvol","device":"/nonexistent/disk.img","fstype":"ext4"})");
  try {
    (void)manager.prepare("container-1", {mount});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_found);
    EXPECT_THAT(describe(error), HasSubstr("volume /direct (source /mnt/vol-direct)"));
    EXPECT_THAT(describe(error), HasSubstr("/nonexistent/disk.img"));
  }
  write_file(info_file, R"({"volume-type":"spdkvol","device":"/x","fstype":"ext4"})");
  try {
    (void)manager.prepare("container-1", {mount});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_supported);
    EXPECT_THAT(describe(error), HasSubstr("spdkvol"));
  }
  for (const char* bad : {"[]", R"({"device":"/x"})", R"({"volume-type":"directvol","device":7})", "{not json"}) {
    write_file(info_file, bad);
    try {
      (void)read_direct_volume_info(root, volume);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(code_of(error), Errc::invalid_argument) << bad;
      EXPECT_THAT(describe(error), HasSubstr(info_file.string()));
    }
  }
}

TEST_F(VolumeTest, TerminationLogFileUnderDevIsShared) {
  auto& manager = make_manager();
  write_file(dir_ / "termination-log", "");
  auto volumes = manager.prepare(
      "container-1", {make_mount("/dev/termination-log", "bind", (dir_ / "termination-log").string(), {"rbind"}),
                      make_mount("/dev/fuse", "bind", "/dev/null", {"rbind"})});
  EXPECT_EQ(volumes.shares.size(), 1U);
  EXPECT_THAT(volumes.mounts[0].source, HasSubstr("/passthrough/container--"));
  EXPECT_EQ(volumes.mounts[1].source, "/dev/null");
}

TEST_F(VolumeTest, WithoutSharedFsBindsAreRefusedOthersPass) {
  auto& manager = make_manager("none");
  auto volumes = manager.prepare("c", {make_mount("/proc", "proc", "proc"), make_mount("/dev/shm", "tmpfs", "shm")});
  EXPECT_EQ(volumes.mounts.size(), 2U);
  try {
    (void)manager.prepare("c", {make_mount("/data", "bind", (dir_ / "data").string(), {"rbind"})});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_supported);
    EXPECT_THAT(describe(error), HasSubstr("volume /data"));
    EXPECT_THAT(describe(error), HasSubstr("shared_fs = none"));
  }
}

}  // namespace
}  // namespace kata::resource
