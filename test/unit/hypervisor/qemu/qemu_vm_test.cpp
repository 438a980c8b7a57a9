// The Qemu backend against a real QEMU (TCG here) booting a tiny guest (make-test-guest.sh):
// one VM for the whole binary, driven through the steps of a sandbox's life in order.
// Registered with ctest as one test (label vm) so the VM boots once.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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

/// Builds (or reuses) the test guest; returns its directory.
std::filesystem::path test_guest() {
  const std::string command = std::string(KATA_TEST_GUEST_SCRIPT) + " " + KATA_TEST_GUEST_DIR;
  if (std::system(command.c_str()) != 0) throw std::runtime_error("building the test guest failed: " + command);
  return KATA_TEST_GUEST_DIR;
}

VmContext vm_context(const std::filesystem::path& state_dir, const std::filesystem::path& guest) {
  VmContext ctx;
  ctx.sandbox_id = "vmtest";
  ctx.state_dir = state_dir;
  ctx.config.path = KATA_TEST_QEMU;
  ctx.config.boot.kernel = (guest / "vmlinux").string();
  ctx.config.boot.initrd = (guest / "initrd.img").string();
  // Two boot vCPUs: hotplug from one is very slow under TCG (host-lab §5).
  ctx.config.cpu.default_vcpus = 2;
  ctx.config.cpu.default_maxvcpus = 4;
  ctx.config.memory.default_memory = 256;
  ctx.config.memory.default_maxmemory = 1024;
  ctx.config.memory.memory_slots = 4;
  ctx.config.debug.enable_debug = false;
  return ctx;
}

/// A blocking client of the agent's virtio-serial socket (the guest echoes lines).
class SerialClient {
 public:
  explicit SerialClient(const std::filesystem::path& socket) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      fail_errno(errno, "connect {}", socket.string());
    }
    timeval timeout{240, 0};  // a loaded 2-core host can take long to boot the guest under TCG
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }

  std::string read_line() {
    for (;;) {
      const auto end = buffer_.find('\n');
      if (end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      char data[256];
      const ssize_t n = ::read(fd_.get(), data, sizeof data);
      if (n <= 0) fail(Errc::unavailable, "agent channel: read returned {}", n);
      buffer_.append(data, static_cast<std::size_t>(n));
    }
  }

  void write_line(const std::string& line) {
    const std::string data = line + "\n";
    ASSERT_EQ(::write(fd_.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }

 private:
  UniqueFd fd_;
  std::string buffer_;
};

class QemuVm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      guest_ = new std::filesystem::path(test_guest());
      dir_ = new TempDir("qemu");
      io_ = new asio::io_context();
      vm_ = new Qemu(io_->get_executor(), vm_context(dir_->path() / "state", *guest_), HostFeatures::probe());
      run_until_done(*io_, vm_->prepare_vm());
      auto disk = BlockDevice{.id = "cold-disk", .path = make_disk("cold.img")};
      cold_attachment_ = new DeviceAttachment(run_until_done(*io_, vm_->add_device(std::move(disk))));
      run_until_done(*io_, vm_->start_vm(120s));
    } catch (const std::exception& error) {
      setup_error_ = new std::string(describe(error));
    }
  }

  void SetUp() override {
    if (setup_error_ != nullptr) FAIL() << "VM setup failed: " << *setup_error_;
  }

  static void TearDownTestSuite() {
    // Whatever happened above: no QEMU and no file may outlive the binary.
    if (vm_ != nullptr) {
      try {
        run_until_done(*io_, vm_->stop_vm());
        run_until_done(*io_, vm_->cleanup());
      } catch (const std::exception& error) {
        ADD_FAILURE() << "teardown: " << describe(error);
      }
    }
    delete vm_;
    delete io_;
    delete dir_;
    delete guest_;
    delete cold_attachment_;
    delete setup_error_;
  }

  static std::filesystem::path make_disk(const std::string& name) {
    const auto path = dir_->path() / name;
    std::filesystem::resize_file((std::ofstream(path), path), 16 * 1024 * 1024);
    return path;
  }

  static Qemu& vm() { return *vm_; }
  static asio::io_context& io() { return *io_; }

  static inline std::filesystem::path* guest_ = nullptr;
  static inline TempDir* dir_ = nullptr;
  static inline asio::io_context* io_ = nullptr;
  static inline Qemu* vm_ = nullptr;
  static inline DeviceAttachment* cold_attachment_ = nullptr;
  static inline std::string* setup_error_ = nullptr;
};

TEST_F(QemuVm, T1_GuestAnswersOverTheVirtioSerialAgentChannel) {
  ASSERT_TRUE(vm().is_running());
  EXPECT_TRUE(process_exists(vm().vmm_pid()));
  EXPECT_EQ(vm().pids(), std::vector<pid_t>{vm().vmm_pid()});
  const auto address = vm().agent_address();
  ASSERT_TRUE(std::holds_alternative<SerialPortAddress>(address)) << to_url(address);
  SerialClient channel(std::get<SerialPortAddress>(address).socket);
  EXPECT_EQ(channel.read_line(), "QEMU-TEST-READY");
  channel.write_line("ping from the host");
  EXPECT_EQ(channel.read_line(), "ECHO:ping from the host");
  EXPECT_EQ(cold_attachment_->guest_pci_path, "05");
}

TEST_F(QemuVm, T2_QmpStatusAndPauseResume) {
  EXPECT_EQ(run_until_done(io(), vm().query("query-status"))["status"], "running");
  run_until_done(io(), vm().pause_vm());
  EXPECT_EQ(run_until_done(io(), vm().query("query-status"))["status"], "paused");
  run_until_done(io(), vm().resume_vm());
  EXPECT_EQ(run_until_done(io(), vm().query("query-status"))["status"], "running");
  EXPECT_THROW(run_until_done(io(), vm().query("quit")), Error);
}

TEST_F(QemuVm, T3_CpuHotplugFromTwoToThree) {
  EXPECT_EQ(run_until_done(io(), vm().vcpu_thread_ids()).size(), 2u);
  const auto resize = run_until_done(io(), vm().resize_vcpus(3));
  EXPECT_EQ(resize.old_vcpus, 2u);
  EXPECT_EQ(resize.new_vcpus, 3u);
  const auto threads = run_until_done(io(), vm().vcpu_thread_ids());
  EXPECT_EQ(threads.size(), 3u);
  for (const auto& [index, tid] : threads) EXPECT_GT(tid, 0) << "vCPU " << index;
  // Above default_maxvcpus is clamped.
  EXPECT_EQ(run_until_done(io(), vm().resize_vcpus(64)).new_vcpus, 4u);
}

TEST_F(QemuVm, T4_BlockHotplugOntoARootPort) {
  auto disk = BlockDevice{.id = "hot-disk", .path = make_disk("hot.img")};
  const auto attachment = run_until_done(io(), vm().add_device(std::move(disk)));
  EXPECT_EQ(attachment.guest_pci_path, "1e/00");
  // QEMU sees the device behind rp0.
  const auto pci = run_until_done(io(), vm().query("query-pci"));
  EXPECT_NE(pci.dump().find("\"qdev_id\":\"blk1\""), std::string::npos) << pci.dump();
  auto duplicate = BlockDevice{.id = "hot-disk", .path = make_disk("hot2.img")};
  try {
    run_until_done(io(), vm().add_device(std::move(duplicate)));
    FAIL() << "duplicate id accepted";
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::already_exists);
  }
  auto share = ShareFsDevice{.kind = ShareFsDevice::Kind::virtio_9p, .mount_tag = "late", .shared_dir = dir_->path()};
  try {
    run_until_done(io(), vm().add_device(std::move(share)));
    FAIL() << "shared fs hotplug accepted";
  } catch (const std::exception& error) {
    EXPECT_EQ(code_of(error), Errc::not_supported) << describe(error);
  }
}

TEST_F(QemuVm, T5_MemoryHotplugWithPcDimm) {
  const auto resize = run_until_done(io(), vm().resize_memory(300));
  EXPECT_EQ(resize.old_mib, 256u);
  EXPECT_EQ(resize.new_mib, 256u + 128u);  // one 128 MiB block
  const auto summary = run_until_done(io(), vm().query("query-memory-size-summary"));
  EXPECT_EQ(summary["plugged-memory"], 128ULL << 20);
  // Never below the current size.
  EXPECT_EQ(run_until_done(io(), vm().resize_memory(128)).new_mib, 384u);
}

TEST_F(QemuVm, T6_SaveStateNamesTheProcess) {
  const auto state = vm().save_state();
  EXPECT_EQ(state["hypervisor_type"], "qemu");
  EXPECT_EQ(state["pid"], vm().vmm_pid());
  EXPECT_GT(state["pid_start_time"].get<std::uint64_t>(), 0u);
}

TEST_F(QemuVm, T7_ConcurrentStopsBothCompleteAfterReap) {
  const pid_t pid = vm().vmm_pid();
  int stopped = 0;
  auto stop_twice = [&]() -> Task<void> {
    auto executor = co_await asio::this_coro::executor;
    asio::co_spawn(executor, [&]() -> Task<void> { co_await vm().stop_vm(); ++stopped; }, asio::detached);
    co_await vm().stop_vm();
    ++stopped;
    const auto status = co_await vm().wait_vm();
    EXPECT_EQ(status.exit_code, 0);  // QMP quit, not SIGKILL
    EXPECT_EQ(status.signal, 0);
  };
  run_until_done(io(), stop_twice());
  // Let the concurrent stop finish too.
  for (int i = 0; i < 100 && stopped < 2; ++i) io().run_one_for(10ms);
  EXPECT_EQ(stopped, 2);
  EXPECT_FALSE(vm().is_running());
  EXPECT_FALSE(process_exists(pid));
  run_until_done(io(), vm().stop_vm());
  run_until_done(io(), vm().cleanup());
  run_until_done(io(), vm().cleanup());
  EXPECT_TRUE(files_in(dir_->path() / "state").empty());
}

}  // namespace
}  // namespace kata::hypervisor::qemu
