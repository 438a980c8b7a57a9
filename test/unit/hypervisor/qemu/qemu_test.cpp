// The Qemu backend without a VM: configuration checks, the cold-plug queue, ids, and the start
// rollback against stand-in programs that fail the way QEMU can (exit at once, never answer QMP).
#include <gtest/gtest.h>

#include <fstream>

#include "kata/hypervisor/qemu/qemu.hpp"
#include "vm_support.hpp"

namespace kata::hypervisor::qemu {
namespace {

using namespace std::chrono_literals;
using kata::testing::files_in;
using kata::testing::process_exists;
using kata::testing::run_until_done;
using kata::testing::TempDir;

static_assert(Hypervisor<Qemu>);
static_assert(supports<Qemu, capability::memory_hotplug>);
static_assert(!supports<Qemu, capability::hybrid_vsock>);

class QemuTest : public ::testing::Test {
 protected:
  QemuTest() {
    state_dir = dir.path() / "state";
    assets = dir.path() / "assets";
    std::filesystem::create_directories(assets);
    std::ofstream(assets / "vmlinux") << "kernel";
    std::ofstream(assets / "initrd.img") << "initrd";
    std::ofstream(assets / "disk.img") << "disk";
  }

  VmContext context() const {
    VmContext ctx;
    ctx.sandbox_id = "unit";
    ctx.state_dir = state_dir;
    ctx.config.path = "/bin/true";
    ctx.config.boot.kernel = (assets / "vmlinux").string();
    ctx.config.boot.initrd = (assets / "initrd.img").string();
    ctx.config.cpu.default_vcpus = 1;
    ctx.config.cpu.default_maxvcpus = 2;
    ctx.config.memory.default_memory = 256;
    ctx.config.memory.default_maxmemory = 1024;
    ctx.config.memory.memory_slots = 4;
    return ctx;
  }

  /// A stand-in QEMU: a shell script with `body`.
  std::string fake_qemu(const std::string& body) const {
    const auto path = assets / "fake-qemu";
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path.string();
  }

  std::unique_ptr<Qemu> make(VmContext ctx) {
    return std::make_unique<Qemu>(io.get_executor(), std::move(ctx), HostFeatures{});
  }

  asio::io_context io;
  TempDir dir{"qemu"};
  std::filesystem::path state_dir;
  std::filesystem::path assets;
};

TEST_F(QemuTest, PrepareNamesTheMissingAsset) {
  auto ctx = context();
  ctx.config.boot.kernel = (assets / "missing-vmlinux").string();
  auto vm = make(ctx);
  try {
    run_until_done(io, vm->prepare_vm());
    FAIL() << "prepare_vm accepted a missing kernel";
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::not_found);
    EXPECT_NE(describe(error).find("[hypervisor.qemu] kernel: " + ctx.config.boot.kernel + " does not exist"),
              std::string::npos)
        << describe(error);
  }

  ctx = context();
  ctx.config.boot.image = (assets / "disk.img").string();
  vm = make(ctx);
  try {
    run_until_done(io, vm->prepare_vm());
    FAIL() << "prepare_vm accepted both initrd and image";
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::invalid_argument) << describe(error);
  }

  ctx = context();
  ctx.config.machine.machine_type = "microvm";
  vm = make(ctx);
  EXPECT_THROW(run_until_done(io, vm->prepare_vm()), Error);
}

TEST_F(QemuTest, ColdPlugQueueAssignsSlotsAndRefusesDuplicatesAndUnsupportedKinds) {
  auto vm = make(context());
  run_until_done(io, vm->prepare_vm());
  auto disk = BlockDevice{.id = "disk-1", .path = assets / "disk.img"};
  auto first = run_until_done(io, vm->add_device(std::move(disk)));
  EXPECT_EQ(first.guest_pci_path, "05");
  auto fs = ShareFsDevice{.kind = ShareFsDevice::Kind::virtio_9p, .mount_tag = "kataShared", .shared_dir = assets};
  auto second = run_until_done(io, vm->add_device(std::move(fs)));
  EXPECT_EQ(second.guest_pci_path, "06");

  auto again = BlockDevice{.id = "disk-1", .path = assets / "disk.img"};
  try {
    run_until_done(io, vm->add_device(std::move(again)));
    FAIL() << "a duplicate id was accepted";
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::already_exists);
  }

  auto vfio = VfioDevice{.id = "gpu", .host_bdf = "0000:3b:00.0"};
  try {
    run_until_done(io, vm->add_device(std::move(vfio)));
    FAIL() << "VFIO was accepted";
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::not_supported);
    EXPECT_NE(describe(error).find("not supported by qemu"), std::string::npos) << describe(error);
  }
  auto scsi = BlockDevice{.id = "disk-2", .path = assets / "disk.img", .driver = "virtio-scsi"};
  EXPECT_THROW(run_until_done(io, vm->add_device(std::move(scsi))), Error);

  auto missing = BlockDevice{.id = "disk-3", .path = assets / "nope.img"};
  EXPECT_THROW(run_until_done(io, vm->add_device(std::move(missing))), Error);

  // Removing before start dequeues; the id is free again and the next device takes a new slot.
  run_until_done(io, vm->remove_device("disk-1"));
  EXPECT_THROW(run_until_done(io, vm->remove_device("disk-1")), Error);
  auto readded = BlockDevice{.id = "disk-1", .path = assets / "disk.img"};
  EXPECT_EQ(run_until_done(io, vm->add_device(std::move(readded))).guest_pci_path, "07");
}

TEST_F(QemuTest, ObserversBeforeStart) {
  auto ctx = context();
  ctx.config.debug.enable_debug = true;
  auto vm = make(ctx);
  EXPECT_EQ(vm->agent_address(), AgentAddress(SerialPortAddress{state_dir / "agent.sock"}));
  EXPECT_FALSE(vm->is_running());
  EXPECT_EQ(vm->vmm_pid(), -1);
  EXPECT_TRUE(vm->pids().empty());
  const auto state = vm->save_state();
  EXPECT_EQ(state["hypervisor_type"], "qemu");
  EXPECT_EQ(state["id"], "unit");
  EXPECT_TRUE(state["pid"].is_null());
  EXPECT_EQ(state["sockets"]["agent_log"], (state_dir / "agent-log.sock").string());
  // Stop and cleanup before start are harmless; start before prepare is refused.
  run_until_done(io, vm->stop_vm());
  run_until_done(io, vm->cleanup());
  try {
    run_until_done(io, vm->start_vm(1s));
    FAIL();
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::failed_precondition);
  }
}

TEST_F(QemuTest, AQemuThatExitsAtOnceLeavesNoProcessAndNoFilesAndItsStderrIsQuoted) {
  auto ctx = context();
  ctx.config.path = fake_qemu("echo \"qemu-system-x86_64: -cpu max,bogus=on: Property not found\" >&2\nexit 1");
  auto vm = make(ctx);
  run_until_done(io, vm->prepare_vm());
  try {
    run_until_done(io, vm->start_vm(30s));
    FAIL() << "start succeeded";
  } catch (const std::exception& error) {
    EXPECT_EQ(describe(error),
              "start qemu VM unit: qemu exited with code 1 during startup: "
              "qemu-system-x86_64: -cpu max,bogus=on: Property not found");
  }
  EXPECT_FALSE(vm->is_running());
  EXPECT_FALSE(process_exists(vm->vmm_pid()));
  EXPECT_TRUE(files_in(state_dir).empty());
  // wait_vm reports the exit; a stop afterwards is harmless.
  EXPECT_EQ(run_until_done(io, vm->wait_vm()).exit_code, 1);
  run_until_done(io, vm->stop_vm());
}

TEST_F(QemuTest, AQemuThatNeverAnswersQmpIsKilledAtTheDeadline) {
  auto ctx = context();
  ctx.config.path = fake_qemu("echo waiting >&2\nexec sleep 600");
  auto vm = make(ctx);
  run_until_done(io, vm->prepare_vm());
  pid_t pid = -1;
  try {
    run_until_done(io, vm->start_vm(300ms));
    FAIL() << "start succeeded";
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::deadline_exceeded) << describe(error);
    EXPECT_NE(describe(error).find("(qemu stderr: waiting)"), std::string::npos) << describe(error);
  }
  pid = vm->vmm_pid();
  EXPECT_GT(pid, 0);
  EXPECT_FALSE(process_exists(pid));
  EXPECT_TRUE(files_in(state_dir).empty());
  EXPECT_EQ(run_until_done(io, vm->wait_vm()).signal, SIGKILL);
}

TEST_F(QemuTest, ASpawnFailureNamesTheProgram) {
  auto ctx = context();
  ctx.config.path = fake_qemu("exit 0");
  auto vm = make(ctx);
  run_until_done(io, vm->prepare_vm());
  std::filesystem::remove(ctx.config.path);
  try {
    run_until_done(io, vm->start_vm(5s));
    FAIL();
  } catch (const std::exception& error) {
    EXPECT_NE(describe(error).find("launch qemu: exec " + ctx.config.path), std::string::npos) << describe(error);
  }
  EXPECT_TRUE(files_in(state_dir).empty());
}

}  // namespace
}  // namespace kata::hypervisor::qemu
