#include "kata/config/loader.hpp"

#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/config/test_support.hpp"
#include "kata/config/render.hpp"
#include "kata/core/error.hpp"

namespace kata::config {
namespace {

using test::TempDir;
using test::lexical_options;
using testing::HasSubstr;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& error) {
    return describe(error);
  }
  ADD_FAILURE() << "expected an error";
  return {};
}

constexpr const char* minimal = R"(
[hypervisor.qemu]
kernel = "/k/vmlinux"
initrd = "/k/initrd.img"
[agent.kata]
[runtime]
name = "virt_container"
hypervisor_name = "qemu"
agent_name = "kata"
)";

TEST(Loader, UpstreamQemuConfigurationLoadsUnchangedWithoutWarnings) {
  auto loaded = load_config_text(test::upstream_qemu_configuration, "configuration.toml", lexical_options());
  EXPECT_THAT(loaded.warnings, testing::IsEmpty());
  validate_config(loaded.config, lexical_options());
  const auto& hv = loaded.config.hypervisor.at("qemu");
  EXPECT_EQ(hv.path, "/opt/kata/bin/qemu-system-x86_64");
  EXPECT_DOUBLE_EQ(hv.cpu.overhead_vcpus, 0.2);
  EXPECT_EQ(hv.memory.overhead_memory, 32U);
  EXPECT_EQ(hv.memory.default_memory, 2048U);
  EXPECT_EQ(hv.block_device.block_device_driver, "virtio-scsi");
  EXPECT_EQ(hv.shared_fs.shared_fs, "virtio-fs");
  EXPECT_EQ(hv.shared_fs.virtio_fs_cache, "auto");
  EXPECT_EQ(hv.security.seccomp_sandbox, "on,obsolete=deny,spawn=deny,resourcecontrol=deny");
  EXPECT_EQ(hv.factory.template_path, "/run/vc/vm/template");
  const auto& agent = loaded.config.agent.at("kata");
  EXPECT_FALSE(agent.enable_debug);
  EXPECT_EQ(agent.request_timeout_ms, 30000U);
  EXPECT_EQ(agent.mem_agent.compact_force_times, 9223372036854775807ULL);
  EXPECT_EQ(agent.mem_agent.memcg_swappiness_max, 50);
  EXPECT_TRUE(loaded.config.runtime.static_sandbox_resource_mgmt);
  EXPECT_TRUE(loaded.config.runtime.sandbox_cgroup_only);
  // Host clamping (8 CPUs, 16 GiB).
  EXPECT_EQ(hv.cpu.default_maxvcpus, 8U);
  EXPECT_EQ(hv.memory.default_maxmemory, 16384U);
}

TEST(Loader, CodeDefaultsApplyWhenKeysAreAbsent) {
  auto loaded = load_config_text(minimal, "c.toml", lexical_options(4, 4096));
  const auto& hv = loaded.config.hypervisor.at("qemu");
  EXPECT_EQ(hv.path, "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(hv.machine.machine_type, "q35");
  EXPECT_EQ(hv.memory.default_memory, 128U);
  EXPECT_EQ(hv.memory.memory_slots, 128U);
  EXPECT_EQ(hv.device.default_bridges, 1U);
  EXPECT_EQ(hv.cpu.default_vcpus, 1.0);
  EXPECT_EQ(hv.cpu.default_maxvcpus, 4U);
  EXPECT_EQ(hv.block_device.block_device_driver, "virtio-blk-pci");
  EXPECT_EQ(hv.block_device.block_device_aio, "io_uring");
  EXPECT_FALSE(hv.shared_fs.shared_fs.has_value());  // absent key = no shared filesystem, as upstream
  EXPECT_TRUE(hv.disable_guest_selinux);
  const auto& agent = loaded.config.agent.at("kata");
  EXPECT_TRUE(agent.enable_debug);  // upstream's code default
  EXPECT_EQ(agent.dial_timeout_ms, 10U);
  EXPECT_EQ(agent.reconnect_timeout_ms, 3000U);
  EXPECT_EQ(loaded.config.runtime.internetworking_model, "tcfilter");
  EXPECT_EQ(loaded.config.runtime.emptydir_mode, "shared-fs");
}

TEST(Loader, MalformedTomlReportsFileLineAndColumn) {
  auto message = error_of([] { (void)load_config_text("[runtime]\nname = \"x\n", "/etc/x.toml", lexical_options()); });
  EXPECT_THAT(message, testing::StartsWith("/etc/x.toml:2:"));
}

TEST(Loader, WrongTypedValueNamesFileSectionKeyAndTypes) {
  auto message = error_of([] {
    (void)load_config_text("[hypervisor.qemu]\ndefault_vcpus = \"two\"\n", "/etc/c.toml", lexical_options());
  });
  EXPECT_EQ(message, "/etc/c.toml: [hypervisor.qemu] default_vcpus: expected a number, got string");
  message = error_of([] { (void)load_config_text("[agent.kata]\nserver_port = -1\n", "c.toml", lexical_options()); });
  EXPECT_THAT(message, HasSubstr("[agent.kata] server_port: expected an integer between 0 and 4294967295, got -1"));
  message = error_of([] {
    (void)load_config_text("[hypervisor.qemu]\nvirtio_fs_extra_args = [\"-o\", 1]\n", "c.toml", lexical_options());
  });
  EXPECT_THAT(message, HasSubstr("[hypervisor.qemu] virtio_fs_extra_args[1]: expected a string, got integer"));
}

TEST(Loader, UnknownKeysAreWarnedWithLocationNotDropped) {
  auto loaded = load_config_text(
      "[hypervisor.qemu]\nkernel = \"/k\"\ndefault_vcpu = 2\n[hypervisor.qemu.factory]\nbogus = 1\n[image]\nx = 1\n",
      "c.toml", lexical_options());
  EXPECT_THAT(loaded.warnings,
              testing::UnorderedElementsAre("c.toml:3: unknown key [hypervisor.qemu] default_vcpu ignored",
                                            "c.toml:5: unknown key [hypervisor.qemu.factory] bogus ignored",
                                            HasSubstr("[image]")));
}

TEST(Loader, AliasesOfUpstreamAreAccepted) {
  auto loaded = load_config_text(
      "[hypervisor.qemu]\ndbg_monitor_socket = \"/run/m.sock\"\n[agent.kata.mem_agent]\nenable = true\n", "c.toml",
      lexical_options());
  EXPECT_THAT(loaded.warnings, testing::IsEmpty());
  EXPECT_EQ(loaded.config.hypervisor.at("qemu").debug.extra_monitor_socket, "/run/m.sock");
  EXPECT_TRUE(loaded.config.agent.at("kata").mem_agent.mem_agent_enable);
}

TEST(Loader, UnknownHypervisorSectionListsKnownOnes) {
  auto message = error_of([] { (void)load_config_text("[hypervisor.vmware]\n", "c.toml", lexical_options()); });
  EXPECT_EQ(message, "c.toml: unknown hypervisor section [hypervisor.vmware]; known hypervisors: qemu, clh, "
                     "dragonball, firecracker, remote");
}

TEST(Loader, UnknownRuntimeHypervisorNameListsKnownOnes) {
  std::string text = minimal;
  text.replace(text.find("hypervisor_name = \"qemu\""), 24, "hypervisor_name = \"cloud-hypervisor\"");
  auto loaded = load_config_text(text, "c.toml", lexical_options());
  auto message = error_of([&] { validate_config(loaded.config, lexical_options()); });
  EXPECT_THAT(message, HasSubstr("hypervisor_name = \"cloud-hypervisor\" is not a known hypervisor; known "
                                 "hypervisors: qemu, clh, dragonball, firecracker, remote"));
}

TEST(Loader, ClampsVcpusAndMemoryToHost) {
  auto loaded = load_config_text(
      "[hypervisor.qemu]\ndefault_vcpus = 64\ndefault_maxvcpus = 128\ndefault_memory = 99999\n", "c.toml",
      lexical_options(2, 1024));
  const auto& hv = loaded.config.hypervisor.at("qemu");
  EXPECT_EQ(hv.cpu.default_vcpus, 2.0);
  EXPECT_EQ(hv.cpu.default_maxvcpus, 2U);
  EXPECT_EQ(hv.memory.default_memory, 1024U);
  EXPECT_EQ(hv.memory.default_maxmemory, 1024U);
  loaded = load_config_text("[hypervisor.qemu]\ndefault_vcpus = -1\n", "c.toml", lexical_options(3, 1024));
  EXPECT_EQ(loaded.config.hypervisor.at("qemu").cpu.default_vcpus, 3.0);
}

TEST(Loader, SharedFsAdjustments) {
  auto loaded = load_config_text("[hypervisor.qemu]\nshared_fs = \"\"\nvirtio_fs_cache = \"none\"\n", "c.toml",
                                 lexical_options());
  const auto& shared = loaded.config.hypervisor.at("qemu").shared_fs;
  EXPECT_EQ(shared.shared_fs, "virtio-fs");
  EXPECT_EQ(shared.virtio_fs_cache, "never");
  EXPECT_THAT(loaded.warnings, testing::Contains(HasSubstr("virtio_fs_cache = \"none\" is deprecated")));
  loaded = load_config_text("[hypervisor.qemu]\nshared_fs = \"none\"\n", "c.toml", lexical_options());
  EXPECT_FALSE(loaded.config.hypervisor.at("qemu").shared_fs.shared_fs.has_value());
  loaded = load_config_text("[hypervisor.qemu]\nshared_fs = \"virtio-fs\"\nvirtio_fs_cache_size = 512\n", "c.toml",
                            lexical_options());
  EXPECT_TRUE(loaded.config.hypervisor.at("qemu").shared_fs.virtio_fs_is_dax);
}

void expect_invalid(const std::string& extra_hypervisor_keys, const std::string& expected,
                    const std::string& extra_sections = "") {
  std::string text = minimal;
  text.insert(text.find("[agent.kata]"), extra_hypervisor_keys + "\n");
  text += extra_sections;
  auto message = error_of([&] {
    auto loaded = load_config_text(text, "c.toml", lexical_options());
    validate_config(loaded.config, lexical_options());
  });
  EXPECT_THAT(message, HasSubstr(expected)) << text;
}

TEST(Loader, ValidationErrorsSayWhatIsAllowed) {
  expect_invalid("block_device_driver = \"nvme\"",
                 "[hypervisor.qemu] block_device_driver = \"nvme\" is not supported; allowed: virtio-scsi, "
                 "virtio-blk-pci, virtio-blk-ccw, virtio-blk-mmio, virtio-pmem");
  expect_invalid("block_device_driver = \"virtio-blk-mmio\"", "is not supported by qemu");
  expect_invalid("block_device_aio = \"posix\"", "allowed: io_uring, native, threads");
  expect_invalid("shared_fs = \"virtio-9p\"", "allowed: virtio-fs, inline-virtio-fs, virtio-fs-nydus, none");
  expect_invalid("shared_fs = \"virtio-fs\"\nvirtio_fs_cache = \"sometimes\"", "allowed: never, auto, always");
  expect_invalid("image = \"/k/img\"", "image and initrd are both set");
  expect_invalid("default_memory = 32", "[hypervisor.qemu] default_memory = 32 MiB: qemu needs at least 64 MiB");
  expect_invalid("pcie_root_port = 2\npcie_switch_port = 2", "use only one of them");
  expect_invalid("hugepage_type = \"huge\"", "allowed: hugetlbfs, thp");
}

TEST(Loader, AgentTimeoutsMustAllowOneAttempt) {
  for (auto [keys, expected] : {std::pair{"dial_timeout_ms = 0", "dial_timeout_ms = 0"},
                                std::pair{"dial_timeout_ms = 45000", "reconnect_timeout_ms = 3000 is less than "
                                                                     "dial_timeout_ms = 45000"}}) {
    std::string text = minimal;
    text.insert(text.find("[runtime]"), std::string(keys) + "\n");
    auto message = error_of([&] {
      auto loaded = load_config_text(text, "c.toml", lexical_options());
      validate_config(loaded.config, lexical_options());
    });
    EXPECT_THAT(message, HasSubstr(expected));
  }
}

TEST(Loader, ResolveModeRequiresAssetsToExist) {
  TempDir dir;
  auto kernel = dir.write("vmlinux", "k");
  auto initrd = dir.write("initrd.img", "i");
  std::string text = minimal;
  text.replace(text.find("/k/vmlinux"), 10, kernel.string());
  text.replace(text.find("/k/initrd.img"), 13, (dir.path() / "missing.img").string());
  LoadOptions options{.host = {.cpus = 2, .memory_mib = 2048}, .path_check = PathCheck::resolve};
  auto message = error_of([&] { (void)load_config_text(text, "c.toml", options); });
  EXPECT_THAT(message, HasSubstr("[hypervisor.qemu] initrd = \"" + (dir.path() / "missing.img").string() + "\""));
  EXPECT_THAT(message, HasSubstr("No such file or directory"));
}

TEST(Search, KataConfFileMustBeAShippedDefault) {
  TempDir dir;
  auto shipped = dir.write("share/configuration-qemu.toml", minimal);
  std::filesystem::create_symlink(shipped, dir.path() / "share/configuration.toml");
  auto elsewhere = dir.write("home/my.toml", minimal);
  ConfigSource source{.kata_conf_file = elsewhere.string(), .default_paths = {dir.path() / "etc/configuration.toml",
                                                                             dir.path() / "share/configuration.toml"}};
  auto message = error_of([&] { (void)find_config_file(source); });
  EXPECT_THAT(message, HasSubstr("KATA_CONF_FILE=" + elsewhere.string()));
  EXPECT_THAT(message, HasSubstr("is not a shipped configuration file"));
  try {
    (void)find_config_file(source);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::permission_denied);
  }
  // The variant file a shipped configuration.toml points at is accepted.
  source.kata_conf_file = shipped.string();
  EXPECT_EQ(find_config_file(source), std::filesystem::canonical(shipped));
  // KATA_CONF_FILE wins over config_path.
  source.config_path = elsewhere.string();
  EXPECT_EQ(find_config_file(source), std::filesystem::canonical(shipped));
}

TEST(Search, ConfigPathThenDefaultsInOrder) {
  TempDir dir;
  auto etc = dir.path() / "etc/configuration.toml";
  auto share = dir.write("share/configuration.toml", minimal);
  auto custom = dir.write("custom.toml", minimal);
  ConfigSource source{.config_path = custom.string(), .default_paths = {etc, share}};
  EXPECT_EQ(find_config_file(source), std::filesystem::canonical(custom));
  source.config_path.clear();
  EXPECT_EQ(find_config_file(source), std::filesystem::canonical(share));
  dir.write("etc/configuration.toml", minimal);
  EXPECT_EQ(find_config_file(source), std::filesystem::canonical(etc));
}

TEST(Search, MissingFilesAreNamedWithWhatWasSearched) {
  TempDir dir;
  ConfigSource source{.config_path = (dir.path() / "nope.toml").string(), .default_paths = {dir.path() / "a.toml"}};
  auto message = error_of([&] { (void)find_config_file(source); });
  EXPECT_THAT(message, HasSubstr((dir.path() / "nope.toml").string() + " (runtime option config_path)"));
  source.config_path.clear();
  source.default_paths.push_back(dir.path() / "b.toml");
  message = error_of([&] { (void)find_config_file(source); });
  EXPECT_THAT(message, HasSubstr("no configuration file found; searched: " + (dir.path() / "a.toml").string() + ", " +
                                 (dir.path() / "b.toml").string()));
}

TEST(Search, DefaultListIsOrderedAndDeduplicated) {
  auto paths = default_config_paths();
  ASSERT_GE(paths.size(), 3U);
  EXPECT_EQ(paths.front(), "/etc/kata-containers/runtime-rs/configuration.toml");
  EXPECT_EQ(paths.back(), "/opt/kata/share/defaults/kata-containers/runtime-rs/configuration.toml");
  auto sorted = paths;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
}

TEST(DropIns, MergedInFilenameOrderTablesDeepScalarsAndArraysReplaced) {
  TempDir dir;
  auto base = dir.write("configuration.toml", std::string(minimal) + "\n[hypervisor.qemu.factory]\ntemplate_path = \"/t\"\n");
  dir.write("config.d/20-memory.toml", "[hypervisor.qemu]\ndefault_memory = 512\nkernel_params = \"b\"\n");
  dir.write("config.d/10-first.toml",
            "[hypervisor.qemu]\ndefault_memory = 256\nenable_annotations = [\"a\", \"b\"]\n[hypervisor.qemu.factory]\n"
            "enable_template = true\n");
  dir.write("config.d/30-args", "[hypervisor.qemu]\nenable_annotations = [\"c\"]\n");
  auto loaded = load_config_file(base, lexical_options());
  ASSERT_EQ(loaded.drop_ins.size(), 3U);
  EXPECT_EQ(loaded.drop_ins[0].filename(), "10-first.toml");
  const auto& hv = loaded.config.hypervisor.at("qemu");
  EXPECT_EQ(hv.memory.default_memory, 512U);
  EXPECT_EQ(hv.boot.kernel_params, "b");
  EXPECT_EQ(hv.boot.kernel, "/k/vmlinux");
  EXPECT_EQ(hv.security.enable_annotations, std::vector<std::string>{"c"});
  EXPECT_TRUE(hv.factory.enable_template);
  EXPECT_EQ(hv.factory.template_path, "/t");
}

TEST(DropIns, ErrorsPointIntoTheDropInFile) {
  TempDir dir;
  auto base = dir.write("configuration.toml", minimal);
  auto bad = dir.write("config.d/50-bad.toml", "[hypervisor.qemu]\ndefault_memory = \"lots\"\n");
  auto message = error_of([&] { (void)load_config_file(base, lexical_options()); });
  EXPECT_EQ(message, bad.string() + ": [hypervisor.qemu] default_memory: expected an integer, got string");
}

TEST(DropIns, NonRegularEntryIsAnErrorAndMissingDirectoryIsFine) {
  TempDir dir;
  auto base = dir.write("configuration.toml", minimal);
  EXPECT_NO_THROW((void)load_config_file(base, lexical_options()));
  std::filesystem::create_directories(dir.path() / "config.d/sub");
  auto message = error_of([&] { (void)load_config_file(base, lexical_options()); });
  EXPECT_THAT(message, HasSubstr("sub is not a regular file"));
}

TEST(Render, TomlRoundTripsAndJsonHasSections) {
  auto loaded = load_config_text(test::upstream_qemu_configuration, "c.toml", lexical_options());
  const std::string text = to_toml(loaded.config);
  auto again = load_config_text(text, "rendered.toml", lexical_options());
  EXPECT_THAT(again.warnings, testing::IsEmpty()) << text;
  EXPECT_EQ(to_json(again.config), to_json(loaded.config));
  auto json = to_json(loaded.config);
  EXPECT_EQ(json["hypervisor"]["qemu"]["default_memory"], 2048);
  EXPECT_EQ(json["agent"]["kata"]["create_container_timeout"], 30);
  EXPECT_EQ(json["runtime"]["hypervisor_name"], "qemu");
}

TEST(AgentKernelParams, FollowTheAgentSection) {
  auto loaded = load_config_text(minimal, "c.toml", lexical_options());
  auto& agent = loaded.config.agent.at("kata");
  agent.enable_debug = true;
  agent.debug_console_enabled = true;
  agent.container_pipe_size = 4096;
  auto params = agent_kernel_params(loaded.config);
  EXPECT_EQ(params.at("agent.log"), "debug");
  EXPECT_EQ(params.at("agent.debug_console"), "");
  EXPECT_EQ(params.at("agent.debug_console_vport"), "1026");
  EXPECT_EQ(params.at("agent.container_pipe_size"), "4096");
  EXPECT_EQ(params.at("agent.cdh_api_timeout"), "50");
}

TEST(SandboxConfig, FullPipelineAppendsAgentParamsAndValidates) {
  TempDir dir;
  auto file = dir.write("share/configuration.toml", minimal);
  ConfigSource source{.default_paths = {file}};
  auto loaded = load_sandbox_config(source, {}, lexical_options());
  EXPECT_EQ(loaded.file, std::filesystem::canonical(file));
  EXPECT_THAT(loaded.config.hypervisor.at("qemu").boot.kernel_params, HasSubstr("agent.log=debug"));
}

}  // namespace
}  // namespace kata::config
