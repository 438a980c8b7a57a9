// The real QEMU dying or refusing to start: the backend must notice at once, leave no process
// and no file behind, and say why.
#include <gtest/gtest.h>

#include <signal.h>

#include "kata/hypervisor/qemu/qemu.hpp"
#include "vm_support.hpp"

namespace kata::hypervisor::qemu {
namespace {

using namespace std::chrono_literals;
using kata::testing::files_in;
using kata::testing::process_exists;
using kata::testing::run_until_done;
using kata::testing::TempDir;

std::filesystem::path test_guest() {
  const std::string command = std::string(KATA_TEST_GUEST_SCRIPT) + " " + KATA_TEST_GUEST_DIR;
  if (std::system(command.c_str()) != 0) throw std::runtime_error("building the test guest failed: " + command);
  return KATA_TEST_GUEST_DIR;
}

class QemuFailure : public ::testing::Test {
 protected:
  VmContext context() {
    const auto guest = test_guest();
    VmContext ctx;
    ctx.sandbox_id = "vmfail";
    ctx.state_dir = dir.path() / "state";
    ctx.config.path = KATA_TEST_QEMU;
    ctx.config.boot.kernel = (guest / "vmlinux").string();
    ctx.config.boot.initrd = (guest / "initrd.img").string();
    ctx.config.cpu.default_vcpus = 1;
    ctx.config.cpu.default_maxvcpus = 1;
    ctx.config.memory.default_memory = 256;
    ctx.config.memory.default_maxmemory = 512;
    ctx.config.memory.memory_slots = 2;
    return ctx;
  }

  asio::io_context io;
  TempDir dir{"qemu"};
};

TEST_F(QemuFailure, ExternalSigkillIsNoticedAndLaterStopsAreHarmless) {
  Qemu vm(io.get_executor(), context(), HostFeatures::probe());
  run_until_done(io, vm.prepare_vm());
  run_until_done(io, vm.start_vm(120s));
  const pid_t pid = vm.vmm_pid();
  ASSERT_TRUE(process_exists(pid));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  // No stop_vm: the exit watcher alone must complete wait_vm.
  const auto status = run_until_done(io, vm.wait_vm());
  EXPECT_EQ(status.signal, SIGKILL);
  EXPECT_FALSE(vm.is_running());
  EXPECT_FALSE(process_exists(pid));
  // QMP is closed: commands fail fast instead of hanging.
  EXPECT_THROW(run_until_done(io, vm.pause_vm()), Error);
  run_until_done(io, vm.stop_vm());
  run_until_done(io, vm.stop_vm());
  run_until_done(io, vm.cleanup());
  EXPECT_TRUE(files_in(dir.path() / "state").empty());
}

TEST_F(QemuFailure, BadKernelPathFailsPrepareNamingIt) {
  auto ctx = context();
  ctx.config.boot.kernel = (dir.path() / "no-such-vmlinux").string();
  Qemu vm(io.get_executor(), ctx, HostFeatures::probe());
  try {
    run_until_done(io, vm.prepare_vm());
    FAIL() << "prepare_vm accepted a missing kernel";
  } catch (const std::exception& error) {
    EXPECT_NE(describe(error).find(ctx.config.boot.kernel), std::string::npos) << describe(error);
  }
  EXPECT_THROW(run_until_done(io, vm.start_vm(10s)), Error);
  EXPECT_EQ(vm.vmm_pid(), -1);
  EXPECT_FALSE(std::filesystem::exists(ctx.state_dir) && !files_in(ctx.state_dir).empty());
}

TEST_F(QemuFailure, QemuRejectingAnArgumentLeavesNothingAndQuotesQemu) {
  auto ctx = context();
  ctx.config.cpu.cpu_features = "no-such-cpu-property=on";
  Qemu vm(io.get_executor(), ctx, HostFeatures::probe());
  run_until_done(io, vm.prepare_vm());
  try {
    run_until_done(io, vm.start_vm(120s));
    FAIL() << "QEMU started with a bogus -cpu property";
  } catch (const std::exception& error) {
    const std::string text = describe(error);
    EXPECT_NE(text.find("start qemu VM vmfail: qemu exited with code 1 during startup: "), std::string::npos) << text;
    EXPECT_NE(text.find("no-such-cpu-property"), std::string::npos) << text;
  }
  EXPECT_FALSE(process_exists(vm.vmm_pid()));
  EXPECT_FALSE(vm.is_running());
  EXPECT_TRUE(files_in(ctx.state_dir).empty());
  run_until_done(io, vm.cleanup());
}

}  // namespace
}  // namespace kata::hypervisor::qemu
