#include "kata/agent_guest/cgroup.hpp"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "container_fixture.hpp"
#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

TEST(CpuShares, MapOntoWeightLikeRunc) {
  EXPECT_EQ(cpu_shares_to_weight(2), 1u);
  EXPECT_EQ(cpu_shares_to_weight(1024), 39u);
  EXPECT_EQ(cpu_shares_to_weight(262144), 10000u);
  EXPECT_EQ(cpu_shares_to_weight(1), 1u);  // clamped
  EXPECT_EQ(cpu_shares_to_weight(0), 100u);
}

// Container processes in a throwaway cgroup under the host's cgroup2 mount. On a hybrid host the
// v2 tree has no cpu/memory controllers, so limits are tested in the VM (boot smoke) and here
// only the core files: procs, freeze, kill, cpu.stat.
struct CgroupTest : test::BusyboxRootfs {
  void SetUp() override {
    BusyboxRootfs::SetUp();
    if (IsSkipped()) return;
    const auto mount = find_cgroup2_mount();
    if (!mount) GTEST_SKIP() << "no cgroup2 mount";
    top = Cgroup::create(*mount, "kata-test-" + std::to_string(::getpid()));
  }
  Cgroup top;
};

TEST_F(CgroupTest, CreatesNestedCgroupsAndRemovesThemWithTheirProcesses) {
  std::filesystem::path path;
  {
    Cgroup group = Cgroup::create(top.path(), "pod/ctr");
    path = group.path();
    ASSERT_TRUE(std::filesystem::exists(path / "cgroup.procs"));
    SpawnRequest request = container({"sleep", "100"});
    request.cgroup = path;
    ContainerProcess p = ContainerProcess::spawn(request);
    EXPECT_EQ(group.processes(), std::vector<pid_t>{p.pid()});
    EXPECT_THROW(Cgroup::create(top.path(), "pod/ctr"), Error);
  }  // the cgroup goes first (killing the sleeper), then the process object finds it reaped
  EXPECT_FALSE(std::filesystem::exists(path));
  std::filesystem::remove(top.path() / "pod");
}

TEST_F(CgroupTest, FreezesAndThawsItsProcesses) {
  Cgroup group = Cgroup::create(top.path(), "frozen");
  SpawnRequest request = container({"sh", "-c", "read line; echo got:$line"});
  request.cgroup = group.path();
  ContainerProcess p = ContainerProcess::spawn(request);
  group.freeze();
  EXPECT_TRUE(group.frozen());
  ASSERT_EQ(::write(p.stdin_writer.get(), "hi\n", 3), 3);
  pollfd out{p.stdout_reader.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&out, 1, 300), 0);  // frozen: no answer
  group.thaw();
  EXPECT_FALSE(group.frozen());
  EXPECT_EQ(test::read_all(p.stdout_reader.get()), "got:hi\n");
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
}

TEST_F(CgroupTest, KillEndsEveryMemberAndStatsCountCpu) {
  Cgroup group = Cgroup::create(top.path(), "busy");
  SpawnRequest request = container({"sh", "-c", "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo done; exec sleep 100"});
  request.cgroup = group.path();
  ContainerProcess p = ContainerProcess::spawn(request);
  char c;
  ASSERT_EQ(::read(p.stdout_reader.get(), &c, 1), 1);
  EXPECT_GT(group.stats().cpu_usage_usec, 0u);
  group.kill();
  EXPECT_EQ(p.exit_state()->wait_blocking().signal, SIGKILL);
}

TEST_F(CgroupTest, LimitWithoutItsControllerNamesIt) {
  Cgroup group = Cgroup::create(top.path(), "limits");
  if (std::filesystem::exists(group.path() / "memory.max")) GTEST_SKIP() << "memory controller present on v2 here";
  try {
    group.apply(CgroupResources{.memory_limit = 64 << 20});
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(code_of(e), Errc::not_supported);
    EXPECT_NE(describe(e).find("memory.max needs the memory controller"), std::string::npos) << describe(e);
  }
  EXPECT_NO_THROW(group.apply(CgroupResources{}));
}

TEST(CgroupName, RejectsEscapes) {
  EXPECT_THROW(Cgroup::create("/sys/fs/cgroup", "../x"), Error);
  EXPECT_THROW(Cgroup::create("/sys/fs/cgroup", "/abs"), Error);
}

}  // namespace
}  // namespace kata::agent_guest
