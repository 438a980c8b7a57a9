#include "kata/oci/spec.hpp"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::oci {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path data_dir = KATA_OCI_TEST_DATA;

Json read_json(const std::string& name) {
  std::ifstream in(data_dir / name);
  return Json::parse(in);
}

// Exactly the message of the innermost error (parse errors are single-layer).
std::string error_of(std::string_view text) {
  try {
    (void)parse_spec(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    return e.what();
  }
  return "no error";
}

class Fixture : public ::testing::TestWithParam<const char*> {};

TEST_P(Fixture, RoundTripIsExact) {
  const Json original = read_json(GetParam());
  const Spec spec = load_spec(data_dir / GetParam());
  EXPECT_EQ(to_json(spec), original) << to_json(spec).dump(1);
  EXPECT_EQ(spec_from_json(to_json(spec)), spec);
}

INSTANTIATE_TEST_SUITE_P(Oci, Fixture, ::testing::Values("cri-sandbox.json", "cri-container.json", "ctr-run.json"));

TEST(OciSpec, CriContainerFieldsAreTyped) {
  const Spec spec = load_spec(data_dir / "cri-container.json");
  EXPECT_EQ(spec.oci_version, "1.0.2-dev");
  ASSERT_TRUE(spec.process);
  EXPECT_EQ(spec.process->args, (std::vector<std::string>{"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(spec.process->user.uid, 0U);
  EXPECT_EQ(spec.process->user.additional_gids.size(), 11U);
  EXPECT_EQ(spec.process->oom_score_adj, 1000);
  EXPECT_EQ(spec.process->apparmor_profile, "cri-containerd.apparmor.d");
  EXPECT_EQ(spec.process->capabilities->bounding.size(), 14U);
  EXPECT_FALSE(spec.process->terminal);
  ASSERT_TRUE(spec.root);
  EXPECT_EQ(spec.root->path, "rootfs");
  EXPECT_FALSE(spec.root->readonly);
  ASSERT_EQ(spec.mounts.size(), 7U);
  EXPECT_EQ(spec.mounts[5].destination, "/var/run/secrets/kubernetes.io/serviceaccount");
  EXPECT_EQ(spec.mounts[5].options, (std::vector<std::string>{"rbind", "rprivate", "ro"}));
  ASSERT_TRUE(spec.linux_spec && spec.linux_spec->resources);
  const Resources& r = *spec.linux_spec->resources;
  EXPECT_EQ(r.memory->limit, 268435456);
  EXPECT_EQ(r.memory->reservation, std::nullopt);
  EXPECT_EQ(r.cpu->quota, 50000);
  EXPECT_EQ(r.cpu->period, 100000U);
  EXPECT_EQ(r.cpu->shares, 512U);
  EXPECT_EQ(r.pids->limit, 4096);
  ASSERT_EQ(r.hugepage_limits.size(), 2U);
  EXPECT_EQ(r.hugepage_limits[1].page_size, "1GB");
  ASSERT_EQ(r.devices.size(), 1U);
  EXPECT_FALSE(r.devices[0].allow);
  EXPECT_EQ(r.devices[0].access, "rwm");
  EXPECT_EQ(r.extra["unified"]["memory.oom.group"], "1");  // not modelled, kept
  ASSERT_EQ(spec.linux_spec->devices.size(), 1U);
  EXPECT_EQ(spec.linux_spec->devices[0].file_mode, 438U);
  EXPECT_EQ(spec.linux_spec->namespaces[4].path, "/proc/20904/ns/net");
  EXPECT_EQ(spec.annotations.at("io.kubernetes.cri.container-name"), "nginx");
}

TEST(OciSpec, SandboxKeepsSeccompAsJson) {
  const Spec spec = load_spec(data_dir / "cri-sandbox.json");
  ASSERT_TRUE(spec.linux_spec->seccomp);
  EXPECT_EQ((*spec.linux_spec->seccomp)["defaultAction"], "SCMP_ACT_ERRNO");
  EXPECT_EQ(spec.linux_spec->sysctl.at("net.ipv4.ping_group_range"), "0 2147483647");
  EXPECT_EQ(spec.process->oom_score_adj, -998);
  EXPECT_TRUE(spec.root->readonly);
}

TEST(OciSpec, UnknownFieldsSurviveAtEveryLevel) {
  const Json original = Json::parse(R"({
    "ociVersion": "1.2.0",
    "vm": {"hypervisor": {"path": "/x"}},
    "process": {"cwd": "/", "user": {"uid": 1, "gid": 2, "umask": 18, "future": true},
                "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}, "scheduler": {"policy": "SCHED_OTHER"},
                "consoleSize": {"height": 24, "width": 80, "depth": 3},
                "rlimits": [{"type": "RLIMIT_CORE", "hard": 0, "soft": 0, "note": "x"}]},
    "mounts": [{"destination": "/data", "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}],
    "hooks": {"createRuntime": [{"path": "/bin/hook", "timeout": 5, "extra": 1}], "future": []},
    "linux": {"intelRdt": {"closID": "a"}, "personality": {"domain": "LINUX"},
              "resources": {"blockIO": {"weight": 10}, "cpu": {"quota": -1, "realtimeRuntime": 0, "future": 1},
                            "memory": {"limit": -1, "swappiness": 0, "disableOOMKiller": false}},
              "namespaces": [{"type": "time", "offsets": 3}],
              "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]},
    "annotations": {"a": "b"},
    "nullable": null,
    "domainname": null
  })");
  const Spec spec = spec_from_json(original);
  EXPECT_EQ(to_json(spec), original) << to_json(spec).dump(1);
  EXPECT_EQ(spec.process->user.umask, 18U);
  EXPECT_EQ(spec.process->console_size->width, 80U);
  EXPECT_EQ(spec.linux_spec->resources->memory->swappiness, 0U);
  EXPECT_EQ(spec.linux_spec->resources->memory->disable_oom_killer, false);
  EXPECT_EQ(spec.linux_spec->resources->cpu->quota, -1);
  EXPECT_EQ(spec.hooks->create_runtime[0].timeout, 5);
  EXPECT_EQ(spec.linux_spec->uid_mappings[0].host_id, 100000U);
}

TEST(OciSpec, ChangesAreWrittenOverKeptFields) {
  Spec spec = load_spec(data_dir / "ctr-run.json");
  spec.linux_spec->resources->cpu = Cpu{.quota = 150000, .period = 100000};
  spec.annotations["io.katacontainers.pkg.oci.container_type"] = "pod_sandbox";
  spec.process->terminal = false;
  spec.hostname.clear();
  const Json out = to_json(spec);
  EXPECT_EQ(out["linux"]["resources"]["cpu"], Json::parse(R"({"quota": 150000, "period": 100000})"));
  EXPECT_EQ(out["annotations"]["io.katacontainers.pkg.oci.container_type"], "pod_sandbox");
  EXPECT_FALSE(out["process"].contains("terminal"));
  EXPECT_FALSE(out.contains("hostname"));
  EXPECT_EQ(out["process"]["user"], Json::parse(R"({"uid": 0, "gid": 0})"));  // Go always writes uid/gid
}

TEST(OciSpec, ErrorsNameFileAndPath) {
  EXPECT_EQ(error_of(R"({"linux": {"resources": {"cpu": {"quota": "50000"}}}})"),
            "config.json: linux.resources.cpu.quota: expected integer, found a string");
  EXPECT_EQ(error_of(R"({"linux": {"resources": {"cpu": {"shares": -2}}}})"),
            "config.json: linux.resources.cpu.shares: expected integer in [0, 18446744073709551615], found -2");
  EXPECT_EQ(error_of(R"({"process": {"user": {"uid": 4294967296}}})"),
            "config.json: process.user.uid: expected integer in [0, 4294967295], found 4294967296");
  EXPECT_EQ(error_of(R"({"process": {"oomScoreAdj": 1.5}})"),
            "config.json: process.oomScoreAdj: expected integer, found a fraction");
  EXPECT_EQ(error_of(R"({"mounts": [{"destination": "/a"}, {"destination": 3}]})"),
            "config.json: mounts[1].destination: expected string, found a number");
  EXPECT_EQ(error_of(R"({"annotations": {"io.katacontainers.config.hypervisor.default_vcpus": 2}})"),
            "config.json: annotations[\"io.katacontainers.config.hypervisor.default_vcpus\"]: expected string, found a number");
  EXPECT_EQ(error_of(R"({"linux": {"namespaces": {"type": "pid"}}})"),
            "config.json: linux.namespaces: expected array, found an object");
  EXPECT_EQ(error_of(R"({"process": {"terminal": "yes"}})"), "config.json: process.terminal: expected boolean, found a string");
  EXPECT_EQ(error_of("[]"), "config.json: expected a JSON object, found an array");
  EXPECT_THAT(error_of(R"({"ociVersion": )"), HasSubstr("config.json: not valid JSON: "));
}

TEST(OciSpec, LoadNamesTheFile) {
  try {
    (void)load_spec(data_dir / "missing.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
    EXPECT_THAT(e.what(), HasSubstr("missing.json"));
  }
}

}  // namespace
}  // namespace kata::oci
