#include "kata/agent_guest/hotplug.hpp"

#include <stdlib.h>

#include <fstream>

#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

using namespace std::chrono_literals;

struct FakeSysfsDevices : ::testing::Test {
  void SetUp() override {
    char dir[] = "/tmp/kata-test-hotplug.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    root = dir;
  }
  void TearDown() override { std::filesystem::remove_all(root); }
  void file(const std::filesystem::path& relative, const std::string& content) {
    std::filesystem::create_directories((root / relative).parent_path());
    std::ofstream(root / relative) << content << "\n";
  }
  std::string read(const std::filesystem::path& relative) {
    std::ifstream in(root / relative);
    std::string line;
    std::getline(in, line);
    return line;
  }
  std::filesystem::path root;
};

TEST_F(FakeSysfsDevices, OnlinesAsManyOfflineCpusAsAsked) {
  std::filesystem::create_directories(root / "cpu/cpu0");  // boot CPU: no online file
  file("cpu/cpu1/online", "1");
  file("cpu/cpu2/online", "0");
  file("cpu/cpu3/online", "0");
  file("cpu/cpufreq/online", "0");  // not a cpuN directory
  EXPECT_EQ(online_cpus(1, 1s, root / "cpu"), 1u);
  EXPECT_EQ((read("cpu/cpu2/online") == "1") + (read("cpu/cpu3/online") == "1"), 1);
  EXPECT_EQ(online_cpus(1, 1s, root / "cpu"), 1u);
  EXPECT_EQ(read("cpu/cpu2/online"), "1");
  EXPECT_EQ(read("cpu/cpu3/online"), "1");
  EXPECT_EQ(read("cpu/cpufreq/online"), "0");
}

TEST_F(FakeSysfsDevices, WaitsForCpusThatAppearLaterAndTimesOutWithCounts) {
  file("cpu/cpu1/online", "0");
  try {
    (void)online_cpus(2, 100ms, root / "cpu");
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "onlined 1 of 2 CPUs within 100 ms");
    EXPECT_EQ(code_of(e), Errc::deadline_exceeded);
  }
}

TEST_F(FakeSysfsDevices, OnlinesOfflineMemoryBlocks) {
  file("memory/memory0/state", "online");
  file("memory/memory8/state", "offline");
  file("memory/memory9/state", "offline");
  file("memory/auto_online_blocks", "offline");
  EXPECT_EQ(online_memory(root / "memory"), 2u);
  EXPECT_EQ(read("memory/memory8/state"), "online");
  EXPECT_EQ(read("memory/memory9/state"), "online");
  EXPECT_EQ(online_memory(root / "memory"), 0u);
}

}  // namespace
}  // namespace kata::agent_guest
