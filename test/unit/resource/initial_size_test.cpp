// Every row of upstream's InitialSizeManager test table (runtime-rs-facts §4) plus the
// regression that motivated static sizing: default_vcpus 0.75 + a 1.2 CPU limit must boot 2.
#include "kata/resource/cpu_mem/initial_size.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::resource::cpu_mem {
namespace {

using config::Config;

Config make_config(double default_vcpus, double overhead_vcpus, std::uint32_t default_maxvcpus,
                   std::uint32_t default_memory, std::uint32_t overhead_memory, std::uint32_t default_maxmemory,
                   bool static_mode) {
  Config config;
  config.runtime.hypervisor_name = "qemu";
  config.runtime.static_sandbox_resource_mgmt = static_mode;
  auto& hv = config.hypervisor["qemu"];
  hv.cpu.default_vcpus = default_vcpus;
  hv.cpu.overhead_vcpus = overhead_vcpus;
  hv.cpu.default_maxvcpus = default_maxvcpus;
  hv.memory.default_memory = default_memory;
  hv.memory.overhead_memory = overhead_memory;
  hv.memory.default_maxmemory = default_maxmemory;
  return config;
}

std::map<std::string, std::string> cri(std::string quota, std::string period, std::string memory) {
  std::map<std::string, std::string> annotations;
  if (!quota.empty()) annotations[std::string(cri_sandbox_cpu_quota)] = quota;
  if (!period.empty()) annotations[std::string(cri_sandbox_cpu_period)] = period;
  if (!memory.empty()) annotations[std::string(cri_sandbox_memory)] = memory;
  return annotations;
}

constexpr std::int64_t MiB = 1024 * 1024;

TEST(InitialSize, NoResourceLimitFromAnnotationsOrSpec) {
  auto size = workload_from_annotations({});
  EXPECT_EQ(size.vcpus, 0.0);
  EXPECT_EQ(size.memory_mib, 0U);
  auto oci = workload_from_oci({});
  EXPECT_EQ(oci.vcpus, 0.0);
  EXPECT_EQ(oci.memory_mib, 0U);
}

TEST(InitialSize, NormalResourceLimit) {
  auto size = workload_from_annotations(cri("220000", "100000", std::to_string(512 * MiB)));
  EXPECT_EQ(boot_vcpus(size.vcpus), 3U);
  EXPECT_EQ(size.memory_mib, 512U);
  auto oci = workload_from_oci({.cpu_quota = 220000, .cpu_period = 100000, .memory_limit = 512 * MiB});
  EXPECT_EQ(boot_vcpus(oci.vcpus), 3U);
  EXPECT_EQ(oci.memory_mib, 512U);
}

TEST(InitialSize, OddMemoryIsRoundedUpToEven) {
  EXPECT_EQ(workload_from_annotations(cri("", "", std::to_string(513 * MiB))).memory_mib, 514U);
  EXPECT_EQ(workload_from_oci({.memory_limit = 513 * MiB}).memory_mib, 514U);
}

TEST(InitialSize, NonNumericQuotaCountsAsNoLimit) {
  auto size = workload_from_annotations(cri("lots", "100000", "abc"));
  EXPECT_EQ(size.vcpus, 0.0);
  EXPECT_EQ(size.memory_mib, 0U);
}

TEST(InitialSize, NegativeQuotaAndMemoryAreUnlimited) {
  auto size = workload_from_oci({.cpu_quota = -1, .cpu_period = 100000, .memory_limit = -1});
  EXPECT_EQ(size.vcpus, 0.0);
  EXPECT_EQ(size.memory_mib, 0U);
}

TEST(InitialSize, CpusetCountsWhenNoQuota) {
  EXPECT_EQ(workload_from_oci({.cpuset = "0-2,5"}).vcpus, 4.0);
  EXPECT_THROW((void)workload_from_oci({.cpuset = "0-x"}), Error);
}

TEST(InitialSize, StaticAppliesVcpuAndMemory) {
  auto config = make_config(1.0, 0.5, 4, 256, 128, 4096, true);
  setup_config(config, {.vcpus = 1.2, .memory_mib = 512});
  EXPECT_NEAR(config.hypervisor["qemu"].cpu.default_vcpus, 1.7, 1e-9);
  EXPECT_EQ(config.hypervisor["qemu"].memory.default_memory, 640U);
}

TEST(InitialSize, NonStaticDoesNotApply) {
  auto config = make_config(1.0, 0.5, 4, 256, 128, 4096, false);
  setup_config(config, {.vcpus = 1.2, .memory_mib = 512});
  EXPECT_EQ(config.hypervisor["qemu"].cpu.default_vcpus, 1.0);
  EXPECT_EQ(config.hypervisor["qemu"].memory.default_memory, 256U);
  EXPECT_EQ(config.hypervisor["qemu"].cpu.default_maxvcpus, 4U);
}

TEST(InitialSize, ClampsMaxvcpus) {
  auto config = make_config(1.0, 1.0, 2, 256, 128, 4096, true);
  setup_config(config, {.vcpus = 2.5, .memory_mib = 512});
  EXPECT_NEAR(config.hypervisor["qemu"].cpu.default_vcpus, 3.5, 1e-9);
  EXPECT_EQ(config.hypervisor["qemu"].cpu.default_maxvcpus, 4U);
}

TEST(InitialSize, StaticReducesMaxvcpusToStaticTotal) {
  auto config = make_config(1.0, 0.5, 8, 256, 128, 4096, true);
  setup_config(config, {.vcpus = 1.2, .memory_mib = 512});
  EXPECT_NEAR(config.hypervisor["qemu"].cpu.default_vcpus, 1.7, 1e-9);
  EXPECT_EQ(config.hypervisor["qemu"].cpu.default_maxvcpus, 2U);
}

TEST(InitialSize, ClampsMaxmemory) {
  auto config = make_config(1.0, 0.5, 4, 256, 128, 300, true);
  setup_config(config, {.vcpus = 1.2, .memory_mib = 512});
  EXPECT_EQ(config.hypervisor["qemu"].memory.default_memory, 640U);
  EXPECT_EQ(config.hypervisor["qemu"].memory.default_maxmemory, 640U);
}

TEST(InitialSize, PreservesOrigTomlDefaultMem) {
  auto config = make_config(1.0, 0.5, 4, 256, 128, 4096, true);
  auto result = setup_config(config, {.vcpus = 1.0, .memory_mib = 128});
  EXPECT_EQ(result.orig_toml_default_mem, 256U);
  EXPECT_EQ(config.hypervisor["qemu"].memory.default_memory, 256U);  // 128 overhead + 128
}

TEST(InitialSize, SupplementFromAnnotationsFillsMissingSpecSizing) {
  auto size = supplement_from_annotations({}, cri("120000", "100000", std::to_string(256 * MiB)));
  EXPECT_NEAR(size.vcpus, 1.2, 1e-4);
  EXPECT_EQ(size.memory_mib, 256U);
  auto kept = supplement_from_annotations({.vcpus = 3.0, .memory_mib = 64}, cri("120000", "100000", "1"));
  EXPECT_EQ(kept.vcpus, 3.0);
  EXPECT_EQ(kept.memory_mib, 64U);
}

TEST(InitialSize, StaticWithoutLimitsUsesTomlDefaults) {
  auto config = make_config(2.0, 0.5, 8, 512, 128, 4096, true);
  setup_config(config, {});
  EXPECT_EQ(config.hypervisor["qemu"].cpu.default_vcpus, 2.0);
  EXPECT_EQ(config.hypervisor["qemu"].memory.default_memory, 512U);
  EXPECT_EQ(config.hypervisor["qemu"].cpu.default_maxvcpus, 2U);
}

TEST(InitialSize, StaticErrorsOnZeroMemory) {
  auto config = make_config(1.0, 0.5, 8, 1024, 0, 4096, true);
  try {
    setup_config(config, {.vcpus = 1.0, .memory_mib = 0});
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_THAT(error.what(), testing::HasSubstr("computed sandbox memory is 0 MiB"));
    EXPECT_THAT(error.what(), testing::HasSubstr("default_memory/overhead_memory"));
    EXPECT_EQ(error.code(), Errc::invalid_argument);
  }
}

struct OverheadCase {
  const char* name;
  double default_vcpus, overhead_vcpus;
  std::uint32_t default_memory, overhead_memory;
  double request_vcpus;
  std::uint32_t request_memory;
  double expect_vcpus;
  std::uint32_t expect_memory;
};

class OverheadTable : public testing::TestWithParam<OverheadCase> {};

TEST_P(OverheadTable, StaticSizing) {
  const auto& c = GetParam();
  auto config = make_config(c.default_vcpus, c.overhead_vcpus, 8, c.default_memory, c.overhead_memory, 4096, true);
  setup_config(config, {.vcpus = c.request_vcpus, .memory_mib = c.request_memory});
  EXPECT_NEAR(config.hypervisor["qemu"].cpu.default_vcpus, c.expect_vcpus, 1e-9);
  EXPECT_EQ(config.hypervisor["qemu"].memory.default_memory, c.expect_memory);
}

INSTANTIATE_TEST_SUITE_P(
    Upstream, OverheadTable,
    testing::Values(OverheadCase{"both_limits", 3.0, 0.75, 1024, 256, 1.25, 1024, 2.0, 1280},
                    OverheadCase{"cpu_only_limit", 3.0, 0.5, 1024, 128, 1.5, 0, 2.0, 128},
                    OverheadCase{"memory_only_limit", 3.0, 0.5, 1024, 128, 0.0, 512, 1.0, 640},
                    OverheadCase{"both_limits_zero_overhead", 3.0, 0.0, 1024, 0, 1.25, 1024, 1.25, 1024},
                    OverheadCase{"memory_only_zero_overhead", 3.0, 0.0, 1024, 0, 0.0, 512, 1.0, 512}),
    [](const auto& test_case) { return std::string(test_case.param.name); });

// Behaviour #1: pod default_vcpus 0.75 (annotation), container CPU limit 1.2, qemu overhead 0.2.
TEST(InitialSize, PodWithFractionalDefaultAndCpuLimitBootsTwoVcpusInStaticMode) {
  auto config = make_config(0.75, 0.2, 8, 2048, 32, 0, true);
  auto workload = workload_from_annotations(cri("120000", "100000", std::to_string(128 * MiB)));
  setup_config(config, workload);
  const auto& hv = config.hypervisor["qemu"];
  EXPECT_NEAR(hv.cpu.default_vcpus, 1.4, 1e-9);
  EXPECT_EQ(boot_vcpus(hv.cpu.default_vcpus), 2U);
  EXPECT_EQ(hv.cpu.default_maxvcpus, 2U);
  EXPECT_EQ(hv.memory.default_memory, 160U);
}

TEST(InitialSize, SamePodInDynamicModeAddsNothingAtCreation) {
  auto config = make_config(0.75, 0.2, 8, 2048, 32, 0, false);
  auto workload = workload_from_annotations(cri("120000", "100000", std::to_string(128 * MiB)));
  auto result = setup_config(config, workload);
  const auto& hv = config.hypervisor["qemu"];
  EXPECT_EQ(hv.cpu.default_vcpus, 0.75);
  EXPECT_EQ(boot_vcpus(hv.cpu.default_vcpus), 1U);
  EXPECT_EQ(hv.memory.default_memory, 2048U);
  EXPECT_EQ(result.orig_toml_default_mem, 2048U);
}

// The integration test's expectations (k8s-sandbox-vcpus-allocation): 1/1/2 vCPUs.
TEST(InitialSize, UpstreamIntegrationExpectations) {
  for (auto [limit_quota, expected] : {std::pair{0, 1U}, std::pair{25000, 1U}, std::pair{120000, 2U}}) {
    auto config = make_config(0.75, 0.2, 8, 2048, 32, 0, true);
    auto annotations = cri(limit_quota ? std::to_string(limit_quota) : "", "100000", std::to_string(128 * MiB));
    setup_config(config, workload_from_annotations(annotations));
    EXPECT_EQ(boot_vcpus(config.hypervisor["qemu"].cpu.default_vcpus), expected) << limit_quota;
  }
}

TEST(InitialSize, BootVcpusToleratesRoundingNoise) {
  EXPECT_EQ(boot_vcpus(0.2 + 1.8), 2U);
  EXPECT_EQ(boot_vcpus(2.0001), 3U);
  EXPECT_EQ(boot_vcpus(0.75), 1U);
}

TEST(InitialSize, MissingHypervisorSectionIsAnError) {
  Config config;
  config.runtime.hypervisor_name = "qemu";
  EXPECT_THROW(setup_config(config, {}), Error);
}

}  // namespace
}  // namespace kata::resource::cpu_mem
