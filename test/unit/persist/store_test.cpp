#include "kata/persist/store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "kata/persist/file.hpp"

namespace kata::persist {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kata-test-persist-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    base_ = pattern;
  }
  void TearDown() override {
    ::chmod(base_.c_str(), 0700);
    fs::remove_all(base_);
  }

  static void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

  fs::path base_;
};

SandboxState state_with_vmm(int pid) {
  SandboxState s;
  s.hypervisor.hypervisor_type = "qemu";
  s.hypervisor.id = "sb-1";
  s.hypervisor.pid = pid;
  s.cleanup.processes = {{"vmm", pid, 12345}};
  return s;
}

TEST_F(StoreTest, SaveThenLoadRoundTrips) {
  const Store store(base_ / "run" / "kata");  // root created on demand, parents too
  store.save("sb-1", state_with_vmm(100));
  const auto loaded = store.load("sb-1");
  ASSERT_TRUE(loaded);
  EXPECT_TRUE(loaded->warnings.empty());
  EXPECT_EQ(loaded->state, state_with_vmm(100));
  struct stat st{};
  ASSERT_EQ(::stat(store.state_path("sb-1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  ASSERT_EQ(::stat(store.sandbox_dir("sb-1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0750U);
}

TEST_F(StoreTest, SaveReplacesAndLeavesNoTemporaryFile) {
  const Store store(base_);
  store.save("sb-1", state_with_vmm(100));
  store.save("sb-1", state_with_vmm(200));
  EXPECT_EQ(store.load("sb-1")->state.hypervisor.pid, 200);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(store.sandbox_dir("sb-1"))) names.push_back(entry.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"state.json"});
}

TEST_F(StoreTest, CrashBetweenTemporaryWriteAndRenameKeepsOldState) {
  const Store store(base_);
  store.save("sb-1", state_with_vmm(100));
  // What a crash after writing the temporary file and before rename(2) leaves behind.
  write_text(store.sandbox_dir("sb-1") / ".state.json.tmp-Ab12Cd", R"({"sandbox_type": "virt_cont)");
  const auto loaded = store.load("sb-1");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->state, state_with_vmm(100));
  store.save("sb-1", state_with_vmm(300));  // the next save is not disturbed by the leftover
  EXPECT_EQ(store.load("sb-1")->state.hypervisor.pid, 300);
}

TEST_F(StoreTest, FailedWriteKeepsOldFileAndCleansUp) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const Store store(base_);
  store.save("sb-1", state_with_vmm(100));
  ASSERT_EQ(::chmod(store.sandbox_dir("sb-1").c_str(), 0500), 0);
  EXPECT_THROW(store.save("sb-1", state_with_vmm(200)), Error);
  ASSERT_EQ(::chmod(store.sandbox_dir("sb-1").c_str(), 0700), 0);
  EXPECT_EQ(store.load("sb-1")->state.hypervisor.pid, 100);
}

TEST_F(StoreTest, MissingStateIsNotAnError) {
  const Store store(base_);
  EXPECT_EQ(store.load("never-created"), std::nullopt);
  store.create_sandbox_dir("sb-empty");
  EXPECT_EQ(store.load("sb-empty"), std::nullopt);
}

TEST_F(StoreTest, PartialStateLoadsWithWarnings) {
  const Store store(base_);
  write_text(store.create_sandbox_dir("sb-3") / "state.json",
             R"({"hypervisor": {"hypervisor_type": "qemu", "pid": "x"}})");
  const auto loaded = store.load("sb-3");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->state.hypervisor.hypervisor_type, "qemu");
  ASSERT_EQ(loaded->warnings.size(), 1U);
  EXPECT_THAT(loaded->warnings[0], HasSubstr("state.json: hypervisor.pid: expected an integer"));
}

TEST_F(StoreTest, TruncatedJsonIsDataLoss) {
  const Store store(base_);
  write_text(store.create_sandbox_dir("sb-4") / "state.json", R"({"sandbox_type": "virt_con)");
  try {
    (void)store.load("sb-4");
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::data_loss);
    EXPECT_THAT(e.what(), HasSubstr("sb-4/state.json: not valid JSON"));
  }
}

TEST_F(StoreTest, InvalidIdsNeverTouchTheFilesystem) {
  const Store store(base_ / "root");
  for (const char* id : {"..", "../escape", "a/b", ".hidden", "", "x"}) {
    EXPECT_THROW((void)store.sandbox_dir(id), Error) << id;
    EXPECT_THROW(store.save(id, SandboxState{}), Error) << id;
    EXPECT_THROW((void)store.load(id), Error) << id;
    EXPECT_THROW((void)store.remove(id), Error) << id;
  }
  EXPECT_FALSE(fs::exists(base_ / "root"));
  try {
    (void)store.sandbox_dir("../escape");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_EQ(describe(e), "sandbox id: invalid ID \"../escape\": must be 2 or more of [a-zA-Z0-9_.-] starting with a letter or digit");
  }
}

TEST_F(StoreTest, RemoveIsRecursiveAndIdempotent) {
  const Store store(base_);
  store.save("sb-1", state_with_vmm(1));
  fs::create_directories(store.sandbox_dir("sb-1") / "root" / "deep");
  write_text(store.sandbox_dir("sb-1") / "root" / "deep" / "console.sock", "");
  // A symlink inside must be removed, not followed.
  const fs::path outside = base_ / "outside";
  fs::create_directory(outside);
  write_text(outside / "keep", "precious");
  fs::create_directory_symlink(outside, store.sandbox_dir("sb-1") / "link");
  EXPECT_TRUE(store.remove("sb-1"));
  EXPECT_FALSE(fs::exists(store.sandbox_dir("sb-1")));
  EXPECT_TRUE(fs::exists(outside / "keep"));
  EXPECT_FALSE(store.remove("sb-1"));
  EXPECT_FALSE(store.remove("never-existed"));
}

TEST(AtomicFile, WritesContentAndMode) {
  std::string pattern = (fs::temp_directory_path() / "kata-test-atomic-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path file = fs::path(pattern) / "address";
  write_file_atomic(file, "unix:///run/containerd/s/abc", 0644);
  EXPECT_EQ(read_file_if_exists(file), "unix:///run/containerd/s/abc");
  struct stat st{};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644U);
  EXPECT_EQ(read_file_if_exists(fs::path(pattern) / "missing"), std::nullopt);
  EXPECT_THROW(write_file_atomic(fs::path(pattern) / "no-dir" / "f", "x"), Error);
  // rename(2) over a directory fails (EISDIR) even for root: the temporary file must go away.
  fs::create_directory(fs::path(pattern) / "occupied");
  EXPECT_THROW(write_file_atomic(fs::path(pattern) / "occupied", "x"), Error);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(pattern)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"address", "occupied"}));
  fs::remove_all(pattern);
}

}  // namespace
}  // namespace kata::persist
