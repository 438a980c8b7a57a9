// Kata agent messages (package grpc / types / hypervisor): byte-exact vectors derived by hand from
// upstream's field numbers, and round trips of a representative CreateContainerRequest.
#include "unit/protocols/wire_bytes.hpp"

#include "kata/agent.pb.h"
#include "kata/health.pb.h"
#include "kata/remote.pb.h"

#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <gtest/gtest.h>

namespace kata::protocols::test {
namespace {

TEST(AgentMessages, InterfaceMatchesHandDerivedBytes) {
  types::Interface interface;
  interface.set_device("eth0");
  interface.set_name("eth0");
  auto* v4 = interface.add_ipaddresses();
  v4->set_family(types::v4);
  v4->set_address("10.88.0.2");
  v4->set_mask("24");
  auto* v6 = interface.add_ipaddresses();
  v6->set_family(types::v6);
  v6->set_address("fe80::1");
  v6->set_mask("64");
  interface.set_mtu(1500);
  interface.set_hwaddr("02:42:ac:11:00:02");
  interface.set_raw_flags(0x1043);  // IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST

  const std::string expected = hex("0a04") + "eth0" + hex("1204") + "eth0" +
                               hex("1a0f (1209") + "10.88.0.2" + hex("1a02") + "24" +
                               hex("1a0f (0801 1207") + "fe80::1" + hex("1a02") + "64" +
                               hex("20 dc0b  2a11") + "02:42:ac:11:00:02" + hex("40 c320");
  EXPECT_EQ(to_hex(interface.SerializeAsString()), to_hex(expected));

  types::Interface decoded;
  ASSERT_TRUE(decoded.ParseFromString(expected));
  ASSERT_EQ(decoded.ipaddresses_size(), 2);
  EXPECT_EQ(decoded.ipaddresses(1).family(), types::v6);
  EXPECT_EQ(decoded.ipaddresses(1).address(), "fe80::1");
  EXPECT_EQ(decoded.mtu(), 1500u);
  EXPECT_EQ(decoded.raw_flags(), 0x1043u);
}

TEST(AgentMessages, UpdateInterfaceRequestWrapsInterface) {
  grpc::UpdateInterfaceRequest request;
  request.mutable_interface()->set_name("eth0");
  EXPECT_EQ(to_hex(request.SerializeAsString()), to_hex(hex("0a06 (1204") + "eth0"));
}

TEST(AgentMessages, RoutesAndArpNeighbors) {
  grpc::UpdateRoutesRequest routes;
  auto* route = routes.mutable_routes()->add_routes();
  route->set_dest("10.88.0.0/24");
  route->set_device("eth0");
  route->set_source("10.88.0.2");
  route->set_scope(253);  // RT_SCOPE_LINK
  EXPECT_EQ(to_hex(routes.SerializeAsString()),
            to_hex(hex("0a24 (0a22 (0a0c") + "10.88.0.0/24" + hex("1a04") + "eth0" + hex("2209") + "10.88.0.2" +
                   hex("28 fd01))")));

  grpc::AddARPNeighborsRequest neighbors;
  auto* neighbor = neighbors.mutable_neighbors()->add_arpneighbors();
  neighbor->mutable_toipaddress()->set_address("10.88.0.1");
  neighbor->set_device("eth0");
  neighbor->set_lladdr("aa:bb:cc:dd:ee:ff");
  neighbor->set_state(0x80);  // NUD_PERMANENT
  EXPECT_EQ(to_hex(neighbors.SerializeAsString()),
            to_hex(hex("0a2b (0a29 (0a0b (1209") + "10.88.0.1" + hex(") 1204") + "eth0" + hex("1a11") +
                   "aa:bb:cc:dd:ee:ff" + hex("20 8001))")));
}

TEST(AgentMessages, CreateContainerRequestScalarsAndPorts) {
  grpc::CreateContainerRequest request;
  request.set_container_id("c1");
  request.set_exec_id("c1");
  request.set_sandbox_pidns(true);
  request.set_stdout_port(1025);
  EXPECT_EQ(to_hex(request.SerializeAsString()),
            to_hex(hex("0a02") + "c1" + hex("1202") + "c1" + hex("3801 50 8108")));
}

TEST(AgentMessages, StorageWithFsGroup) {
  grpc::Storage storage;
  storage.set_driver("virtio-fs");
  storage.set_source("kataShared");
  storage.set_fstype("virtiofs");
  storage.set_mount_point("/m");
  storage.mutable_fs_group()->set_group_id(1000);
  storage.mutable_fs_group()->set_group_change_policy(types::OnRootMismatch);
  storage.set_shared(true);
  EXPECT_EQ(to_hex(storage.SerializeAsString()),
            to_hex(hex("0a09") + "virtio-fs" + hex("1a0a") + "kataShared" + hex("2208") + "virtiofs" + hex("3202") +
                   "/m" + hex("3a05 (10 e807 1801)  4001")));
}

// oneof ErrnoRet keeps "errno 0" distinct from "no errno": the zero value is on the wire.
TEST(AgentMessages, SeccompErrnoZeroIsPresent) {
  grpc::LinuxSyscall syscall;
  syscall.add_names("mkdir");
  syscall.set_action("SCMP_ACT_ERRNO");
  syscall.set_errnoret(0);
  const std::string with_errno = hex("0a05") + "mkdir" + hex("120e") + "SCMP_ACT_ERRNO" + hex("1800");
  EXPECT_EQ(to_hex(syscall.SerializeAsString()), to_hex(with_errno));

  grpc::LinuxSyscall decoded;
  ASSERT_TRUE(decoded.ParseFromString(with_errno));
  EXPECT_EQ(decoded.ErrnoRet_case(), grpc::LinuxSyscall::kErrnoret);
  ASSERT_TRUE(decoded.ParseFromString(with_errno.substr(0, with_errno.size() - 2)));
  EXPECT_EQ(decoded.ErrnoRet_case(), grpc::LinuxSyscall::ERRNORET_NOT_SET);
}

TEST(AgentMessages, NegativeInt64IsTenByteVarint) {
  grpc::Process process;
  process.set_oomscoreadj(-998);
  EXPECT_EQ(to_hex(process.SerializeAsString()), "589af8ffffffffffffff01");
}

// proto3 `optional`: an explicit false is sent, an unset knob is not.
TEST(AgentMessages, MemAgentOptionalFieldsTrackPresence) {
  grpc::MemAgentMemcgConfig config;
  EXPECT_EQ(config.SerializeAsString(), "");
  config.set_disabled(false);
  EXPECT_EQ(to_hex(config.SerializeAsString()), "0800");
}

TEST(AgentMessages, HealthAndWaitResponses) {
  grpc::HealthCheckResponse health;
  health.set_status(grpc::HealthCheckResponse::SERVING);
  EXPECT_EQ(to_hex(health.SerializeAsString()), "0801");

  grpc::WaitProcessResponse wait;
  wait.set_status(-1);  // int32: sign-extended to 64 bits on the wire
  EXPECT_EQ(to_hex(wait.SerializeAsString()), "08ffffffffffffffffff01");
}

TEST(AgentMessages, WriteStdinCarriesBinaryData) {
  grpc::WriteStreamRequest request;
  request.set_container_id("c");
  request.set_data(std::string("\0\xff\n", 3));
  EXPECT_EQ(to_hex(request.SerializeAsString()), to_hex(hex("0a01") + "c" + hex("1a03 00ff0a")));
}

TEST(RemoteHypervisorMessages, CreateVmRequestMapEntry) {
  hypervisor::CreateVMRequest request;
  request.set_id("p");
  (*request.mutable_annotations())["k"] = "v";
  EXPECT_EQ(to_hex(request.SerializeAsString()), to_hex(hex("0a01") + "p" + hex("1206 (0a01") + "k" + hex("1201") + "v"));
}

std::string deterministic_bytes(const google::protobuf::MessageLite& message) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

grpc::CreateContainerRequest representative_create_container() {
  grpc::CreateContainerRequest request;
  request.set_container_id("0123456789abcdef");
  request.set_exec_id("0123456789abcdef");
  request.mutable_string_user()->set_uid("0");
  request.mutable_string_user()->add_additionalgids("10");

  auto* device = request.add_devices();
  device->set_id("vda");
  device->set_type("blk");
  device->set_vm_path("/dev/vda");
  device->set_container_path("/dev/xvda");

  auto* rootfs = request.add_storages();
  rootfs->set_driver("virtio-fs");
  rootfs->set_source("kataShared");
  rootfs->set_fstype("virtiofs");
  rootfs->add_options("nodev");
  rootfs->set_mount_point("/run/kata-containers/shared/containers/0123456789abcdef/rootfs");

  auto* spec = request.mutable_oci();
  spec->set_version("1.0.2-dev");
  spec->set_hostname("pod");
  (*spec->mutable_annotations())["io.kubernetes.cri.container-type"] = "container";
  (*spec->mutable_annotations())["io.kubernetes.cri.sandbox-id"] = "fedcba9876543210";
  auto* process = spec->mutable_process();
  process->set_terminal(false);
  process->mutable_user()->set_uid(1000);
  process->mutable_user()->add_additionalgids(10);
  process->add_args("sh");
  process->add_args("-c");
  process->add_args("echo hi");
  process->add_env("PATH=/usr/bin:/bin");
  process->set_cwd("/");
  process->mutable_capabilities()->add_bounding("CAP_NET_BIND_SERVICE");
  auto* rlimit = process->add_rlimits();
  rlimit->set_type("RLIMIT_NOFILE");
  rlimit->set_hard(1024);
  rlimit->set_soft(1024);
  process->set_oomscoreadj(-998);
  spec->mutable_root()->set_path("/run/kata-containers/0123456789abcdef/rootfs");
  auto* mount = spec->add_mounts();
  mount->set_destination("/proc");
  mount->set_source("proc");
  mount->set_type("proc");
  mount->add_options("nosuid");
  spec->mutable_hooks()->add_createruntime()->set_path("/bin/hook");

  auto* linux_section = spec->mutable_linux();
  (*linux_section->mutable_sysctl())["net.ipv4.ip_forward"] = "1";
  linux_section->set_cgroupspath("/kubepods/pod1/0123456789abcdef");
  linux_section->add_namespaces()->set_type("mount");
  auto* netns = linux_section->add_namespaces();
  netns->set_type("network");
  netns->set_path("/var/run/netns/cni-1");
  auto* resources = linux_section->mutable_resources();
  resources->mutable_cpu()->set_quota(120000);
  resources->mutable_cpu()->set_period(100000);
  resources->mutable_memory()->set_limit(256 << 20);
  auto* cgroup_device = resources->add_devices();
  cgroup_device->set_allow(false);
  cgroup_device->set_access("rwm");
  auto* seccomp = linux_section->mutable_seccomp();
  seccomp->set_defaultaction("SCMP_ACT_ERRNO");
  auto* syscall = seccomp->add_syscalls();
  syscall->add_names("read");
  syscall->set_action("SCMP_ACT_ALLOW");
  linux_section->add_maskedpaths("/proc/kcore");

  request.set_sandbox_pidns(true);
  auto* shared = request.add_shared_mounts();
  shared->set_name("logs");
  shared->set_src_ctr("a");
  shared->set_dst_ctr("b");
  return request;
}

TEST(AgentMessages, CreateContainerRequestRoundTrips) {
  const grpc::CreateContainerRequest original = representative_create_container();
  const std::string bytes = original.SerializeAsString();

  grpc::CreateContainerRequest decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes));
  EXPECT_EQ(decoded.container_id(), "0123456789abcdef");
  EXPECT_EQ(decoded.string_user().additionalgids(0), "10");
  ASSERT_EQ(decoded.devices_size(), 1);
  EXPECT_EQ(decoded.devices(0).container_path(), "/dev/xvda");
  EXPECT_EQ(decoded.storages(0).options(0), "nodev");
  const auto& spec = decoded.oci();
  EXPECT_EQ(spec.annotations().at("io.kubernetes.cri.sandbox-id"), "fedcba9876543210");
  EXPECT_EQ(spec.process().args(2), "echo hi");
  EXPECT_EQ(spec.process().user().uid(), 1000u);
  EXPECT_EQ(spec.process().rlimits(0).soft(), 1024u);
  EXPECT_EQ(spec.process().oomscoreadj(), -998);
  EXPECT_EQ(spec.hooks().createruntime(0).path(), "/bin/hook");
  EXPECT_EQ(spec.linux().namespaces(1).path(), "/var/run/netns/cni-1");
  EXPECT_EQ(spec.linux().resources().cpu().quota(), 120000);
  EXPECT_EQ(spec.linux().resources().memory().limit(), 256 << 20);
  EXPECT_EQ(spec.linux().resources().devices(0).access(), "rwm");
  EXPECT_EQ(spec.linux().seccomp().syscalls(0).names(0), "read");
  EXPECT_EQ(spec.linux().sysctl().at("net.ipv4.ip_forward"), "1");
  EXPECT_TRUE(decoded.sandbox_pidns());
  EXPECT_EQ(decoded.shared_mounts(0).dst_ctr(), "b");

  // Map entries have no defined order on the wire, so compare deterministic encodings.
  EXPECT_EQ(to_hex(deterministic_bytes(decoded)), to_hex(deterministic_bytes(original)));
  EXPECT_EQ(deterministic_bytes(original).size(), bytes.size());
}

TEST(AgentMessages, StatsContainerResponseRoundTrips) {
  grpc::StatsContainerResponse response;
  auto* cgroup = response.mutable_cgroup_stats();
  cgroup->mutable_cpu_stats()->mutable_cpu_usage()->set_total_usage(123456789);
  cgroup->mutable_cpu_stats()->mutable_cpu_usage()->add_percpu_usage(1);
  cgroup->mutable_cpu_stats()->mutable_cpu_usage()->add_percpu_usage(2);
  cgroup->mutable_memory_stats()->mutable_usage()->set_usage(4096);
  (*cgroup->mutable_memory_stats()->mutable_stats())["rss"] = 8192;
  (*cgroup->mutable_hugetlb_stats())["2MB"].set_usage(2 << 20);
  auto* net = response.add_network_stats();
  net->set_name("eth0");
  net->set_rx_bytes(10);

  grpc::StatsContainerResponse decoded;
  ASSERT_TRUE(decoded.ParseFromString(response.SerializeAsString()));
  EXPECT_EQ(decoded.cgroup_stats().cpu_stats().cpu_usage().percpu_usage(1), 2u);
  EXPECT_EQ(decoded.cgroup_stats().memory_stats().stats().at("rss"), 8192u);
  EXPECT_EQ(decoded.cgroup_stats().hugetlb_stats().at("2MB").usage(), 2u << 20);
  EXPECT_EQ(decoded.network_stats(0).rx_bytes(), 10u);
}

// percpu_usage is a proto3 repeated scalar: packed on the wire (one length-delimited field).
TEST(AgentMessages, RepeatedScalarsArePacked) {
  grpc::CpuUsage usage;
  usage.add_percpu_usage(1);
  usage.add_percpu_usage(300);
  EXPECT_EQ(to_hex(usage.SerializeAsString()), "120301ac02");

  // Unpacked input (as an old encoder might send) still decodes.
  grpc::CpuUsage decoded;
  ASSERT_TRUE(decoded.ParseFromString(hex("1001 10ac02")));
  ASSERT_EQ(decoded.percpu_usage_size(), 2);
  EXPECT_EQ(decoded.percpu_usage(1), 300u);
}

}  // namespace
}  // namespace kata::protocols::test
