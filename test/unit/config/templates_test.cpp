// Every configuration generated from config/configuration-*.toml.in in this build must load
// without warnings and validate (paths are checked lexically: the assets are not installed on
// the build machine).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "unit/config/test_support.hpp"
#include "kata/config/loader.hpp"
#include "kata/core/error.hpp"

namespace kata::config {
namespace {

std::set<std::string> generated_variants() {
  std::set<std::string> variants;
  for (const auto& entry : std::filesystem::directory_iterator(KATA_GENERATED_CONFIG_DIR)) {
    auto name = entry.path().filename().string();
    if (name.starts_with("configuration-") && name.ends_with(".toml")) {
      variants.insert(name.substr(14, name.size() - 14 - 5));
    }
  }
  return variants;
}

TEST(Templates, EveryVariantIsGenerated) {
  EXPECT_EQ(generated_variants(), (std::set<std::string>{"qemu", "qemu-tdx", "qemu-snp", "qemu-se", "qemu-coco-dev",
                                                         "clh", "fc", "dragonball", "remote"}));
}

TEST(Templates, EveryGeneratedConfigurationLoadsAndValidates) {
  for (const auto& variant : generated_variants()) {
    SCOPED_TRACE(variant);
    const auto file = std::filesystem::path(KATA_GENERATED_CONFIG_DIR) / ("configuration-" + variant + ".toml");
    const auto options = test::lexical_options(4, 8192);
    try {
      auto loaded = load_config_file(file, options);
      EXPECT_THAT(loaded.warnings, testing::IsEmpty());
      validate_config(loaded.config, options);
      EXPECT_EQ(loaded.config.runtime.name, "virt_container");
      EXPECT_EQ(loaded.config.runtime.agent_name, "kata");
      EXPECT_NO_THROW((void)loaded.config.active_hypervisor());
      EXPECT_TRUE(loaded.config.runtime.sandbox_cgroup_only);
      if (variant != "remote") {
        EXPECT_TRUE(loaded.config.runtime.static_sandbox_resource_mgmt);
      }
    } catch (const std::exception& error) {
      ADD_FAILURE() << describe(error);
    }
  }
}

TEST(Templates, QemuVariantMatchesThisLab) {
  const auto file = std::filesystem::path(KATA_GENERATED_CONFIG_DIR) / "configuration-qemu.toml";
  auto loaded = load_config_file(file, test::lexical_options());
  const auto& qemu = loaded.config.hypervisor.at("qemu");
  EXPECT_TRUE(qemu.boot.image.empty());
  EXPECT_THAT(qemu.boot.initrd, testing::EndsWith("kata-containers-initrd.img"));
  EXPECT_THAT(qemu.boot.kernel, testing::EndsWith("vmlinux.container"));
  EXPECT_EQ(qemu.shared_fs.shared_fs, "virtio-fs");
  EXPECT_DOUBLE_EQ(qemu.cpu.overhead_vcpus, 0.2);
  EXPECT_EQ(qemu.memory.overhead_memory, 32U);
  auto tdx = load_config_file(std::filesystem::path(KATA_GENERATED_CONFIG_DIR) / "configuration-qemu-tdx.toml",
                              test::lexical_options());
  EXPECT_DOUBLE_EQ(tdx.config.hypervisor.at("qemu").cpu.overhead_vcpus, 0.4);
  EXPECT_EQ(tdx.config.hypervisor.at("qemu").memory.overhead_memory, 128U);
}

}  // namespace
}  // namespace kata::config
