#include "kata/config/annotations.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/config/test_support.hpp"
#include "kata/core/error.hpp"

namespace kata::config {
namespace {

using test::lexical_options;
using testing::HasSubstr;

constexpr std::string_view hv = "io.katacontainers.config.hypervisor.";

Config base_config(std::vector<std::string> enabled = {"enable_iommu", "kernel_params", "default_vcpus", "default_memory"}) {
  auto loaded = load_config_text(test::upstream_qemu_configuration, "c.toml", lexical_options());
  loaded.config.hypervisor.at("qemu").security.enable_annotations = std::move(enabled);
  return std::move(loaded.config);
}

std::string key(std::string_view prefix, std::string_view suffix) { return std::string(prefix) + std::string(suffix); }

std::string apply_error(Config& config, const std::map<std::string, std::string>& annotations) {
  std::vector<std::string> warnings;
  try {
    apply_annotations(config, annotations, lexical_options(), warnings);
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an error";
  return {};
}

TEST(Annotations, EnabledHypervisorKeysAreApplied) {
  auto config = base_config();
  std::vector<std::string> warnings;
  apply_annotations(config,
                    {{key(hv, "default_vcpus"), "0.75"},
                     {key(hv, "default_memory"), "1Gi"},
                     {key(hv, "enable_iommu"), "true"},
                     {key(hv, "kernel_params"), "systemd.unified_cgroup_hierarchy=0 quiet"}},
                    lexical_options(), warnings);
  const auto& q = config.hypervisor.at("qemu");
  EXPECT_EQ(q.cpu.default_vcpus, 0.75);
  EXPECT_EQ(q.memory.default_memory, 1024U);
  EXPECT_TRUE(q.device.enable_iommu);
  EXPECT_EQ(q.boot.kernel_params, "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=0 quiet");
  EXPECT_THAT(warnings, testing::IsEmpty());
}

TEST(Annotations, NotEnabledHypervisorKeyIsIgnoredWithAWarningNamingIt) {
  auto config = base_config();
  std::vector<std::string> warnings;
  apply_annotations(config, {{key(hv, "machine_type"), "pc"}}, lexical_options(), warnings);
  EXPECT_EQ(config.hypervisor.at("qemu").machine.machine_type, "q35");
  ASSERT_EQ(warnings.size(), 1U);
  EXPECT_THAT(warnings[0], HasSubstr("io.katacontainers.config.hypervisor.machine_type ignored: not enabled"));
}

TEST(Annotations, EnableAnnotationsAreRegularExpressions) {
  auto config = base_config({"^machine_.*$"});
  std::vector<std::string> warnings;
  apply_annotations(config, {{key(hv, "machine_type"), "pc"}, {key(hv, "default_vcpus"), "2"}}, lexical_options(),
                    warnings);
  EXPECT_EQ(config.hypervisor.at("qemu").machine.machine_type, "pc");
  EXPECT_EQ(config.hypervisor.at("qemu").cpu.default_vcpus, 1.0);
  EXPECT_EQ(warnings.size(), 1U);
}

TEST(Annotations, MalformedValueNamesAnnotationAndValue) {
  auto config = base_config();
  EXPECT_EQ(apply_error(config, {{key(hv, "default_vcpus"), "abc"}}),
            "annotation io.katacontainers.config.hypervisor.default_vcpus = \"abc\": expected a number");
  config = base_config();
  EXPECT_THAT(apply_error(config, {{key(hv, "enable_iommu"), "yes"}}), HasSubstr("expected true or false"));
  config = base_config();
  EXPECT_THAT(apply_error(config, {{key(hv, "default_memory"), "2048r"}}), HasSubstr("unknown unit"));
}

TEST(Annotations, DefaultVcpusAbovePluginMaximumIsAnError) {
  auto config = base_config();
  EXPECT_THAT(apply_error(config, {{key(hv, "default_vcpus"), "257"}}), HasSubstr("qemu supports at most 256 vCPUs"));
  config = base_config();
  EXPECT_THAT(apply_error(config, {{key(hv, "default_memory"), "32"}}), HasSubstr("qemu needs at least 64 MiB"));
}

TEST(Annotations, PathValuesMustMatchTheValidGlobs) {
  auto config = base_config({"path", "virtio_fs_daemon"});
  config.hypervisor.at("qemu").valid_hypervisor_paths = {"/opt/kata/bin/qemu-*"};
  std::vector<std::string> warnings;
  apply_annotations(config, {{key(hv, "path"), "/opt/kata/bin/qemu-system-aarch64"}}, lexical_options(), warnings);
  EXPECT_EQ(config.hypervisor.at("qemu").path, "/opt/kata/bin/qemu-system-aarch64");
  EXPECT_THAT(apply_error(config, {{key(hv, "path"), "/tmp/evil"}}),
              HasSubstr("path is not permitted by valid_hypervisor_paths [/opt/kata/bin/qemu-*]"));
  EXPECT_THAT(apply_error(config, {{key(hv, "virtio_fs_daemon"), "/tmp/evil"}}),
              HasSubstr("valid_virtio_fs_daemon_paths"));
}

TEST(Annotations, AgentAndRuntimeKeysNeedNoAllowList) {
  auto config = base_config({});
  std::vector<std::string> warnings;
  apply_annotations(config,
                    {{"io.katacontainers.config.agent.kernel_modules", "e1000e InterruptThrottleRate=3000;i915"},
                     {"io.katacontainers.config.agent.container_pipe_size", "4096"},
                     {"io.katacontainers.config.runtime.create_container_timeout", "90"},
                     {"io.katacontainers.config.runtime.experimental", "a,b"},
                     {"io.kubernetes.cri.sandbox-memory", "134217728"}},
                    lexical_options(), warnings);
  const auto& agent = config.agent.at("kata");
  EXPECT_EQ(agent.kernel_modules, (std::vector<std::string>{"e1000e InterruptThrottleRate=3000", "i915"}));
  EXPECT_EQ(agent.container_pipe_size, 4096U);
  EXPECT_EQ(agent.request_timeout_ms, 90000U);
  EXPECT_EQ(config.runtime.experimental, (std::vector<std::string>{"a", "b"}));
  EXPECT_THAT(warnings, testing::IsEmpty());
}

TEST(Annotations, SandboxBindMountsAreRefusedWithAWarning) {
  auto config = base_config();
  std::vector<std::string> warnings;
  apply_annotations(config, {{"io.katacontainers.config.runtime.sandbox_bind_mounts", "/etc"}}, lexical_options(),
                    warnings);
  EXPECT_TRUE(config.runtime.sandbox_bind_mounts.empty());
  ASSERT_EQ(warnings.size(), 1U);
  EXPECT_THAT(warnings[0], HasSubstr("sandbox_bind_mounts refused"));
}

TEST(Annotations, EnabledButUnknownHypervisorKeyIsAnError) {
  auto config = base_config({".*"});
  EXPECT_THAT(apply_error(config, {{key(hv, "warp_drive"), "on"}}), HasSubstr("is not a hypervisor setting"));
}

TEST(Annotations, HypervisorSelectionOnlyToExistingSections) {
  auto config = base_config();
  std::vector<std::string> warnings;
  apply_annotations(config, {{"io.katacontainers.config.runtime.hypervisor_name", "clh"}}, lexical_options(), warnings);
  EXPECT_EQ(config.runtime.hypervisor_name, "qemu");
  EXPECT_THAT(warnings, testing::Contains(HasSubstr("no [hypervisor.clh] section")));
}

TEST(Annotations, AdjustRunsAgainAfterwards) {
  auto config = base_config();
  std::vector<std::string> warnings;
  apply_annotations(config, {{key(hv, "default_vcpus"), "64"}}, lexical_options(), warnings);
  EXPECT_EQ(config.hypervisor.at("qemu").cpu.default_vcpus, 8.0);  // clamped to the 8 host CPUs
}

TEST(Annotations, SharedMountsJson) {
  auto config = base_config();
  std::vector<std::string> warnings;
  apply_annotations(config,
                    {{"io.katacontainers.config.runtime.shared_mounts",
                      R"([{"name":"m","src_ctr":"a","src_path":"/x","dst_ctr":"b","dst_path":"/y"}])"}},
                    lexical_options(), warnings);
  ASSERT_EQ(config.runtime.shared_mounts.size(), 1U);
  EXPECT_EQ(config.runtime.shared_mounts[0].dst_path, "/y");
  EXPECT_THAT(apply_error(config, {{"io.katacontainers.config.runtime.shared_mounts", "[{\"nom\":1}]"}}),
              HasSubstr("unknown shared mount field \"nom\""));
}

TEST(MemorySize, UnitsAndPlainMiB) {
  EXPECT_EQ(parse_memory_mib("2048"), 2048U);
  EXPECT_EQ(parse_memory_mib("2 GiB"), 2048U);
  EXPECT_EQ(parse_memory_mib("512Mi"), 512U);
  EXPECT_EQ(parse_memory_mib("1G"), 953U);
  EXPECT_THROW((void)parse_memory_mib("lots"), Error);
}

}  // namespace
}  // namespace kata::config
