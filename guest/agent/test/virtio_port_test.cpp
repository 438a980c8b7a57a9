#include "kata/agent_guest/virtio_port.hpp"

#include <fcntl.h>
#include <stdlib.h>

#include <fstream>

#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

using namespace std::chrono_literals;

struct FakeSysfs : ::testing::Test {
  void SetUp() override {
    char dir[] = "/tmp/kata-test-vport.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    root = dir;
    add_port("vport0p0", "");  // port 0 of a virtio-console device has no name
    add_port("vport1p1", "agent.log.0");
    add_port("vport1p2", "agent.channel.0");
  }
  void TearDown() override { std::filesystem::remove_all(root); }
  void add_port(const std::string& device, const std::string& name) {
    std::filesystem::create_directories(root / "sys" / device);
    std::ofstream(root / "sys" / device / "name") << name << "\n";
  }
  std::filesystem::path root;
};

TEST_F(FakeSysfs, FindsThePortByName) {
  EXPECT_EQ(find_virtio_port("agent.channel.0", root / "sys", "/dev"), std::filesystem::path("/dev/vport1p2"));
  EXPECT_EQ(find_virtio_port("agent.log.0", root / "sys", "/dev"), std::filesystem::path("/dev/vport1p1"));
  EXPECT_EQ(find_virtio_port("agent.channel.1", root / "sys", "/dev"), std::nullopt);
  EXPECT_EQ(find_virtio_port("agent.channel.0", root / "missing", "/dev"), std::nullopt);
}

TEST_F(FakeSysfs, WaitingForAMissingPortTimesOutWithItsName) {
  try {
    (void)wait_for_virtio_port("agent.channel.9", 50ms, root / "sys", root / "dev");
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(code_of(e), Errc::not_found);
    EXPECT_NE(describe(e).find("'agent.channel.9'"), std::string::npos) << describe(e);
  }
}

TEST_F(FakeSysfs, WaitingReturnsOnceTheDeviceNodeExists) {
  std::filesystem::create_directories(root / "dev");
  std::ofstream(root / "dev" / "vport1p2") << "";
  EXPECT_EQ(wait_for_virtio_port("agent.channel.0", 1s, root / "sys", root / "dev"), root / "dev" / "vport1p2");
}

// A pty slave behaves like a port: POLLHUP while its other end (the "host") is gone.
TEST(VirtioPortSemantics, HostConnectedFollowsPollHup) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_TRUE(master);
  ASSERT_EQ(::grantpt(master.get()), 0);
  ASSERT_EQ(::unlockpt(master.get()), 0);
  const std::string slave = ::ptsname(master.get());
  const VirtioPort port = VirtioPort::open(slave);
  EXPECT_EQ(port.device(), std::filesystem::path(slave));
  EXPECT_TRUE(port.host_connected());
  EXPECT_TRUE(port.wait_for_host(0ms));
  master.reset();
  EXPECT_FALSE(port.host_connected());
  EXPECT_FALSE(port.wait_for_host(50ms));
}

TEST(VirtioPortSemantics, OpeningAMissingDeviceNamesIt) {
  try {
    (void)VirtioPort::open("/dev/vport9p9-missing");
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "open virtio-serial port /dev/vport9p9-missing: No such file or directory");
  }
}

}  // namespace
}  // namespace kata::agent_guest
