// Host cgroups of a sandbox: parsing (mountinfo, cgroupsPath) without privileges, and real
// cgroups (root) under a unique test parent that every test removes again.
#include "kata/resource/cgroups/sandbox_cgroups.hpp"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "test_support.hpp"

namespace kata::resource::cgroups {
namespace {

namespace fs = std::filesystem;

TEST(CgroupHierarchies, HybridHostUsesEveryV1HierarchyOnce) {
  const fs::path dir = test::make_temp_dir("kata-cgroup-mountinfo");
  test::write_file(dir / "mountinfo",
                   "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                   "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
                   "32 30 0:29 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children\n"
                   "33 30 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
                   "34 30 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
                   "90 80 0:28 / /chroot/sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n");
  const auto hierarchies = detect_hierarchies(dir / "mountinfo");
  fs::remove_all(dir);
  ASSERT_EQ(hierarchies.size(), 3u);
  EXPECT_EQ(hierarchies[0].mount_point, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(hierarchies[0].controllers, "cpu");
  EXPECT_EQ(hierarchies[1].controllers, "cpuset");
  EXPECT_TRUE(hierarchies[1].is_cpuset());
  EXPECT_EQ(hierarchies[2].controllers, "name=systemd");
  for (const auto& h : hierarchies) EXPECT_FALSE(h.unified);
}

TEST(CgroupHierarchies, UnifiedHostUsesTheV2Hierarchy) {
  const fs::path dir = test::make_temp_dir("kata-cgroup-mountinfo");
  test::write_file(dir / "mountinfo", "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
  const auto hierarchies = detect_hierarchies(dir / "mountinfo");
  test::write_file(dir / "mountinfo", "22 1 0:21 / /proc rw - proc proc rw\n");
  try {
    (void)detect_hierarchies(dir / "mountinfo");
    ADD_FAILURE() << "a host without cgroups was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::failed_precondition);
    EXPECT_NE(describe(e).find("no cgroup filesystem"), std::string::npos) << describe(e);
  }
  fs::remove_all(dir);
  ASSERT_EQ(hierarchies.size(), 1u);
  EXPECT_TRUE(hierarchies[0].unified);
  EXPECT_EQ(hierarchies[0].mount_point, "/sys/fs/cgroup");
}

TEST(CgroupPath, CgroupfsPathsAreRelativeAndCheckedComponentWise) {
  EXPECT_EQ(relative_cgroup_path("/kubepods/besteffort/pod1/abc"), "kubepods/besteffort/pod1/abc");
  EXPECT_EQ(relative_cgroup_path("kata-lab/c1"), "kata-lab/c1");
  for (const char* bad : {"system.slice:containerd:abc", "/a/../b", "/", ""}) {
    try {
      (void)relative_cgroup_path(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      EXPECT_NE(describe(e).find(fmt::format("\"{}\"", bad)), std::string::npos) << describe(e);
    }
  }
}

/// Real cgroups: root and a cgroup filesystem are needed.
class SandboxCgroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    try {
      hierarchies_ = detect_hierarchies();
    } catch (const Error& e) {
      GTEST_SKIP() << "no cgroup filesystem to test on here: " << describe(e);
    }
    parent_ = fmt::format("kata-test-cgroups-{}", ::getpid());
  }
  void TearDown() override {
    // Whatever a failed test left: deepest first.
    for (const auto& h : hierarchies_) {
      const fs::path top = h.mount_point / parent_;
      std::vector<fs::path> dirs;
      std::error_code ec;
      if (!fs::exists(top, ec)) continue;
      dirs.push_back(top);
      for (const auto& entry : fs::recursive_directory_iterator(top, ec)) {
        if (entry.is_directory(ec)) dirs.push_back(entry.path());
      }
      for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::rmdir(it->c_str());
      ADD_FAILURE() << top << " was left behind";
    }
  }

  SandboxCgroupOptions options(bool sandbox_cgroup_only) {
    SandboxCgroupOptions o;
    o.sandbox_id = "sb-" + std::to_string(::getpid());
    o.cgroups_path = "/" + parent_ + "/pod/sandbox";
    o.sandbox_cgroup_only = sandbox_cgroup_only;
    o.hierarchies = hierarchies_;
    return o;
  }

  std::vector<Hierarchy> hierarchies_;
  std::string parent_;
};

TEST_F(SandboxCgroupsTest, SandboxCgroupOnlyHoldsTheShimAndIsRemovedWithIt) {
  const std::string self_before = test::read_file("/proc/self/cgroup");
  {
    SandboxCgroups cgroups = SandboxCgroups::create(options(true));
    EXPECT_EQ(cgroups.path(), fs::path(parent_) / "pod" / "sandbox");
    EXPECT_TRUE(cgroups.overhead_path().empty());
    EXPECT_EQ(cgroups.created_directories().size(), 3 * hierarchies_.size());
    for (const auto& h : hierarchies_) {
      EXPECT_TRUE(fs::is_directory(h.mount_point / cgroups.path())) << h.mount_point;
      if (h.is_cpuset()) {
        EXPECT_FALSE(test::read_file(h.mount_point / cgroups.path() / "cpuset.cpus").empty());
      }
    }
    cgroups.add_process(::getpid());
    const std::string self = test::read_file("/proc/self/cgroup");
    EXPECT_NE(self.find("/" + cgroups.path().string() + "\n"), std::string::npos) << self;
    // A child started now is born in the sandbox cgroup (how virtiofsd and the VMM get there).
    const pid_t child = ::fork();
    if (child == 0) {
      ::pause();
      ::_exit(0);
    }
    EXPECT_NE(test::read_file(fmt::format("/proc/{}/cgroup", child)).find(cgroups.path().string()), std::string::npos);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  }
  EXPECT_EQ(test::read_file("/proc/self/cgroup"), self_before);
  for (const auto& h : hierarchies_) EXPECT_FALSE(fs::exists(h.mount_point / parent_)) << h.mount_point;
}

TEST_F(SandboxCgroupsTest, WithoutSandboxCgroupOnlyTheShimGoesToTheOverheadCgroupAndVcpusToThePod) {
  const std::string self_before = test::read_file("/proc/self/cgroup");
  SandboxCgroups cgroups = SandboxCgroups::create(options(false));
  const fs::path overhead = fs::path("kata_overhead") / ("sb-" + std::to_string(::getpid()));
  EXPECT_EQ(cgroups.overhead_path(), overhead);
  cgroups.add_process(::getpid());
  EXPECT_NE(test::read_file("/proc/self/cgroup").find("/" + overhead.string() + "\n"), std::string::npos);

  // A thread standing in for a vCPU.
  std::atomic<pid_t> tid{0};
  std::atomic<bool> stop{false};
  std::thread vcpu([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  while (tid == 0) std::this_thread::yield();
  cgroups.add_vcpu_threads({tid.load()});
  const std::string thread_cgroups = test::read_file(fmt::format("/proc/self/task/{}/cgroup", tid.load()));
  if (!hierarchies_.front().unified) {
    EXPECT_NE(thread_cgroups.find("/" + cgroups.path().string() + "\n"), std::string::npos) << thread_cgroups;
  }
  stop = true;
  vcpu.join();

  const auto created = cgroups.created_directories();
  cgroups.remove();
  cgroups.remove();  // idempotent
  EXPECT_EQ(test::read_file("/proc/self/cgroup"), self_before);
  for (const auto& dir : created) EXPECT_FALSE(fs::exists(dir)) << dir;
  // kata_overhead itself may be shared with real sandboxes; it stays only if something else uses it.
  for (const auto& h : hierarchies_) EXPECT_FALSE(fs::exists(h.mount_point / overhead));
}

TEST_F(SandboxCgroupsTest, AParentThatCannotBeCreatedFailsAndLeavesNothing) {
  SandboxCgroupOptions o = options(true);
  // cgroup.procs is a file in every cgroup: no directory can be made below it.
  o.cgroups_path = "/" + parent_ + "/cgroup.procs/sandbox";
  try {
    (void)SandboxCgroups::create(std::move(o));
    ADD_FAILURE() << "a cgroup below a file was created";
  } catch (const Error& e) {
    EXPECT_NE(describe(e).find("create cgroup " + (hierarchies_.front().mount_point / parent_ / "cgroup.procs").string()),
              std::string::npos)
        << describe(e);
  }
  for (const auto& h : hierarchies_) EXPECT_FALSE(fs::exists(h.mount_point / parent_)) << h.mount_point;
}

TEST_F(SandboxCgroupsTest, DeleteAfterADeadShimRemovesRecordedDirectoriesOnly) {
  // A shim that dies without running a destructor: a child creates the cgroups, reports the
  // directories it made (as state.json records them) and exits at once.
  const fs::path report = test::make_temp_dir("kata-cgroup-report") / "dirs";
  const pid_t child = ::fork();
  if (child == 0) {
    SandboxCgroups cgroups = SandboxCgroups::create(options(true));
    cgroups.add_process(::getpid());
    std::ofstream out(report);
    for (const auto& dir : cgroups.created_directories()) out << dir.string() << "\n";
    out.close();
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::vector<fs::path> recorded;
  {
    std::ifstream in(report);
    std::string line;
    while (std::getline(in, line)) recorded.emplace_back(line);
  }
  fs::remove_all(report.parent_path());
  ASSERT_EQ(recorded.size(), 3 * hierarchies_.size());
  for (const auto& dir : recorded) ASSERT_TRUE(fs::is_directory(dir)) << dir;
  // Another pod's cgroup under the shared parent: the parent stays, and that is no failure.
  std::vector<fs::path> other_pods;
  for (const auto& h : hierarchies_) {
    other_pods.push_back(h.mount_point / parent_ / "other-pod");
    ASSERT_TRUE(fs::create_directory(other_pods.back())) << other_pods.back();
  }
  const fs::path not_cgroup = test::make_temp_dir("kata-not-a-cgroup");
  std::vector<fs::path> with_stranger = recorded;
  with_stranger.push_back(not_cgroup);
  const auto left = remove_cgroup_directories(with_stranger, std::chrono::milliseconds(500));
  EXPECT_EQ(left, std::vector<fs::path>{not_cgroup});
  EXPECT_TRUE(fs::exists(not_cgroup));
  fs::remove_all(not_cgroup);
  for (const auto& dir : recorded) {
    const bool shared_parent = dir.filename() == parent_;
    EXPECT_EQ(fs::exists(dir), shared_parent) << dir;
  }
  for (const auto& other : other_pods) {
    EXPECT_EQ(::rmdir(other.c_str()), 0) << other;
    EXPECT_EQ(::rmdir(other.parent_path().c_str()), 0) << other.parent_path();
  }
}

}  // namespace
}  // namespace kata::resource::cgroups
