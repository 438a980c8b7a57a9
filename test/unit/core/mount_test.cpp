// ScopedMount needs CAP_SYS_ADMIN: these tests run as root on the host, inside a temporary
// directory, and check /proc/self/mountinfo that nothing is left mounted.
#include "kata/core/mount.hpp"

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// errno of creating a file in `dir` (0 on success; the file is removed again).
int create_errno(const fs::path& dir) {
  const fs::path probe = dir / "probe";
  std::FILE* file = std::fopen(probe.c_str(), "w");
  if (file == nullptr) return errno;
  std::fclose(file);
  fs::remove(probe);
  return 0;
}

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mount tests need root";
    std::string pattern = (fs::temp_directory_path() / "kata-test-mount-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  void TearDown() override {
    if (dir_.empty()) return;
    unmount_all_under(dir_);
    EXPECT_TRUE(mount_points_under(dir_).empty());
    fs::remove_all(dir_);
  }

  fs::path make_dir(const std::string& name) {
    fs::create_directories(dir_ / name);
    return dir_ / name;
  }

  fs::path dir_;
};

TEST(MountOptions, FlagsPropagationAndDataAreSeparated) {
  const auto parsed = parse_mount_options({"ro", "nosuid", "rbind", "rslave", "lowerdir=/a:/b", "upperdir=/u"});
  EXPECT_EQ(parsed.flags, MS_RDONLY | MS_NOSUID | MS_BIND | MS_REC);
  EXPECT_EQ(parsed.propagation, MS_SLAVE | MS_REC);
  EXPECT_EQ(parsed.data, "lowerdir=/a:/b,upperdir=/u");
}

TEST(MountOptions, ClearingOptionsUndoEarlierOnes) {
  const auto parsed = parse_mount_options({"ro", "nodev", "noexec", "rw", "dev", "defaults", "size=65536k"});
  EXPECT_EQ(parsed.flags, static_cast<unsigned long>(MS_NOEXEC));
  EXPECT_EQ(parsed.propagation, 0UL);
  EXPECT_EQ(parsed.data, "size=65536k");
}

TEST(MountOptions, FlagsPrintByName) {
  EXPECT_EQ(mount_flags_to_string(0), "0");
  EXPECT_EQ(mount_flags_to_string(MS_BIND | MS_REC | MS_RDONLY), "MS_RDONLY|MS_BIND|MS_REC");
  EXPECT_EQ(mount_flags_to_string(MS_NODEV | (1UL << 30)), "MS_NODEV|0x40000000");
}

TEST_F(MountTest, BindDirectoryIsVisibleAndUnmountedOnDestruction) {
  const auto source = make_dir("source");
  const auto target = make_dir("target");
  write_file(source / "hello", "world");
  {
    auto mount = ScopedMount::bind(source, target);
    EXPECT_TRUE(mount.owns_mount());
    EXPECT_EQ(mount.target(), target);
    EXPECT_TRUE(is_mount_point(target));
    EXPECT_EQ(read_file(target / "hello"), "world");
  }
  EXPECT_FALSE(is_mount_point(target));
  EXPECT_FALSE(fs::exists(target / "hello"));
}

TEST_F(MountTest, BindFile) {
  const auto source = dir_ / "source-file";
  const auto target = dir_ / "target-file";
  write_file(source, "content");
  write_file(target, "");
  auto mount = ScopedMount::bind(source, target);
  EXPECT_EQ(read_file(target), "content");
  mount.unmount();
  EXPECT_FALSE(mount.owns_mount());
  EXPECT_EQ(read_file(target), "");
}

TEST_F(MountTest, ReadOnlyBindRefusesWritesButSourceStaysWritable) {
  const auto source = make_dir("source");
  const auto target = make_dir("target");
  auto mount = ScopedMount::bind(source, target, {.read_only = true});
  EXPECT_EQ(create_errno(target), EROFS);
  EXPECT_EQ(create_errno(source), 0);
}

TEST_F(MountTest, RemountTogglesReadOnly) {
  const auto source = make_dir("source");
  const auto target = make_dir("target");
  auto mount = ScopedMount::bind(source, target);
  EXPECT_EQ(create_errno(target), 0);
  mount.remount_read_only(true);
  EXPECT_EQ(create_errno(target), EROFS);
  mount.remount_read_only(false);
  EXPECT_EQ(create_errno(target), 0);
}

TEST_F(MountTest, MissingSourceErrorNamesSourceTargetAndFlags) {
  const auto target = make_dir("target");
  try {
    auto mount = ScopedMount::bind(dir_ / "absent", target);
    FAIL() << "bind of a missing source succeeded";
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_found);
    const std::string text = describe(error);
    EXPECT_THAT(text, HasSubstr((dir_ / "absent").string()));
    EXPECT_THAT(text, HasSubstr(target.string()));
    EXPECT_THAT(text, HasSubstr("MS_BIND|MS_REC"));
    EXPECT_THAT(text, HasSubstr("No such file or directory"));
  }
  EXPECT_FALSE(is_mount_point(target));
}

TEST_F(MountTest, ReadOnlyBindErrorNamesTheStep) {
  const auto target = make_dir("target");
  try {
    auto mount = ScopedMount::bind(dir_ / "absent", target, {.read_only = true});
    FAIL() << "bind of a missing source succeeded";
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_found);
    EXPECT_THAT(describe(error), HasSubstr("MS_RDONLY"));
    EXPECT_THAT(describe(error), HasSubstr((dir_ / "absent").string()));
  }
}

TEST_F(MountTest, FilesystemMountWithOptionsAndDataError) {
  const auto target = make_dir("tmp");
  {
    auto mount = ScopedMount::mount("tmpfs", target, "tmpfs", std::vector<std::string>{"nosuid", "size=1m", "mode=0700"});
    EXPECT_TRUE(is_mount_point(target));
    EXPECT_EQ(fs::status(target).permissions(), fs::perms::owner_all);
  }
  EXPECT_FALSE(is_mount_point(target));
  try {
    auto mount = ScopedMount::mount("tmpfs", target, "tmpfs", MS_NODEV, "size=nonsense");
    FAIL() << "tmpfs accepted a bad size";
  } catch (const Error& error) {
    const std::string text = describe(error);
    EXPECT_THAT(text, HasSubstr("type tmpfs"));
    EXPECT_THAT(text, HasSubstr("flags MS_NODEV"));
    EXPECT_THAT(text, HasSubstr("data size=nonsense"));
    EXPECT_THAT(text, HasSubstr(target.string()));
  }
  EXPECT_FALSE(is_mount_point(target));
}

TEST_F(MountTest, RemountOptionIsRefused) {
  const auto target = make_dir("target");
  EXPECT_THROW(ScopedMount::mount("none", target, "", MS_REMOUNT), Error);
}

TEST_F(MountTest, MoveTransfersOwnership) {
  const auto source = make_dir("source");
  const auto first = make_dir("first");
  const auto second = make_dir("second");
  ScopedMount owner = ScopedMount::bind(source, first);
  ScopedMount moved(std::move(owner));
  EXPECT_FALSE(owner.owns_mount());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  EXPECT_TRUE(is_mount_point(first));
  moved = ScopedMount::bind(source, second);  // assignment unmounts what it owned
  EXPECT_FALSE(is_mount_point(first));
  EXPECT_TRUE(is_mount_point(second));
}

TEST_F(MountTest, ReleaseKeepsTheMountAndAdoptTakesItBack) {
  const auto source = make_dir("source");
  const auto target = make_dir("target");
  fs::path released;
  {
    auto mount = ScopedMount::bind(source, target);
    released = mount.release();
  }
  EXPECT_EQ(released, target);
  EXPECT_TRUE(is_mount_point(target));
  { auto adopted = ScopedMount::adopt(target); }
  EXPECT_FALSE(is_mount_point(target));
  EXPECT_THROW(ScopedMount::adopt(target), Error);
}

TEST_F(MountTest, UnmountAllUnderHandlesNestingAndStacking) {
  const auto source = make_dir("source");
  const auto outer = make_dir("outer");
  auto base = ScopedMount::mount("tmpfs", outer, "tmpfs", 0);
  fs::create_directories(outer / "inner");
  auto inner = ScopedMount::bind(source, outer / "inner");
  auto stacked = ScopedMount::bind(source, outer / "inner");
  EXPECT_EQ(mount_points_under(dir_).size(), 3U);
  EXPECT_EQ(mount_points_under(dir_).front(), outer / "inner");
  EXPECT_EQ(mount_points_under(dir_).back(), outer);
  EXPECT_EQ(unmount_all_under(outer), 3U);
  EXPECT_TRUE(mount_points_under(dir_).empty());
  // The owners find their mounts gone and stay quiet.
}

TEST_F(MountTest, MountinfoEscapesAreDecoded) {
  const auto source = make_dir("source");
  const auto target = make_dir("with space\tand tab");
  auto mount = ScopedMount::bind(source, target);
  EXPECT_TRUE(is_mount_point(target));
  ASSERT_EQ(mount_points_under(dir_).size(), 1U);
  EXPECT_EQ(mount_points_under(dir_).front(), target);
}

// The property the shared directory relies on: a read-only bind made under a shared mount
// reaches the slave view (the one virtiofsd and QEMU serve) read-only as well.
TEST_F(MountTest, ReadOnlyBindPropagatesReadOnly) {
  const auto rw = make_dir("rw");
  const auto ro = make_dir("ro");
  const auto volume = make_dir("volume");
  write_file(volume / "data", "v");
  auto rw_mount = ScopedMount::bind(rw, rw, {.recursive = false});
  rw_mount.set_propagation(MS_PRIVATE);
  rw_mount.set_propagation(MS_SHARED);
  auto ro_mount = ScopedMount::bind(rw, ro, {.recursive = false});
  ro_mount.set_propagation(MS_SLAVE);

  fs::create_directories(rw / "shared-ro");
  fs::create_directories(rw / "shared-rw");
  auto read_only = ScopedMount::bind(volume, rw / "shared-ro", {.read_only = true});
  auto writable = ScopedMount::bind(volume, rw / "shared-rw");
  EXPECT_EQ(read_file(ro / "shared-ro" / "data"), "v");
  EXPECT_EQ(create_errno(ro / "shared-ro"), EROFS);
  EXPECT_EQ(create_errno(ro / "shared-rw"), 0);

  read_only.unmount();
  EXPECT_FALSE(is_mount_point(ro / "shared-ro"));  // the unmount propagated too
}

}  // namespace
}  // namespace kata
