#include "kata/agent/oci_conversion.hpp"

#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::agent {
namespace {

// A spec with every area the conversion touches; what has a place in grpc.Spec must survive a
// round trip unchanged, so the guest agent sees what containerd asked for.
constexpr std::string_view kSpec = R"({
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": true, "consoleSize": {"height": 24, "width": 80},
    "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "username": "app"},
    "args": ["/bin/sh", "-c", "echo hi"], "env": ["PATH=/bin", "A=b"], "cwd": "/work",
    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
    "noNewPrivileges": true, "oomScoreAdj": 100
  },
  "root": {"path": "/run/kata-containers/shared/containers/passthrough/c1/rootfs", "readonly": true},
  "hostname": "pod",
  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]}],
  "hooks": {"startContainer": [{"path": "/bin/hook", "args": ["hook", "x"], "timeout": 5}]},
  "annotations": {"io.kubernetes.cri.container-type": "container"},
  "linux": {
    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
    "sysctl": {"net.ipv4.ip_forward": "1"},
    "resources": {
      "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
      "memory": {"limit": 268435456, "swappiness": 0},
      "cpu": {"shares": 1024, "quota": 120000, "period": 100000, "cpus": "0-1"},
      "pids": {"limit": 64},
      "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
    },
    "cgroupsPath": "/kubepods/pod1/c1",
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/42/ns/net"}],
    "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
    "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                              "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]},
    "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]
  }
})";

TEST(OciConversion, RoundTripKeepsEverythingTheMirrorCanHold) {
  const oci::Spec original = oci::parse_spec(kSpec, "test");
  const grpc::Spec wire = to_agent_spec(original);
  EXPECT_EQ(wire.process().args(2), "echo hi");
  EXPECT_EQ(wire.process().user().additionalgids_size(), 2);
  EXPECT_EQ(wire.linux().resources().cpu().quota(), 120000);
  EXPECT_EQ(wire.linux().resources().devices(0).major(), -1) << "absent major means 'all' (-1) on the wire";
  EXPECT_EQ(wire.linux().seccomp().syscalls(1).errnoret(), 1u);
  EXPECT_EQ(wire.hooks().startcontainer(0).timeout(), 5);

  // Through bytes, as the agent receives it.
  grpc::Spec received;
  ASSERT_TRUE(received.ParseFromString(wire.SerializeAsString()));
  const oci::Spec back = from_agent_spec(received);

  EXPECT_EQ(back.process->args, original.process->args);
  EXPECT_EQ(back.process->env, original.process->env);
  EXPECT_EQ(back.process->user.additional_gids, original.process->user.additional_gids);
  EXPECT_EQ(back.process->rlimits, original.process->rlimits);
  EXPECT_EQ(back.process->oom_score_adj, 100);
  EXPECT_EQ(back.root->path, original.root->path);
  EXPECT_TRUE(back.root->readonly);
  EXPECT_EQ(back.mounts, original.mounts);
  EXPECT_EQ(back.hooks->start_container.at(0).args, (std::vector<std::string>{"hook", "x"}));
  EXPECT_EQ(back.annotations, original.annotations);
  const auto& l = *back.linux_spec;
  EXPECT_EQ(l.namespaces, original.linux_spec->namespaces);
  EXPECT_EQ(l.resources->memory->limit, 268435456);
  EXPECT_EQ(l.resources->cpu->cpus, "0-1");
  EXPECT_EQ(l.resources->pids->limit, 64);
  EXPECT_EQ(l.resources->devices.at(1).major, 1);
  EXPECT_FALSE(l.resources->devices.at(0).major.has_value());
  EXPECT_EQ(l.devices.at(0).file_mode, 438u);
  EXPECT_EQ(l.seccomp->at("syscalls").at(1).at("errnoRet"), 1);
  EXPECT_EQ(l.seccomp->at("syscalls").at(1).at("args").at(0).at("op"), "SCMP_CMP_EQ");
  EXPECT_EQ(l.masked_paths, original.linux_spec->masked_paths);
  EXPECT_EQ(l.uid_mappings.at(0).host_id, 1000u);
}

TEST(OciConversion, MalformedSeccompIsAnErrorNamingIt) {
  oci::Spec spec = oci::parse_spec(R"({"ociVersion":"1.0.2","linux":{"seccomp":{"syscalls":[{"names":[7]}]}}})", "test");
  try {
    (void)to_agent_spec(spec);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(describe(e).find("convert linux.seccomp"), std::string::npos) << describe(e);
  }
}

}  // namespace
}  // namespace kata::agent
