// Dynamic sizing: the demand arithmetic (upstream cpu.rs's test table and more) and the policy
// that turns it into hotplug requests, against the fake hypervisor and a recording agent.
#include "kata/resource/cpu_mem/dynamic_resources.hpp"

#include <cmath>

#include <gtest/gtest.h>

#include "mocks/fake_hypervisor.hpp"
#include "test_support.hpp"

namespace kata::resource::cpu_mem {
namespace {

oci::Resources cpu_limit(std::int64_t quota, std::uint64_t period) {
  oci::Resources resources;
  resources.cpu.emplace();
  resources.cpu->quota = quota;
  resources.cpu->period = period;
  return resources;
}

oci::Resources cpuset_limit(std::string cpus) {
  oci::Resources resources;
  resources.cpu.emplace();
  resources.cpu->cpus = std::move(cpus);
  return resources;
}

oci::Resources memory_limit(std::int64_t bytes) {
  oci::Resources resources;
  resources.memory.emplace();
  resources.memory->limit = bytes;
  return resources;
}

constexpr std::int64_t mib = 1024 * 1024;

SandboxDemand demand_of(double default_vcpus, const std::vector<std::pair<std::int64_t, std::uint64_t>>& quotas) {
  SandboxDemand demand(default_vcpus, 256);
  int i = 0;
  for (const auto& [quota, period] : quotas) demand.apply(std::to_string(i++), ResourceOp::add, cpu_limit(quota, period));
  return demand;
}

// --- SandboxDemand: upstream's cases (runtime-rs-facts §1.6, cpu.rs tests) ---------------------

TEST(SandboxDemand, NoContainersIsTheDefault) {
  EXPECT_EQ(SandboxDemand(0.75, 256).vcpus(), 0.75);
  EXPECT_EQ(SandboxDemand(0.75, 256).memory_mib(), 256u);
}

TEST(SandboxDemand, TenTenthsMakeOneVcpu) {
  const std::vector<std::pair<std::int64_t, std::uint64_t>> tenths(10, {100'000, 1'000'000});
  EXPECT_EQ(demand_of(0.0, tenths).vcpus(), 1.0);
  EXPECT_EQ(required_vcpus(demand_of(0.0, tenths).vcpus()), 1u);
}

TEST(SandboxDemand, BigAllocations) {
  EXPECT_NEAR(demand_of(10.0, {{32'000'000, 1'000'000}, {32'000'000, 1'000'000}, {64'000'000, 1'000'000}}).vcpus(), 138.0, 1e-4);
  EXPECT_NEAR(demand_of(10.0, {{33'000'000, 1'000'000}, {31'000'000, 1'000'000}, {77'000'011, 1'000'000}}).vcpus(), 151.0, 1e-4);
  EXPECT_NEAR(demand_of(10.0, {{141'000'008, 1'000'000}}).vcpus(), 151.0, 1e-4);
  EXPECT_NEAR(demand_of(10.0, std::vector<std::pair<std::int64_t, std::uint64_t>>(4, {17'000'001, 1'000'000})).vcpus(),
              78.0, 1e-4);
  // 141.000008 + 10 needs 152 vCPUs: the fraction is not lost.
  EXPECT_EQ(required_vcpus(demand_of(10.0, {{141'000'008, 1'000'000}}).vcpus()), 152u);
}

TEST(SandboxDemand, QuotasOverDifferentPeriodsAreNormalisedToTheLargest) {
  EXPECT_EQ(demand_of(3.0, {{1'000'000, 1'000'000}, {1'000'000, 500'000}}).vcpus(), 6.0);
  EXPECT_EQ(demand_of(3.0, {{3'000'000, 1'500'000}, {1'000'000, 500'000}}).vcpus(), 7.0);
  EXPECT_NEAR(demand_of(1.0, {{1'000'000, 1'000'000}, {900'000, 300'000}}).vcpus(), 5.0, 1e-4);
  const double expected = (1'000'000.0 + 900'000.0 * (1'000'000.0 / 299'999.0)) / 1'000'000.0 + 1.0;
  EXPECT_NEAR(demand_of(1.0, {{1'000'000, 1'000'000}, {900'000, 299'999}}).vcpus(), expected, 1e-4);
}

TEST(SandboxDemand, FractionalDefaultVcpus) {
  EXPECT_EQ(demand_of(0.5, {{250'000, 1'000'000}}).vcpus(), 0.75);
  EXPECT_EQ(demand_of(0.5, {{500'000, 1'000'000}}).vcpus(), 1.0);
  EXPECT_NEAR(demand_of(0.5, {{500'001, 1'000'000}}).vcpus(), 1.000001, 1e-9);
  EXPECT_EQ(required_vcpus(demand_of(0.5, {{500'001, 1'000'000}}).vcpus()), 2u);
  // The pod of the upstream bug: default_vcpus 0.75 and a 1.2 CPU container need 2 vCPUs.
  EXPECT_EQ(required_vcpus(demand_of(0.75, {{120'000, 100'000}}).vcpus()), 2u);
}

TEST(SandboxDemand, CpusetsCountTheirUnionWhenNoQuotaIsSet) {
  SandboxDemand demand(1.0, 256);
  demand.apply("a", ResourceOp::add, cpuset_limit("0-2"));
  demand.apply("b", ResourceOp::add, cpuset_limit("2,3"));
  EXPECT_EQ(demand.vcpus(), 4.0);
  // A quota anywhere takes over.
  demand.apply("c", ResourceOp::add, cpu_limit(50'000, 100'000));
  EXPECT_EQ(demand.vcpus(), 1.5);
}

TEST(SandboxDemand, UnlimitedQuotaAddsNothing) {
  EXPECT_EQ(demand_of(0.75, {{-1, 100'000}}).vcpus(), 1.0);
  EXPECT_EQ(demand_of(2.0, {{-1, 100'000}, {50'000, 100'000}}).vcpus(), 2.5);
}

TEST(SandboxDemand, ACpusetOnlyUpdateKeepsAnEarlierQuota) {
  SandboxDemand demand(1.0, 256);
  demand.apply("a", ResourceOp::add, cpu_limit(200'000, 100'000));
  demand.apply("a", ResourceOp::update, cpuset_limit("0-5"));
  EXPECT_EQ(demand.vcpus(), 3.0);
  demand.apply("a", ResourceOp::update, cpu_limit(100'000, 100'000));
  EXPECT_EQ(demand.vcpus(), 2.0);
  demand.apply("a", ResourceOp::remove, std::nullopt);
  EXPECT_EQ(demand.vcpus(), 1.0);
  EXPECT_TRUE(demand.empty());
}

TEST(SandboxDemand, MemoryAddsLimitsAndHugepagesToTheDefault) {
  SandboxDemand demand(1.0, 512);
  demand.apply("a", ResourceOp::add, memory_limit(256 * mib));
  oci::Resources with_hugepages = memory_limit(-1);  // unlimited: nothing
  with_hugepages.hugepage_limits.push_back(oci::HugepageLimit{"2MB", 64 * mib, {}});
  demand.apply("b", ResourceOp::add, with_hugepages);
  EXPECT_EQ(demand.memory_mib(), 512u + 256 + 64);
  demand.apply("a", ResourceOp::update, memory_limit(128 * mib));
  EXPECT_EQ(demand.memory_mib(), 512u + 128 + 64);
  demand.apply("b", ResourceOp::remove, std::nullopt);
  EXPECT_EQ(demand.memory_mib(), 512u + 128);
}

TEST(SandboxDemand, AContainerWithoutResourcesIsNotCounted) {
  SandboxDemand demand(0.75, 256);
  demand.apply("a", ResourceOp::add, std::nullopt);
  EXPECT_TRUE(demand.empty());
  EXPECT_EQ(demand.vcpus(), 0.75);
}

TEST(SandboxDemand, AMalformedCpusetIsRefusedAndChangesNothing) {
  SandboxDemand demand(1.0, 256);
  demand.apply("a", ResourceOp::add, cpu_limit(100'000, 100'000));
  try {
    demand.apply("a", ResourceOp::update, cpuset_limit("3-1"));
    FAIL() << "a reversed range was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_NE(describe(e).find("\"3-1\""), std::string::npos) << describe(e);
  }
  EXPECT_THROW(demand.apply("b", ResourceOp::add, cpuset_limit("0-4294967295")), Error);
  EXPECT_EQ(demand.vcpus(), 2.0);
}

// --- DynamicResources against the fake hypervisor -----------------------------------------------

struct RecordingAgent {
  std::vector<grpc::OnlineCPUMemRequest> requests;
  std::optional<Errc> fail_with;
  Task<void> online_cpu_mem(const grpc::OnlineCPUMemRequest& request) {
    requests.push_back(request);
    if (fail_with) fail(*fail_with, "agent OnlineCPUMem: injected failure");
    co_return;
  }
};

/// The fake with memory hotplug advertised (QEMU's capability set for CPU and memory).
struct MemoryHotplugFake : testing::FakeHypervisor {
  using FakeHypervisor::FakeHypervisor;
  static constexpr auto capabilities =
      hypervisor::capability_set<hypervisor::capability::cpu_hotplug, hypervisor::capability::memory_hotplug>;
};
static_assert(hypervisor::Hypervisor<MemoryHotplugFake>);

config::HypervisorConfig hypervisor_config(double default_vcpus, std::uint32_t maxvcpus, std::uint32_t memory = 512,
                                           std::uint32_t maxmemory = 4096) {
  config::HypervisorConfig config;
  config.cpu.default_vcpus = default_vcpus;
  config.cpu.default_maxvcpus = maxvcpus;
  config.memory.default_memory = memory;
  config.memory.default_maxmemory = maxmemory;
  return config;
}

template <class H>
struct Rig {
  explicit Rig(const config::HypervisorConfig& config, bool static_mode = false)
      : vm(io.get_executor(), hypervisor::VmContext{.sandbox_id = "cpu-test", .config = config}),
        policy(io.get_executor(), config, static_mode) {}

  void apply(const std::string& container, ResourceOp op, std::optional<oci::Resources> resources) {
    test::run_task(io, policy.apply(vm, agent, container, op, std::move(resources)));
  }

  asio::io_context io;
  H vm;
  RecordingAgent agent;
  DynamicResources<H> policy;
};

TEST(DynamicResources, ACpuLimitHotplugsRoundedUpVcpusAndOnlinesThem) {
  Rig<testing::FakeHypervisor> rig(hypervisor_config(0.75, 4));
  ASSERT_EQ(rig.vm.vcpus(), 1u);
  rig.apply("c1", ResourceOp::add, cpu_limit(120'000, 100'000));  // 0.75 + 1.2 = 1.95
  EXPECT_EQ(rig.vm.vcpu_requests, std::vector<std::uint32_t>{2});
  EXPECT_EQ(rig.vm.vcpus(), 2u);
  EXPECT_EQ(rig.policy.vcpus(), 2u);
  ASSERT_EQ(rig.agent.requests.size(), 1u);
  EXPECT_TRUE(rig.agent.requests[0].wait());
  EXPECT_EQ(rig.agent.requests[0].nb_cpus(), 1u);
  EXPECT_TRUE(rig.agent.requests[0].cpu_only());
}

TEST(DynamicResources, AddNeverShrinksAndRemoveNeverGrows) {
  Rig<testing::FakeHypervisor> rig(hypervisor_config(1.0, 8));
  rig.apply("big", ResourceOp::add, cpu_limit(250'000, 100'000));  // 3.5 -> 4
  rig.apply("small", ResourceOp::add, cpu_limit(10'000, 100'000));  // 3.6 -> 4: no request
  EXPECT_EQ(rig.vm.vcpu_requests, std::vector<std::uint32_t>{4});
  rig.apply("big", ResourceOp::remove, std::nullopt);  // 1.1 -> 2
  EXPECT_EQ(rig.vm.vcpu_requests, (std::vector<std::uint32_t>{4, 2}));
  EXPECT_EQ(rig.vm.vcpus(), 2u);
  // Only the growth was onlined; the unplug needs nothing from the agent.
  EXPECT_EQ(rig.agent.requests.size(), 1u);
  rig.apply("small", ResourceOp::remove, std::nullopt);  // back to the default
  EXPECT_EQ(rig.vm.vcpus(), 1u);
}

TEST(DynamicResources, UpdateResizesBothWays) {
  Rig<testing::FakeHypervisor> rig(hypervisor_config(1.0, 8));
  rig.apply("c", ResourceOp::add, std::nullopt);
  EXPECT_TRUE(rig.vm.vcpu_requests.empty());
  rig.apply("c", ResourceOp::update, cpu_limit(300'000, 100'000));
  EXPECT_EQ(rig.vm.vcpus(), 4u);
  rig.apply("c", ResourceOp::update, cpu_limit(50'000, 100'000));
  EXPECT_EQ(rig.vm.vcpus(), 2u);
  EXPECT_EQ(rig.vm.vcpu_requests, (std::vector<std::uint32_t>{4, 2}));
}

TEST(DynamicResources, TheHypervisorsMaximumBoundsTheVm) {
  Rig<testing::FakeHypervisor> rig(hypervisor_config(1.0, 2));
  rig.apply("c", ResourceOp::add, cpu_limit(400'000, 100'000));
  EXPECT_EQ(rig.vm.vcpu_requests, std::vector<std::uint32_t>{5});
  EXPECT_EQ(rig.vm.vcpus(), 2u);
  EXPECT_EQ(rig.policy.vcpus(), 2u);
  ASSERT_EQ(rig.agent.requests.size(), 1u);
  EXPECT_EQ(rig.agent.requests[0].nb_cpus(), 1u);
}

TEST(DynamicResources, StaticModeHotplugsNothing) {
  Rig<MemoryHotplugFake> rig(hypervisor_config(2.0, 2), /*static_mode=*/true);
  oci::Resources both = cpu_limit(120'000, 100'000);
  both.memory = memory_limit(256 * mib).memory;
  rig.apply("c", ResourceOp::add, both);
  rig.apply("c", ResourceOp::update, cpu_limit(400'000, 100'000));
  rig.apply("c", ResourceOp::remove, std::nullopt);
  EXPECT_TRUE(rig.vm.vcpu_requests.empty());
  EXPECT_TRUE(rig.vm.memory_requests.empty());
  EXPECT_TRUE(rig.agent.requests.empty());
  EXPECT_TRUE(rig.policy.demand().empty());
}

TEST(DynamicResources, WithoutMemoryHotplugOnlyCpusChange) {
  Rig<testing::FakeHypervisor> rig(hypervisor_config(1.0, 4));
  rig.apply("c", ResourceOp::add, memory_limit(256 * mib));
  EXPECT_TRUE(rig.vm.memory_requests.empty());
  EXPECT_TRUE(rig.agent.requests.empty());
}

TEST(DynamicResources, MemoryGrowsByTheLimitsAndIsOnlined) {
  Rig<MemoryHotplugFake> rig(hypervisor_config(1.0, 4, 512));
  oci::Resources both = cpu_limit(100'000, 100'000);
  both.memory = memory_limit(256 * mib).memory;
  rig.apply("c", ResourceOp::add, both);
  EXPECT_EQ(rig.vm.memory_requests, std::vector<std::uint32_t>{768});
  EXPECT_EQ(rig.vm.memory_mib(), 768u);
  ASSERT_EQ(rig.agent.requests.size(), 1u);  // one request for both
  EXPECT_EQ(rig.agent.requests[0].nb_cpus(), 1u);
  EXPECT_FALSE(rig.agent.requests[0].cpu_only());
  // The same total again asks nothing.
  rig.apply("c", ResourceOp::update, memory_limit(256 * mib));
  EXPECT_EQ(rig.vm.memory_requests.size(), 1u);
}

TEST(DynamicResources, PcDimmMemoryStaysAfterRemovalVirtioMemShrinks) {
  Rig<MemoryHotplugFake> dimm(hypervisor_config(1.0, 4, 512));
  dimm.apply("c", ResourceOp::add, memory_limit(256 * mib));
  dimm.apply("c", ResourceOp::remove, std::nullopt);
  EXPECT_EQ(dimm.vm.memory_requests, (std::vector<std::uint32_t>{768, 512}));
  EXPECT_EQ(dimm.vm.memory_mib(), 768u);
  // Growing back to what is plugged already adds nothing.
  dimm.apply("d", ResourceOp::add, memory_limit(256 * mib));
  EXPECT_EQ(dimm.vm.memory_mib(), 768u);
  EXPECT_EQ(dimm.agent.requests.size(), 1u);

  auto config = hypervisor_config(1.0, 4, 512);
  config.memory.enable_virtio_mem = true;
  Rig<MemoryHotplugFake> virtio(config);
  virtio.apply("c", ResourceOp::add, memory_limit(256 * mib));
  virtio.apply("c", ResourceOp::remove, std::nullopt);
  EXPECT_EQ(virtio.vm.memory_mib(), 512u);
}

TEST(DynamicResources, AFailedResizeLeavesTheDemandAsItWas) {
  Rig<testing::FakeHypervisor> rig(hypervisor_config(1.0, 4));
  rig.vm.fail_resize = Errc::internal;
  try {
    rig.apply("c1", ResourceOp::add, cpu_limit(200'000, 100'000));
    FAIL() << "the resize failure was swallowed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::internal);
    EXPECT_EQ(describe(e), "resize the sandbox for container c1: resize vCPUs to 3: injected failure");
  }
  EXPECT_TRUE(rig.policy.demand().empty());
  EXPECT_EQ(rig.policy.vcpus(), 1u);
  rig.vm.fail_resize.reset();
  rig.apply("c2", ResourceOp::add, cpu_limit(100'000, 100'000));
  EXPECT_EQ(rig.vm.vcpus(), 2u);
}

TEST(DynamicResources, AnOnliningFailureReachesTheCaller) {
  Rig<testing::FakeHypervisor> rig(hypervisor_config(1.0, 4));
  rig.agent.fail_with = Errc::deadline_exceeded;
  try {
    rig.apply("c1", ResourceOp::add, cpu_limit(100'000, 100'000));
    FAIL() << "the agent failure was swallowed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::deadline_exceeded);
    EXPECT_NE(describe(e).find("container c1"), std::string::npos);
  }
  EXPECT_TRUE(rig.policy.demand().empty());
}

}  // namespace
}  // namespace kata::resource::cpu_mem
