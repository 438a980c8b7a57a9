#include <sys/wait.h>

#include <cstdio>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "unit/config/test_support.hpp"

namespace kata::config {
namespace {

using testing::HasSubstr;

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr
};

Run run(const std::string& arguments) {
  Run result;
  const std::string command = std::string("env -u KATA_CONF_FILE ") + KATA_CTL_BINARY + " " + arguments + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(KataCtl, ShowDefaultConfigPathsInOrder) {
  auto r = run("--show-default-config-paths");
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.output, testing::StartsWith("KATA_CONF_FILE"));
  auto etc = r.output.find("/etc/kata-containers/runtime-rs/configuration.toml");
  auto opt = r.output.find("/opt/kata/share/defaults/kata-containers/runtime-rs/configuration.toml");
  ASSERT_NE(etc, std::string::npos);
  ASSERT_NE(opt, std::string::npos);
  EXPECT_LT(etc, opt);
}

TEST(KataCtl, EnvPrintsEffectiveConfigWithDropInsAndAnnotations) {
  test::TempDir dir;
  auto file = dir.write("configuration.toml", test::upstream_qemu_configuration);
  dir.write("config.d/10-mem.toml", "[hypervisor.qemu]\ndefault_memory = 1024\nbogus_key = 1\n");
  auto r = run("env --no-path-check --config " + file.string() +
               " --annotation io.katacontainers.config.hypervisor.default_vcpus=0.75");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("# configuration file: " + file.string()));
  EXPECT_THAT(r.output, HasSubstr("# warning: "));
  EXPECT_THAT(r.output, HasSubstr("bogus_key"));
  EXPECT_THAT(r.output, HasSubstr("default_memory = 1024"));
  EXPECT_THAT(r.output, HasSubstr("default_vcpus = 0.75"));

  r = run("env --json --no-path-check --config " + file.string());
  ASSERT_EQ(r.status, 0) << r.output;
  auto json = nlohmann::json::parse(r.output);
  EXPECT_EQ(json["file"], file.string());
  EXPECT_EQ(json["config"]["hypervisor"]["qemu"]["default_memory"], 1024);
  EXPECT_EQ(json["drop_ins"].size(), 1U);
}

TEST(KataCtl, EnvReportsAMalformedAnnotation) {
  test::TempDir dir;
  auto file = dir.write("configuration.toml", test::upstream_qemu_configuration);
  auto r = run("env --no-path-check --config " + file.string() +
               " --annotation io.katacontainers.config.hypervisor.default_vcpus=abc");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("default_vcpus = \"abc\": expected a number"));
}

TEST(KataCtl, CheckConfigAcceptsGoodAndRejectsBadFiles) {
  test::TempDir dir;
  auto good = dir.write("good.toml", test::upstream_qemu_configuration);
  auto r = run("check-config --no-path-check " + good.string());
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(good.string() + ": OK"));

  std::string text = test::upstream_qemu_configuration;
  text.replace(text.find("block_device_driver = \"virtio-scsi\""), 35, "block_device_driver = \"floppy\"");
  auto bad = dir.write("bad.toml", text);
  r = run("check-config --no-path-check " + bad.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("block_device_driver = \"floppy\" is not supported; allowed:"));

  r = run("check-config " + (dir.path() / "missing.toml").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("missing.toml"));
}

}  // namespace
}  // namespace kata::config
