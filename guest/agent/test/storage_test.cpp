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
  storage.set_driver("blk");
  storage.set_source("/dev/vda");
  storage.set_mount_point("/run/x");
  try {
    (void)mount_storage(storage);
    FAIL() << "blk was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::not_supported);
    EXPECT_NE(describe(error).find("'blk'"), std::string::npos) << describe(error);
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

}  // namespace
}  // namespace kata::agent_guest
