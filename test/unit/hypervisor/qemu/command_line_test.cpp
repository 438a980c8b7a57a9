// The whole QEMU argv for representative configurations: a change anywhere in the builder shows
// up as a diff of the full command line, which is what QEMU actually sees.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "kata/hypervisor/qemu/command_line.hpp"

namespace kata::hypervisor::qemu {
namespace {

using Argv = std::vector<std::string>;

VmContext base_context() {
  VmContext context;
  context.sandbox_id = "abc";
  context.state_dir = "/run/kata/abc";
  context.config.boot.kernel = "/opt/kata/vmlinux.container";
  context.config.boot.initrd = "/opt/kata/kata-containers-initrd.img";
  context.config.cpu.default_vcpus = 1.5;
  context.config.cpu.default_maxvcpus = 4;
  context.config.memory.default_memory = 512;
  context.config.memory.default_maxmemory = 2048;
  context.config.memory.memory_slots = 10;
  return context;
}

LaunchPlan serial_plan() {
  LaunchPlan plan;
  plan.accelerator = Accelerator::tcg;
  plan.agent_channel = SerialChannel{"/run/kata/abc/agent.sock", std::nullopt};
  plan.qmp_fd = 3;
  plan.console_log = "/run/kata/abc/console.log";
  plan.root_ports = {{"rp0", 0x1e}, {"rp1", 0x1d}};
  return plan;
}

const std::string base_append =
    "reboot=k panic=1 systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service "
    "systemd.mask=systemd-networkd.socket memhp_default_state=online";

TEST(QemuCommandLine, TcgSerialInitrd) {
  const Argv expected = {
      "-name", "sandbox-abc", "-no-user-config", "-nodefaults", "-nographic", "-no-reboot", "-vga", "none",
      "-machine", "q35,accel=tcg,memory-backend=kata-memory",
      "-cpu", "max",
      "-smp", "2,maxcpus=4",
      "-m", "512M,slots=10,maxmem=2048M",
      "-object", "memory-backend-ram,id=kata-memory,size=512M",
      "-rtc", "base=utc,driftfix=slew",
      "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
      "-mon", "chardev=qmp,mode=control",
      "-chardev", "file,id=console,path=/run/kata/abc/console.log",
      "-serial", "chardev:console",
      "-kernel", "/opt/kata/vmlinux.container",
      "-initrd", "/opt/kata/kata-containers-initrd.img",
      "-append", base_append + " quiet",
      "-device", "pcie-root-port,id=rp0,chassis=1,slot=1,bus=pcie.0,addr=1e",
      "-device", "pcie-root-port,id=rp1,chassis=1,slot=2,bus=pcie.0,addr=1d",
      "-device", "virtio-serial-pci,id=agent-serial,bus=pcie.0,addr=01",
      "-chardev", "socket,id=agent-channel,path=/run/kata/abc/agent.sock,server=on,wait=off",
      "-device", "virtserialport,bus=agent-serial.0,chardev=agent-channel,name=agent.channel.0",
  };
  EXPECT_EQ(build_command_line(base_context(), serial_plan()), expected);
}

// Sums of fractional vCPUs are not exact in binary: 2 plus rounding noise boots 2 vCPUs, not 3
// (static sizing set default_maxvcpus to 2 from the same value).
TEST(QemuCommandLine, FractionalVcpusRoundUpWithoutBinaryNoise) {
  VmContext context = base_context();
  context.config.cpu.default_vcpus = std::nextafter(2.0, 3.0);  // 2.0000000000000004
  context.config.cpu.default_maxvcpus = 2;
  const Argv argv = build_command_line(context, serial_plan());
  const auto smp = std::find(argv.begin(), argv.end(), "-smp");
  ASSERT_NE(smp, argv.end());
  EXPECT_EQ(*(smp + 1), "2,maxcpus=2");
  context.config.cpu.default_vcpus = 0.75;
  const Argv fractional = build_command_line(context, serial_plan());
  EXPECT_EQ(*(std::find(fractional.begin(), fractional.end(), "-smp") + 1), "1,maxcpus=2");
}

// Without room for hotplug there is no memory to online.
TEST(QemuCommandLine, HotplugMemoryOnlinesInTheKernelOnlyWhenThereCanBeAny) {
  VmContext context = base_context();
  context.config.memory.default_maxmemory = context.config.memory.default_memory;
  const Argv argv = build_command_line(context, serial_plan());
  const auto append = std::find(argv.begin(), argv.end(), "-append");
  ASSERT_NE(append, argv.end());
  EXPECT_EQ((append + 1)->find("memhp_default_state"), std::string::npos) << *(append + 1);
}

TEST(QemuCommandLine, KvmVsockImageVirtioFsDevicesAndDebug) {
  VmContext context = base_context();
  context.config.boot.initrd.clear();
  context.config.boot.image = "/opt/kata/kata-containers.img";
  context.config.boot.kernel_params = "cgroup_no_v1=all";
  context.config.cpu.cpu_features = "pmu=off";
  context.config.cpu.default_vcpus = 1;
  context.config.debug.enable_debug = true;
  context.config.machine.machine_accelerators = "kernel_irqchip=on";
  context.config.machine.entropy_source = "/dev/urandom";
  context.config.security.seccomp_sandbox = "on,obsolete=deny";
  context.agent_kernel_params = {"agent.log=debug"};

  LaunchPlan plan = serial_plan();
  plan.accelerator = Accelerator::kvm;
  plan.agent_channel = VsockChannel{.guest_cid = 1234, .vhost_fd = 4};
  plan.rootfs_image_bytes = 3 * 1024 * 1024 + 1;
  plan.root_ports = {{"rp0", 0x1e}};
  plan.block_devices.push_back(PlannedBlock{.qdev_id = "blk0", .node_name = "drive-blk0", .path = "/dev/sdb",
                                            .read_only = true, .host_device = true, .slot = 0x05});
  plan.network_devices.push_back(PlannedNetwork{.qdev_id = "net0", .netdev_id = "netdev-net0",
                                                .mac = "02:00:00:00:00:01", .tap_fds = {5, 6}, .slot = 0x06});
  plan.share_fs.push_back(PlannedShareFs{.id = "fs0", .kind = ShareFsDevice::Kind::virtio_fs, .mount_tag = "kataShared",
                                         .daemon_socket = "/run/kata/abc/vfs,1.sock", .queue_size = 1024, .slot = 0x07});

  const Argv expected = {
      "-name", "sandbox-abc", "-no-user-config", "-nodefaults", "-nographic", "-no-reboot", "-vga", "none",
      "-machine", "q35,accel=kvm,kernel_irqchip=on,nvdimm=on,memory-backend=kata-memory",
      "-cpu", "host,pmu=off",
      "-smp", "1,maxcpus=4",
      // 4 MiB: the 3 MiB + 1 byte image rounded up, and one more slot for its nvdimm.
      "-m", "512M,slots=11,maxmem=2052M",
      "-object", "memory-backend-memfd,id=kata-memory,size=512M,share=on",
      "-rtc", "base=utc,driftfix=slew",
      "-global", "kvm-pit.lost_tick_policy=discard",
      "-sandbox", "on,obsolete=deny",
      "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
      "-mon", "chardev=qmp,mode=control",
      "-chardev", "file,id=console,path=/run/kata/abc/console.log",
      "-serial", "chardev:console",
      "-kernel", "/opt/kata/vmlinux.container",
      "-append", base_append + " root=/dev/pmem0p1 rootflags=dax,data=ordered,errors=remount-ro ro rootfstype=ext4"
                 " cgroup_no_v1=all agent.log=debug console=ttyS0",
      "-device", "pcie-root-port,id=rp0,chassis=1,slot=1,bus=pcie.0,addr=1e",
      "-device", "vhost-vsock-pci,id=agent-vsock,guest-cid=1234,vhostfd=4,bus=pcie.0,addr=01",
      "-object", "rng-random,id=rng0,filename=/dev/urandom",
      "-device", "virtio-rng-pci,id=rng,rng=rng0,bus=pcie.0,addr=02",
      "-object", "memory-backend-file,id=rootfs-memory,mem-path=/opt/kata/kata-containers.img,size=3145729,readonly=on,share=on",
      "-device", "nvdimm,id=rootfs,memdev=rootfs-memory,unarmed=on",
      "-blockdev", R"({"driver":"raw","file":{"driver":"host_device","filename":"/dev/sdb"},"node-name":"drive-blk0","read-only":true})",
      "-device", "virtio-blk-pci,id=blk0,drive=drive-blk0,bus=pcie.0,addr=05",
      "-netdev", "tap,id=netdev-net0,fds=5:6,vhost=off",
      "-device", "virtio-net-pci,id=net0,netdev=netdev-net0,mac=02:00:00:00:00:01,romfile=,mq=on,vectors=6,bus=pcie.0,addr=06",
      // The comma in the socket path is doubled, QEMU's escape.
      "-chardev", "socket,id=fs0-chardev,path=/run/kata/abc/vfs,,1.sock",
      "-device", "vhost-user-fs-pci,id=fs0,chardev=fs0-chardev,tag=kataShared,queue-size=1024,bus=pcie.0,addr=07",
  };
  EXPECT_EQ(build_command_line(context, plan), expected);
}

TEST(QemuCommandLine, BlockRootfsNinePVirtioMemAndGuestLogPort) {
  VmContext context = base_context();
  context.config.boot.initrd.clear();
  context.config.boot.image = "/img/rootfs.img";
  context.config.boot.vm_rootfs_driver = "virtio-blk-pci";
  context.config.boot.rootfs_type = "erofs";
  context.config.memory.enable_virtio_mem = true;
  context.config.memory.enable_mem_prealloc = true;

  LaunchPlan plan = serial_plan();
  plan.agent_channel = SerialChannel{"/s/agent.sock", std::filesystem::path("/s/agent-log.sock")};
  plan.root_ports.clear();
  plan.network_devices.push_back(PlannedNetwork{.qdev_id = "net0", .netdev_id = "netdev-net0",
                                                .mac = "02:00:00:00:00:02", .tap_fds = {5}, .slot = 0x05});
  plan.share_fs.push_back(PlannedShareFs{.id = "fs0", .kind = ShareFsDevice::Kind::virtio_9p, .mount_tag = "kataShared",
                                         .shared_dir = "/run/kata-containers/shared/sandboxes/abc", .slot = 0x06});
  const Argv argv = build_command_line(context, plan);
  const Argv expected_tail = {
      "-device", "virtio-serial-pci,id=agent-serial,bus=pcie.0,addr=01",
      "-chardev", "socket,id=agent-channel,path=/s/agent.sock,server=on,wait=off",
      "-device", "virtserialport,bus=agent-serial.0,chardev=agent-channel,name=agent.channel.0",
      "-chardev", "socket,id=agent-log,path=/s/agent-log.sock,server=on,wait=off",
      "-device", "virtserialport,bus=agent-serial.0,chardev=agent-log,name=agent.log.0",
      "-object", "memory-backend-ram,id=virtiomem-memory,size=1536M",
      "-device", "virtio-mem-pci,id=virtiomem0,memdev=virtiomem-memory,requested-size=0,bus=pcie.0,addr=03",
      "-blockdev", R"({"driver":"raw","file":{"driver":"file","filename":"/img/rootfs.img"},"node-name":"rootfs","read-only":true})",
      "-device", "virtio-blk-pci,id=rootfs-blk,drive=rootfs,bus=pcie.0,addr=04",
      "-netdev", "tap,id=netdev-net0,fd=5,vhost=off",
      "-device", "virtio-net-pci,id=net0,netdev=netdev-net0,mac=02:00:00:00:00:02,romfile=,bus=pcie.0,addr=05",
      "-fsdev", "local,id=fs0-fsdev,path=/run/kata-containers/shared/sandboxes/abc,security_model=none,multidevs=remap",
      "-device", "virtio-9p-pci,id=fs0,fsdev=fs0-fsdev,mount_tag=kataShared,bus=pcie.0,addr=06",
  };
  ASSERT_GE(argv.size(), expected_tail.size());
  EXPECT_EQ(Argv(argv.end() - static_cast<std::ptrdiff_t>(expected_tail.size()), argv.end()), expected_tail);
  EXPECT_NE(std::find(argv.begin(), argv.end(), "memory-backend-ram,id=kata-memory,size=512M,prealloc=on"), argv.end());
  EXPECT_EQ(kernel_command_line(context), base_append + " root=/dev/vda1 ro rootfstype=erofs quiet");
}

TEST(QemuCommandLine, NoSlotsWhenMaxMemoryLeavesNoRoomForHotplug) {
  VmContext context = base_context();
  context.config.memory.default_maxmemory = 512;
  const Argv argv = build_command_line(context, serial_plan());
  const auto m = std::find(argv.begin(), argv.end(), "-m");
  ASSERT_NE(m, argv.end());
  // QEMU refuses slots when maxmem equals the boot size.
  EXPECT_EQ(*std::next(m), "512M");
}

TEST(QemuCommandLine, RootfsAttachmentFollowsDriverAndNvdimmSwitch) {
  config::HypervisorConfig config;
  EXPECT_EQ(rootfs_attachment(config), "");
  config.boot.image = "/img";
  EXPECT_EQ(rootfs_attachment(config), "nvdimm");
  config.block_device.disable_image_nvdimm = true;
  EXPECT_EQ(rootfs_attachment(config), "virtio-blk-pci");
}

TEST(QemuCommandLine, AcceleratorIsKvmOnlyWhenTheHostHasIt) {
  EXPECT_EQ(choose_accelerator(HostFeatures{.kvm = true}), Accelerator::kvm);
  EXPECT_EQ(choose_accelerator(HostFeatures{.kvm = false, .vhost_vsock = true}), Accelerator::tcg);
}

}  // namespace
}  // namespace kata::hypervisor::qemu
