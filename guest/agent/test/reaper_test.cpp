#include "kata/agent_guest/reaper.hpp"

#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include "container_fixture.hpp"
#include "kata/agent_guest/system_init.hpp"

namespace kata::agent_guest {
namespace {

using namespace std::chrono_literals;

TEST(ExitStateTest, CallbackRunsOnceWhetherSetBeforeOrAfterTheExit) {
  ExitState before;
  int calls = 0;
  before.on_exit([&](ExitStatus s) { calls += s.exit_code; });
  before.complete(ExitStatus{3, 0});
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(before.wait_blocking(), (ExitStatus{3, 0}));

  ExitState after;
  after.complete(ExitStatus{0, 9});
  after.on_exit([&](ExitStatus s) { calls += s.signal; });
  EXPECT_EQ(calls, 12);
  EXPECT_EQ(after.wait_for(0ms), (ExitStatus{0, 9}));
}

// Orphans of our processes come back to us (as to PID 1 in the guest) and are reaped, while
// the exit of the process we started still goes to its owner.
using ReaperTest = test::BusyboxRootfs;

TEST_F(ReaperTest, OrphansAreReapedAndOwnedExitsDelivered) {
  become_subreaper();
  const std::uint64_t before = Reaper::instance().orphans_reaped();
  SpawnRequest request = container({"sh", "-c", "sleep 0.2 & exit 4"});
  request.namespaces = {{CLONE_NEWNS, {}}, {CLONE_NEWUTS, {}}};  // same pid namespace: the orphan is ours
  ContainerProcess p = ContainerProcess::spawn(request);
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{4, 0}));
  for (int i = 0; i < 1000 && Reaper::instance().orphans_reaped() == before; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GT(Reaper::instance().orphans_reaped(), before);
}

}  // namespace
}  // namespace kata::agent_guest
