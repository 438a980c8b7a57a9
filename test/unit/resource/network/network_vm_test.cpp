// NIC hotplug end to end (label vm): a real QEMU with the guest image and agent runs in a pod
// namespace; the namespace's veth is attached while the VM runs (QMP getfd + netdev_add +
// device_add), the agent configures the guest, and a ping from the veth's far end (another
// namespace, the "host") is answered by the guest kernel. Then the NIC is hot-unplugged and the
// plumbing removed: the namespace is as it was.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/agent/kata_agent.hpp"
#include "kata/hypervisor/qemu/qemu.hpp"
#include "kata/resource/network/network.hpp"
#include "support/async_test.hpp"
#include "unit/resource/network/netns_fixture.hpp"

namespace kata::resource::network {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using test::ScratchNetns;

TEST(NetworkVm, HotplugIntoARunningVmReachesTheGuestAndUnplugLeavesNothing) {
  KATA_REQUIRE_NETWORK_TESTS();
  const std::filesystem::path image = KATA_GUEST_IMAGE_DIR;
  if (!std::filesystem::exists(image / "kata-containers-initrd.img")) GTEST_SKIP() << "no guest image in " << image;

  ScratchNetns pod;
  ScratchNetns outside;
  pod.sh(fmt::format("ip link add eth0 type veth peer name host0 netns {} && ip link set eth0 address 02:00:00:00:4d:02 && "
                     "ip addr add 10.77.0.2/24 dev eth0 && ip link set eth0 up",
                     outside.path().string()));
  outside.sh("ip addr add 10.77.0.1/24 dev host0 && ip link set host0 up");
  const std::string before = pod.snapshot();

  kata::testing::TempDir state("net-vm");
  hypervisor::VmContext context;
  context.sandbox_id = "net-hotplug";
  context.state_dir = state.path();
  context.network_namespace = pod.path();
  context.config.path = KATA_TEST_QEMU;
  context.config.boot.kernel = (image / "vmlinux.container").string();
  context.config.boot.initrd = (image / "kata-containers-initrd.img").string();
  context.config.cpu.default_vcpus = 1;
  context.config.cpu.default_maxvcpus = 1;
  context.config.memory.default_memory = 512;
  context.config.memory.default_maxmemory = 1024;

  asio::io_context io;
  hypervisor::qemu::Qemu vm(io.get_executor(), context);
  kata::testing::run_until_done(io, vm.prepare_vm());
  kata::testing::run_until_done(io, vm.start_vm(120s));
  const auto console = [&] {
    std::ifstream in(state.path() / "console.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto connect = [&]() -> Task<std::unique_ptr<agent::KataAgent>> {
    const agent::AgentTimeouts timeouts;
    auto connected = co_await agent::KataAgent::connect<agent::SerialPortTransport>(
        io.get_executor(), vm.agent_address(), timeouts, std::chrono::steady_clock::now() + 240s);
    co_return std::make_unique<agent::KataAgent>(std::move(connected));
  };
  const std::unique_ptr<agent::KataAgent> agent = kata::testing::run_until_done(io, connect());

  NetworkOptions options;
  options.sandbox_id = "net-hotplug";
  options.netns = pod.path();
  PodNetwork network = PodNetwork::scan(options);
  ASSERT_EQ(network.endpoints().size(), 1U);
  kata::testing::run_until_done(io, attach(network, vm));  // the VM runs: hotplug
  const auto interfaces = network.guest_interfaces();
  ASSERT_EQ(interfaces.size(), 1U);
  EXPECT_THAT(interfaces[0].devicepath(), HasSubstr("/00")) << "behind a PCIe root port";
  kata::testing::run_until_done(io, configure_guest(network, *agent, GuestRetry{100, 100ms}));

  EXPECT_TRUE(outside.try_sh("busybox ping -c 3 -W 5 10.77.0.2")) << "the guest answers through the hotplugged NIC\n"
                                                                  << console();

  kata::testing::run_until_done(io, vm.remove_device("tap0_kata"));  // device_del, DEVICE_DELETED, netdev_del
  network.teardown();
  EXPECT_EQ(pod.snapshot(), before) << "no tap, qdisc or filter left";
  // eth0 itself would answer for 10.77.0.2 now that nothing redirects it; without its address
  // nothing may answer, which a redirect left behind to the guest would.
  pod.sh("ip addr flush dev eth0");
  EXPECT_FALSE(outside.try_sh("busybox ping -c 1 -W 2 10.77.0.2")) << "the guest is unreachable once unplugged";

  agent->close();
  kata::testing::run_until_done(io, vm.stop_vm());
  kata::testing::run_until_done(io, vm.cleanup());
}

}  // namespace
}  // namespace kata::resource::network
