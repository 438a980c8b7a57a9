#include "kata/agent_guest/container_spec.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>

#include "kata/core/error.hpp"
#include "support/async_test.hpp"

namespace kata::agent_guest {
namespace {

oci::Spec spec_with_root(const std::filesystem::path& root) {
  return oci::parse_spec(R"({
    "ociVersion": "1.1.0",
    "process": {"args": ["sh", "-c", "true"], "env": ["PATH=/bin"], "cwd": "/work",
                "user": {"uid": 1000, "gid": 100, "umask": 18, "additionalGids": [5, 6]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}], "noNewPrivileges": true},
    "root": {"path": ")" + root.string() + R"(", "readonly": true},
    "hostname": "box",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network", "path": "/x"}],
              "resources": {"memory": {"limit": 33554432}, "cpu": {"quota": 50000, "period": 100000, "cpus": "0"},
                            "pids": {"limit": 0}},
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"], "rootfsPropagation": "rprivate"}
  })", "test");
}

bool has_namespace(const SpawnRequest& request, int type) {
  return std::any_of(request.namespaces.begin(), request.namespaces.end(),
                     [&](const NamespaceSpec& ns) { return ns.type == type; });
}

TEST(ContainerSpec, TranslatesAContainerInit) {
  const testing::TempDir dir("container-spec");
  const SpawnRequest request = container_spawn_request(spec_with_root(dir.path()), "/sys/fs/cgroup/kata/c1");
  EXPECT_TRUE(request.hold_before_exec);
  EXPECT_EQ(request.cgroup, "/sys/fs/cgroup/kata/c1");
  EXPECT_EQ(request.process.args, (std::vector<std::string>{"sh", "-c", "true"}));
  EXPECT_EQ(request.process.cwd, "/work");
  EXPECT_EQ(request.process.uid, 1000u);
  EXPECT_EQ(request.process.gid, 100u);
  EXPECT_EQ(request.process.additional_gids, (std::vector<gid_t>{5, 6}));
  EXPECT_EQ(request.process.umask, mode_t{18});
  EXPECT_TRUE(request.process.no_new_privileges);
  ASSERT_EQ(request.process.rlimits.size(), 1u);
  EXPECT_EQ(request.process.rlimits[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ(request.process.rlimits[0].soft, 512u);
  // New mount, pid, uts and ipc namespaces; the network namespace stays the sandbox's.
  EXPECT_TRUE(has_namespace(request, CLONE_NEWNS));
  EXPECT_TRUE(has_namespace(request, CLONE_NEWPID));
  EXPECT_TRUE(has_namespace(request, CLONE_NEWUTS));
  EXPECT_TRUE(has_namespace(request, CLONE_NEWIPC));
  EXPECT_FALSE(has_namespace(request, CLONE_NEWNET));
  ASSERT_TRUE(request.rootfs);
  EXPECT_EQ(request.rootfs->path, dir.path());
  EXPECT_TRUE(request.rootfs->read_only);
  EXPECT_EQ(request.rootfs->hostname, "box");
  EXPECT_EQ(request.rootfs->propagation, "rprivate");
  ASSERT_EQ(request.rootfs->mounts.size(), 1u);
  EXPECT_EQ(request.rootfs->mounts[0].type, "proc");
  EXPECT_EQ(request.rootfs->masked_paths, std::vector<std::string>{"/proc/kcore"});
  EXPECT_EQ(request.rootfs->readonly_paths, std::vector<std::string>{"/proc/sys"});
  EXPECT_NE(std::find(request.rootfs->devices.begin(), request.rootfs->devices.end(), "/dev/null"),
            request.rootfs->devices.end());
}

TEST(ContainerSpec, CgroupMountsBecomeCgroup2) {
  const testing::TempDir dir("container-spec");
  oci::Spec spec = spec_with_root(dir.path());
  spec.mounts.push_back({.destination = "/sys/fs/cgroup", .type = "cgroup", .source = "cgroup",
                         .options = {"nosuid", "noexec", "nodev", "relatime", "ro"}});
  const SpawnRequest request = container_spawn_request(spec, "/sys/fs/cgroup/kata/c1");
  ASSERT_EQ(request.rootfs->mounts.size(), 2u);
  EXPECT_EQ(request.rootfs->mounts[1].type, "cgroup2");
  EXPECT_EQ(request.rootfs->mounts[1].source, "cgroup2");
  EXPECT_EQ(request.rootfs->mounts[1].options.back(), "ro");
}

TEST(ContainerSpec, CgroupLimitsTreatZeroAsUnset) {
  const testing::TempDir dir("container-spec");
  const oci::Spec spec = spec_with_root(dir.path());
  const CgroupResources resources = cgroup_resources(*spec.linux_spec->resources);
  EXPECT_EQ(resources.memory_limit, 33554432);
  EXPECT_EQ(resources.cpu_quota, 50000);
  EXPECT_EQ(resources.cpu_period, 100000u);
  EXPECT_EQ(resources.cpuset_cpus, "0");
  EXPECT_FALSE(resources.pids_limit);
  EXPECT_FALSE(resources.cpu_shares);
}

std::pair<Errc, std::string> error_of(const oci::Spec& spec) {
  try {
    (void)container_spawn_request(spec, "/sys/fs/cgroup/kata/c1");
  } catch (const std::exception& error) {
    return {code_of(error), describe(error)};
  }
  return {Errc::ok, ""};
}

TEST(ContainerSpec, BadSpecsGetOneClearError) {
  const testing::TempDir dir("container-spec");
  oci::Spec spec = spec_with_root(dir.path());
  spec.process->rlimits[0].type = "RLIMIT_NOPE";
  auto [code, message] = error_of(spec);
  EXPECT_EQ(code, Errc::invalid_argument);
  EXPECT_NE(message.find("RLIMIT_NOPE"), std::string::npos) << message;

  spec = spec_with_root(dir.path());
  spec.process->args.clear();
  std::tie(code, message) = error_of(spec);
  EXPECT_EQ(code, Errc::invalid_argument);
  EXPECT_NE(message.find("process.args"), std::string::npos) << message;

  spec = spec_with_root(dir.path() / "missing");
  std::tie(code, message) = error_of(spec);
  EXPECT_EQ(code, Errc::not_found);
  EXPECT_NE(message.find("missing"), std::string::npos) << message;

  spec = spec_with_root(dir.path());
  spec.linux_spec->namespaces.push_back({.type = "user"});
  std::tie(code, message) = error_of(spec);
  EXPECT_EQ(code, Errc::invalid_argument);
  EXPECT_NE(message.find("user namespaces"), std::string::npos) << message;

  spec = spec_with_root(dir.path());
  spec.process->cwd = "relative";
  std::tie(code, message) = error_of(spec);
  EXPECT_EQ(code, Errc::invalid_argument);
  EXPECT_NE(message.find("process.cwd"), std::string::npos) << message;
}

TEST(ContainerSpec, ExecJoinsTheInitsNamespaces) {
  oci::Process process;
  process.args = {"ls"};
  const SpawnRequest request = exec_spawn_request(process, 42, "/sys/fs/cgroup/kata/c1");
  EXPECT_FALSE(request.rootfs);
  EXPECT_FALSE(request.hold_before_exec);
  ASSERT_FALSE(request.namespaces.empty());
  for (const auto& ns : request.namespaces) EXPECT_EQ(ns.path.parent_path(), "/proc/42/ns");
  EXPECT_TRUE(has_namespace(request, CLONE_NEWPID));
  EXPECT_EQ(request.process.cwd, "/");
}

}  // namespace
}  // namespace kata::agent_guest
