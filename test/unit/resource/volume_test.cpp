// Volumes for real (root on the host, in a temporary directory): bind volumes shared into the
// sandbox's directory with their mode, reference counting, /dev/shm and ephemeral mapping.
#include "kata/resource/volume/volumes.hpp"

#include <sys/mount.h>
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
