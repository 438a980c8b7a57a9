#include "kata/persist/state.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kata::persist {
namespace {

using ::testing::UnorderedElementsAre;

SandboxState full_state() {
  SandboxState s;
  s.resource.endpoint.push_back(EndpointState{.veth_endpoint = LinkEndpointState{"eth0", true}});
  s.resource.endpoint.push_back(EndpointState{.tap_endpoint = TapEndpointState{"tap0_kata"}});
  s.resource.endpoint.push_back(EndpointState{
      .physical_endpoint = PhysicalEndpointState{"0000:00:1f.6", "e1000e", "0x8086", "0x15b7", "aa:bb:cc:dd:ee:ff",
                                                 false, "enp0s31f6", "pci"}});
  s.resource.cgroup_state = CgroupState{"/kata_sb", "/kata_overhead/sb", true, false};
  auto& h = s.hypervisor;
  h.hypervisor_type = "qemu";
  h.pid = 4242;
  h.uuid = "6f1c3a52-0000-4000-8000-000000000001";
  h.id = "sb-1";
  h.jailer_root = "/run/kata/sb-1/root";
  h.netns = "/var/run/netns/cni-1234";
  h.config = {{"path", "/usr/bin/qemu-system-x86_64"}, {"default_vcpus", 1}};
  h.run_dir = "/run/kata/sb-1";
  h.cached_block_devices = {"vda", "vdb"};
  h.virtiofs_daemon_pid = 4243;
  h.passfd_listener_port = 1027;
  h.guest_protection_to_use = "NoProtection";
  s.cleanup.processes = {{"vmm", 4242, 987654}, {"virtiofsd", 4243, 987650}};
  s.cleanup.mounts = {"/run/kata-containers/shared/sandboxes/sb-1/rw", "/run/kata-containers/shared/sandboxes/sb-1/ro"};
  s.cleanup.links = {{"tap0_kata", "/var/run/netns/cni-1234"}};
  s.cleanup.network_namespaces = {"/var/run/netns/kata-sb-1"};
  s.cleanup.directories = {"/run/kata-containers/shared/sandboxes/sb-1"};
  return s;
}

TEST(SandboxStateJson, RoundTripKeepsEverything) {
  const SandboxState original = full_state();
  std::vector<std::string> warnings;
  const SandboxState back = state_from_json(nlohmann::json::parse(to_json(original).dump()), warnings);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(back, original);
}

TEST(SandboxStateJson, UsesUpstreamFieldNames) {
  const nlohmann::json j = to_json(full_state());
  EXPECT_EQ(j["sandbox_type"], "virt_container");
  EXPECT_EQ(j["resource"]["endpoint"][0]["veth_endpoint"]["if_name"], "eth0");
  EXPECT_TRUE(j["resource"]["endpoint"][0]["tap_endpoint"].is_null());
  EXPECT_EQ(j["resource"]["cgroup_state"]["overhead_path"], "/kata_overhead/sb");
  EXPECT_EQ(j["hypervisor"]["hypervisor_type"], "qemu");
  EXPECT_EQ(j["hypervisor"]["pid"], 4242);
  EXPECT_EQ(j["hypervisor"]["virtiofs_daemon_pid"], 4243);
  EXPECT_EQ(j["hypervisor"]["cached_block_devices"], nlohmann::json({"vda", "vdb"}));
  EXPECT_EQ(j["cleanup"]["processes"][0]["start_time"], 987654);
  SandboxState empty;
  const nlohmann::json e = to_json(empty);
  EXPECT_TRUE(e["hypervisor"]["pid"].is_null());
  EXPECT_TRUE(e["hypervisor"]["netns"].is_null());
  EXPECT_TRUE(e["resource"]["cgroup_state"].is_null());
}

TEST(SandboxStateJson, CachedBlockDevicesAreASet) {
  SandboxState s;
  s.hypervisor.cached_block_devices = {"vdb", "vda", "vdb"};
  EXPECT_EQ(to_json(s)["hypervisor"]["cached_block_devices"], nlohmann::json({"vda", "vdb"}));
}

TEST(SandboxStateJson, PartialDocumentKeepsDefaults) {
  // What upstream's QEMU backend writes: type, id and config only; no cleanup section at all.
  const auto doc = nlohmann::json::parse(R"({
    "sandbox_type": "virt_container",
    "hypervisor": {"hypervisor_type": "qemu", "id": "sb-2", "config": {"path": "/usr/bin/qemu"}},
    "resource": {"endpoint": [{"tap_endpoint": {"if_name": "tap0"}}], "unknown_key": 1}
  })");
  std::vector<std::string> warnings;
  const SandboxState s = state_from_json(doc, warnings);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(s.hypervisor.hypervisor_type, "qemu");
  EXPECT_EQ(s.hypervisor.id, "sb-2");
  EXPECT_EQ(s.hypervisor.pid, std::nullopt);
  EXPECT_EQ(s.hypervisor.config["path"], "/usr/bin/qemu");
  ASSERT_EQ(s.resource.endpoint.size(), 1U);
  EXPECT_EQ(s.resource.endpoint[0].tap_endpoint->if_name, "tap0");
  EXPECT_FALSE(s.resource.cgroup_state.has_value());
  EXPECT_TRUE(s.cleanup.processes.empty());
}

TEST(SandboxStateJson, MistypedKeysAreSkippedWithWarnings) {
  const auto doc = nlohmann::json::parse(R"({
    "sandbox_type": 7,
    "hypervisor": {"hypervisor_type": "clh", "pid": "not a number", "virtiofs_daemon_pid": 99999999999,
                   "cached_block_devices": ["vda", 3]},
    "resource": {"endpoint": "nope", "cgroup_state": {"path": "/x", "sandbox_cgroup_only": "yes"}},
    "cleanup": {"processes": [{"role": "vmm", "pid": 10}, {"role": "virtiofsd", "pid": 11, "start_time": 5}, 3],
                "mounts": ["/m1"]}
  })");
  std::vector<std::string> warnings;
  const SandboxState s = state_from_json(doc, warnings);
  EXPECT_THAT(warnings, UnorderedElementsAre("sandbox_type: expected string", "hypervisor.pid: expected an integer in range",
                                             "hypervisor.virtiofs_daemon_pid: expected an integer in range",
                                             "hypervisor.cached_block_devices[1]: expected string",
                                             "resource.endpoint: expected array",
                                             "resource.cgroup_state.sandbox_cgroup_only: expected boolean",
                                             "cleanup.processes[2]: expected object"));
  EXPECT_EQ(s.sandbox_type, "virt_container");
  EXPECT_EQ(s.hypervisor.hypervisor_type, "clh");
  EXPECT_EQ(s.hypervisor.pid, std::nullopt);
  EXPECT_EQ(s.hypervisor.cached_block_devices, std::vector<std::string>{"vda"});
  EXPECT_EQ(s.resource.cgroup_state->path, "/x");
  // A process without its start time can never be killed safely, so it is not kept.
  ASSERT_EQ(s.cleanup.processes.size(), 1U);
  EXPECT_EQ(s.cleanup.processes[0].role, "virtiofsd");
  EXPECT_EQ(s.cleanup.mounts, std::vector<std::string>{"/m1"});
}

TEST(SandboxStateJson, NonObjectDocumentYieldsDefaults) {
  std::vector<std::string> warnings;
  const SandboxState s = state_from_json(nlohmann::json::array(), warnings);
  EXPECT_EQ(s, SandboxState{});
  EXPECT_EQ(warnings, std::vector<std::string>{"document: expected object"});
}

}  // namespace
}  // namespace kata::persist
