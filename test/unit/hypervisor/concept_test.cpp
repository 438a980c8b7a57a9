// The Hypervisor concept rejects incomplete backends at compile time. Each static_assert below
// fails the *build* if the concept regresses; the runtime tests check the fake's semantics that
// sandbox tests rely on.
#include <gtest/gtest.h>

#include "mocks/fake_hypervisor.hpp"
#include "kata/hypervisor/capabilities.hpp"
#include "kata/hypervisor/hypervisor.hpp"

namespace kata::hypervisor {
namespace {

using testing::FakeHypervisor;

static_assert(Hypervisor<FakeHypervisor>, "the test fake must model the concept it stands in for");

// A backend that forgot one operation (resize_memory) is not a Hypervisor.
struct MissingResizeMemory : FakeHypervisor {
  using FakeHypervisor::FakeHypervisor;
  void resize_memory(std::uint32_t) = delete;
};
static_assert(!Hypervisor<MissingResizeMemory>);

// An operation with the wrong shape (blocking instead of a coroutine) is rejected too.
struct BlockingStop : FakeHypervisor {
  using FakeHypervisor::FakeHypervisor;
  void stop_vm() {}
};
static_assert(!Hypervisor<BlockingStop>);

// Capabilities must be a Hana set, not an ad-hoc flag word.
struct BitmaskCapabilities : FakeHypervisor {
  using FakeHypervisor::FakeHypervisor;
  static constexpr unsigned capabilities = 0x3;
};
static_assert(!Hypervisor<BitmaskCapabilities>);

// Not constructible from (Executor, VmContext): rejected.
struct NoContextConstructor : FakeHypervisor {
  NoContextConstructor() : FakeHypervisor(Executor{}, VmContext{}) {}
};
static_assert(!Hypervisor<NoContextConstructor>);

static_assert(supports<FakeHypervisor, capability::cpu_hotplug>);
static_assert(!supports<FakeHypervisor, capability::memory_hotplug>);

TEST(Capabilities, NamesAreListedForTools) {
  const auto names = capability_names<FakeHypervisor>();
  EXPECT_EQ(names.size(), 5u);
  EXPECT_NE(std::find(names.begin(), names.end(), "cpu_hotplug"), names.end());
}

TEST(AgentAddress, UrlsMatchUpstreamSchemes) {
  EXPECT_EQ(to_url(VsockAddress{3, 1024}), "vsock://3:1024");
  EXPECT_EQ(to_url(HybridVsockAddress{"/run/kata/s/root/kata.hvsock", 1024}), "hvsock:///run/kata/s/root/kata.hvsock:1024");
  EXPECT_EQ(to_url(SerialPortAddress{"/run/kata/s/agent.sock"}), "serial:///run/kata/s/agent.sock");
}

TEST(FakeHypervisor, ColdPlugThenHotplugOnlyWhereSupported) {
  asio::io_context io;
  FakeHypervisor vm(io.get_executor(), VmContext{.sandbox_id = "s1"});
  auto scenario = [&]() -> Task<void> {
    // Aggregates are named before being passed: GCC 12 destroys a brace-initialised temporary
    // twice when it appears inside a co_await expression (docs/architecture.md, compiler notes).
    Device rootfs = BlockDevice{.id = "rootfs"};
    Device vol1 = BlockDevice{.id = "vol1"};
    Device vol1_again = BlockDevice{.id = "vol1"};
    Device late_share = ShareFsDevice{.mount_tag = "late"};
    co_await vm.add_device(std::move(rootfs));
    co_await vm.start_vm(std::chrono::seconds(1));
    co_await vm.add_device(std::move(vol1));
    EXPECT_THROW(co_await vm.add_device(std::move(vol1_again)), Error);
    try {
      co_await vm.add_device(std::move(late_share));
      ADD_FAILURE() << "hotplugging a share fs must be refused";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::not_supported);
    }
    co_await vm.stop_vm();
    co_await vm.stop_vm();
    EXPECT_EQ((co_await vm.wait_vm()).as_exit_code(), 137);
  };
  asio::co_spawn(io, scenario, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
  io.run();
  EXPECT_EQ(vm.cold_plugged, (std::vector<std::string>{"rootfs"}));
  EXPECT_EQ(vm.hot_plugged, (std::vector<std::string>{"vol1"}));
  EXPECT_EQ(vm.stop_calls, 2);
}

}  // namespace
}  // namespace kata::hypervisor
