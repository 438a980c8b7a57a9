#include "kata/agent_guest/storage.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "kata/core/error.hpp"
#include "support/async_test.hpp"

namespace kata::agent_guest {
namespace {

std::string read(const std::filesystem::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(Storage, ResolvConfTakesLinesAndBareAddresses) {
  const testing::TempDir dir("storage");
  write_resolv_conf({"nameserver 10.0.0.1", "10.0.0.2", "search example.com"}, dir.path() / "resolv.conf");
  EXPECT_EQ(read(dir.path() / "resolv.conf"), "nameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch example.com\n");
  EXPECT_THROW(write_resolv_conf({"nameserver 1.1.1.1\noptions evil"}, dir.path() / "resolv.conf"), Error);
}

TEST(Storage, LocalIsADirectoryWithTheRequestedMode) {
  const testing::TempDir dir("storage");
  grpc::Storage storage;
  storage.set_driver("local");
  storage.set_mount_point((dir.path() / "a/b").string());
  storage.add_options("mode=0750");
  const StorageMount mounted = mount_storage(storage);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST(Storage, EphemeralIsATmpfsUnmountedWithItsOwner) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting needs root";
  const testing::TempDir dir("storage");
  const auto target = dir.path() / "shm";
  grpc::Storage storage;
  storage.set_driver("ephemeral");
  storage.set_source("shm");
  storage.set_fstype("tmpfs");
  storage.add_options("mode=1777");
  storage.add_options("size=1048576");
  storage.set_mount_point(target.string());
  struct stat before {};
  ASSERT_EQ(::stat(dir.path().c_str(), &before), 0);
  {
    const StorageMount mounted = mount_storage(storage);
    struct stat st {};
    ASSERT_EQ(::stat(target.c_str(), &st), 0);
    EXPECT_NE(st.st_dev, before.st_dev);
    EXPECT_EQ(st.st_mode & 07777, 01777u);
  }
  struct stat after {};
  ASSERT_EQ(::stat(target.c_str(), &after), 0);
  EXPECT_EQ(after.st_dev, before.st_dev);
}

TEST(Storage, UnknownDriversAndBadRequestsAreRefused) {
  grpc::Storage storage;
  storage.set_driver("nvdimm");
  storage.set_source("/dev/pmem0");
  storage.set_mount_point("/run/x");
  try {
    (void)mount_storage(storage);
    FAIL() << "nvdimm was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::not_supported);
    EXPECT_NE(describe(error).find("'nvdimm'"), std::string::npos) << describe(error);
  }
  storage.set_driver("9p");
  storage.set_mount_point("relative");
  try {
    (void)mount_storage(storage);
    FAIL() << "a relative mount point was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::invalid_argument);
  }
}

// A sysfs tree as the guest kernel shows a virtio-blk disk hotplugged behind pcie-root-port
// 00:1e.0 (secondary bus 01).
void make_hotplugged_disk(const std::filesystem::path& sysfs, const std::string& disk) {
  const auto port = sysfs / "devices/pci0000:00/0000:00:1e.0";
  std::filesystem::create_directories(port / "pci_bus/0000:01");
  std::filesystem::create_directories(port / "0000:01:00.0/virtio3/block" / disk);
  std::filesystem::create_directories(port / "0000:01:00.0/driver");
}

TEST(Storage, BlockDeviceIsFoundByItsPciPath) {
  const testing::TempDir dir("storage");
  StorageEnvironment environment;
  environment.sysfs = dir.path() / "sys";
  environment.dev = dir.path() / "dev";
  EXPECT_EQ(block_device_at("1e/00", environment), std::nullopt);  // not there yet
  make_hotplugged_disk(environment.sysfs, "vdb");
  EXPECT_EQ(block_device_at("1e/00", environment), environment.dev / "vdb");
  EXPECT_EQ(block_device_at("1E/0", environment), environment.dev / "vdb");
  EXPECT_EQ(block_device_at("1e/01", environment), std::nullopt);
  EXPECT_EQ(block_device_at("1d/00", environment), std::nullopt);
  EXPECT_EQ(block_device_at("1e", environment), std::nullopt);  // the port itself has no disk
  for (const char* bad : {"", "1e/", "/00", "20/00", "1e/zz", "123/00", "1e//00"}) {
    EXPECT_THROW((void)block_device_at(bad, environment), Error) << bad;
  }
}

TEST(Storage, BlockStorageWaitsForItsDeviceThenNamesThePciPath) {
  const testing::TempDir dir("storage");
  StorageEnvironment environment;
  environment.sysfs = dir.path() / "sys";
  environment.dev = dir.path() / "dev";
  environment.device_timeout = std::chrono::milliseconds(200);
  grpc::Storage storage;
  storage.set_driver("blk");
  storage.set_source("1e/00");
  storage.set_fstype("ext4");
  storage.set_mount_point((dir.path() / "mnt").string());
  const auto started = std::chrono::steady_clock::now();
  try {
    (void)mount_storage(storage, environment);
    FAIL() << "a device that never appeared was mounted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::deadline_exceeded);
    EXPECT_NE(describe(error).find("PCI path 1e/00"), std::string::npos) << describe(error);
  }
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(200));
  storage.set_source("zz");
  EXPECT_THROW((void)mount_storage(storage, environment), Error);
  storage.set_source("1e/00");
  storage.clear_fstype();
  EXPECT_THROW((void)mount_storage(storage, environment), Error);
}

TEST(Storage, FsGroupOwnsTheVolume) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  const testing::TempDir dir("storage");
  grpc::Storage storage;
  storage.set_driver("local");
  storage.set_mount_point((dir.path() / "vol").string());
  storage.add_options("mode=0750");
  storage.add_options("fsgid=4321");
  const StorageMount mounted = mount_storage(storage);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "vol").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ(st.st_mode & 07777, 02770u);
  storage.set_mount_point((dir.path() / "vol2").string());
  storage.set_options(1, "fsgid=users");
  EXPECT_THROW((void)mount_storage(storage), Error);
}

}  // namespace
}  // namespace kata::agent_guest
