// The agent's RPC layer in a real VM: boots the guest image under QEMU (TCG) with the
// virtio-serial channel, a 9p share holding a busybox rootfs and a virtio-net NIC, and drives the
// agent with the host's own client (KataAgent over SerialPortTransport, as the shim does).
// One VM for the whole suite; the tests run in the order written and share its sandbox.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kata/agent/kata_agent.hpp"
#include "kata/agent/oci_conversion.hpp"
#include "kata/agent/transport.hpp"
#include "kata/core/child_process.hpp"
#include "kata/core/error.hpp"
#include "kata/hypervisor/qemu/qmp.hpp"
#include "kata/oci/spec.hpp"
#include "support/async_test.hpp"

namespace kata::agent {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

// The ttRPC client keeps a reader (and the tests keep long polls) pending on the io_context, so it
// never runs out of work: the shared runner steps it until the task itself is done.
using testing::run_until_done;

constexpr std::string_view guest_share = "/run/kata-containers/shared/containers";
constexpr std::string_view nic_mac = "02:00:ca:fe:00:01";
constexpr auto boot_deadline = 180s;

std::filesystem::path image_dir() {
  const char* dir = std::getenv("KATA_GUEST_IMAGE_DIR");
  return dir != nullptr ? dir : KATA_GUEST_IMAGE_DIR_DEFAULT;
}

// busybox-static and its applet links: enough of a container image for sh, echo, cat, sleep.
void make_busybox_rootfs(const std::filesystem::path& root) {
  for (const char* dir : {"bin", "proc", "dev", "sys", "tmp", "etc"}) std::filesystem::create_directories(root / dir);
  std::filesystem::copy_file("/bin/busybox", root / "bin/busybox");
  for (const char* applet : {"sh", "echo", "cat", "sleep", "head", "tr", "hostname", "id", "true", "ls", "stty"}) {
    std::filesystem::create_symlink("busybox", root / "bin" / applet);
  }
}

// A minimal OCI spec as the shim sends it after amendment: the rootfs on the shared filesystem,
// new mount/uts/ipc namespaces (pid is the agent's decision), proc and a tmpfs /dev.
oci::Spec container_spec(const std::vector<std::string>& args, const std::string& extra_linux = "{}") {
  oci::Json document = {
      {"ociVersion", "1.1.0"},
      {"process",
       {{"args", args}, {"env", {"PATH=/bin"}}, {"cwd", "/"}, {"user", {{"uid", 0}, {"gid", 0}}}}},
      {"root", {{"path", std::string(guest_share) + "/busybox"}, {"readonly", true}}},
      {"hostname", "vmtest"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}, {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"nosuid", "mode=755"}}},
        {{"destination", "/sys"}, {"type", "sysfs"}, {"source", "sysfs"}, {"options", {"nosuid", "noexec", "ro"}}},
        {{"destination", "/tmp"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"nosuid"}}},
        // What containerd's default spec adds, with /dev/shm bound to the sandbox's shm storage.
        {{"destination", "/dev/pts"}, {"type", "devpts"}, {"source", "devpts"},
         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
        {{"destination", "/dev/shm"}, {"type", "bind"}, {"source", "/run/kata-containers/sandbox/shm"},
         {"options", {"rbind"}}},
        {{"destination", "/dev/mqueue"}, {"type", "mqueue"}, {"source", "mqueue"}, {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys/fs/cgroup"}, {"type", "cgroup"}, {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"namespaces", {{{"type", "mount"}}, {{"type", "uts"}}, {{"type", "ipc"}}, {{"type", "cgroup"}}}},
        {"maskedPaths", {"/proc/kcore"}}}},
  };
  document["linux"].update(oci::Json::parse(extra_linux));
  return oci::spec_from_json(document, "test spec");
}

grpc::CreateContainerRequest create_request(const std::string& id, const oci::Spec& spec) {
  grpc::CreateContainerRequest request;
  request.set_container_id(id);
  request.set_exec_id(id);
  *request.mutable_oci() = to_agent_spec(spec);
  return request;
}

class AgentVm {
 public:
  AgentVm() {
    make_busybox_rootfs(share_dir_ / "busybox");
    const auto image = image_dir();
    SpawnOptions options;
    options.program = "/usr/bin/qemu-system-x86_64";
    options.arguments = {
        "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2,maxcpus=3", "-m", "512M,slots=2,maxmem=1G", "-nographic",
        "-no-reboot", "-nodefaults", "-serial", "file:" + (work_.path() / "console.log").string(), "-monitor", "none",
        "-qmp", "unix:" + qmp_socket().string() + ",server=on,wait=off",
        "-device", "virtio-serial-pci,id=ser0",
        "-chardev", "socket,path=" + agent_socket().string() + ",server=on,wait=off,id=agent",
        "-device", "virtserialport,bus=ser0.0,chardev=agent,name=agent.channel.0",
        "-fsdev", "local,id=share,path=" + share_dir_.string() + ",security_model=none",
        "-device", "virtio-9p-pci,fsdev=share,mount_tag=kataShared",
        "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,mac=" + std::string(nic_mac),
        "-kernel", (image / "vmlinux.container").string(), "-initrd", (image / "kata-containers-initrd.img").string(),
        "-append", "console=ttyS0 quiet panic=-1 agent.log=debug"};
    options.stdout_fd = -1;
    qemu_ = ChildProcess::spawn(options);
  }

  [[nodiscard]] std::filesystem::path agent_socket() const { return work_.path() / "agent.sock"; }
  [[nodiscard]] std::filesystem::path qmp_socket() const { return work_.path() / "qmp.sock"; }
  [[nodiscard]] std::string console() const {
    std::ifstream in(work_.path() / "console.log");
    return {std::istreambuf_iterator<char>(in), {}};
  }

 private:
  TempDir work_{"agent-vm"};
  std::filesystem::path share_dir_ = work_.path() / "share";
  ChildProcess qemu_;
};

class AgentRpcVmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    vm_ = std::make_unique<AgentVm>();
    io_ = std::make_unique<asio::io_context>();
    const hypervisor::AgentAddress address = hypervisor::SerialPortAddress{vm_->agent_socket()};
    // The socket exists once QEMU has parsed its command line.
    for (int i = 0; i < 100 && !std::filesystem::exists(vm_->agent_socket()); ++i) std::this_thread::sleep_for(50ms);
    agent_ = run_until_done(*io_, connect(address, boot_deadline));
    grpc::CreateSandboxRequest sandbox;
    sandbox.set_hostname("agent-vm-test");
    sandbox.add_dns("nameserver 10.0.2.3");
    sandbox.set_sandbox_id("vmtest");
    auto* share = sandbox.add_storages();
    share->set_driver("9p");
    share->set_source("kataShared");
    share->set_fstype("9p");
    share->add_options("trans=virtio,version=9p2000.L,cache=mmap");
    share->add_options("nodev");
    share->add_options("msize=512000");
    share->set_mount_point(std::string(guest_share));
    auto* shm = sandbox.add_storages();
    shm->set_driver("ephemeral");
    shm->set_source("shm");
    shm->set_fstype("tmpfs");
    shm->add_options("mode=1777");
    shm->set_mount_point("/run/kata-containers/sandbox/shm");
    run_until_done(*io_, agent_->create_sandbox(sandbox));
  }

  // Dials the channel and waits for Health.Check, as the shim does after boot.
  static Task<std::unique_ptr<KataAgent>> connect(hypervisor::AgentAddress address, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    const AgentTimeouts timeouts;
    auto agent = co_await KataAgent::connect<SerialPortTransport>(io_->get_executor(), address, timeouts, deadline);
    co_return std::make_unique<KataAgent>(std::move(agent));
  }

  static void TearDownTestSuite() {
    agent_.reset();
    io_.reset();
    vm_.reset();
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << "guest console:\n" << vm_->console() << '\n';
  }

  template <class T>
  static T run(Task<T> task) {
    return run_until_done(*io_, std::move(task));
  }

  // Reads a stream until the agent reports its end.
  static std::string read_all(const std::string& container, const std::string& exec, bool stderr_stream = false) {
    return run([](std::string container_id, std::string exec_id, bool from_stderr) -> Task<std::string> {
      grpc::ReadStreamRequest request;
      request.set_container_id(container_id);
      request.set_exec_id(exec_id);
      request.set_len(4096);
      std::string all;
      for (;;) {
        grpc::ReadStreamResponse chunk;
        try {
          if (from_stderr) {
            chunk = co_await agent_->read_stderr(request);
          } else {
            chunk = co_await agent_->read_stdout(request);
          }
        } catch (const Error&) {
          break;
        }
        if (chunk.data().empty()) break;
        all += chunk.data();
      }
      co_return all;
    }(container, exec, stderr_stream));
  }

  static int wait(const std::string& container, const std::string& exec = {}) {
    grpc::WaitProcessRequest request;
    request.set_container_id(container);
    request.set_exec_id(exec);
    return run(agent_->wait_process(request)).status();
  }

  static void create_and_start(const std::string& id, const oci::Spec& spec) {
    run(agent_->create_container(create_request(id, spec)));
    grpc::StartContainerRequest start;
    start.set_container_id(id);
    run(agent_->start_container(start));
  }

  static void remove(const std::string& id) {
    grpc::RemoveContainerRequest request;
    request.set_container_id(id);
    run(agent_->remove_container(request));
  }

  static void signal(const std::string& id, const std::string& exec, int number) {
    grpc::SignalProcessRequest request;
    request.set_container_id(id);
    request.set_exec_id(exec);
    request.set_signal(static_cast<unsigned>(number));
    run(agent_->signal_process(request));
  }

  // The code of the error `task` fails with, and its message.
  template <class T>
  static std::pair<Errc, std::string> error_of(Task<T> task) {
    try {
      (void)run(std::move(task));
    } catch (const std::exception& error) {
      return {code_of(error), describe(error)};
    }
    return {Errc::ok, "no error"};
  }

  static inline std::unique_ptr<AgentVm> vm_;
  static inline std::unique_ptr<asio::io_context> io_;
  static inline std::unique_ptr<KataAgent> agent_;
};

TEST_F(AgentRpcVmTest, HealthAndVersion) {
  EXPECT_EQ(run(agent_->check()).status(), grpc::HealthCheckResponse::SERVING);
  EXPECT_FALSE(run(agent_->version()).agent_version().empty());
  grpc::GuestDetailsRequest details;
  details.set_mem_block_size(true);
  const auto reply = run(agent_->get_guest_details(details));
  EXPECT_GT(reply.mem_block_size_bytes(), 0u);
  EXPECT_TRUE(reply.agent_details().init_daemon());
}

TEST_F(AgentRpcVmTest, EchoContainerOutputAndExitCode) {
  create_and_start("echo", container_spec({"sh", "-c", "echo hello from $(hostname); echo oops >&2; exit 3"}));
  EXPECT_EQ(read_all("echo", ""), "hello from vmtest\n");
  EXPECT_EQ(read_all("echo", "", true), "oops\n");
  EXPECT_EQ(wait("echo"), 3);
  remove("echo");
  EXPECT_EQ(error_of(agent_->stats_container([] {
              grpc::StatsContainerRequest r;
              r.set_container_id("echo");
              return r;
            }()))
                .first,
            Errc::not_found);
}

TEST_F(AgentRpcVmTest, ContainerSeesItsOwnCgroupAndMounts) {
  create_and_start("views", container_spec({"sh", "-c",
                                            "cat /proc/self/cgroup; ls /sys/fs/cgroup/memory.max; "
                                            "touch /dev/shm/x && echo shm-ok; ls -d /dev/pts /dev/mqueue"}));
  EXPECT_EQ(read_all("views", ""), "0::/\n/sys/fs/cgroup/memory.max\nshm-ok\n/dev/mqueue\n/dev/pts\n");
  EXPECT_EQ(wait("views"), 0);
  remove("views");
}

TEST_F(AgentRpcVmTest, TerminalAndResize) {
  oci::Spec spec = container_spec({"sh", "-c", "stty size; echo done"});
  spec.process->terminal = true;
  run(agent_->create_container(create_request("tty", spec)));
  grpc::TtyWinResizeRequest resize;
  resize.set_container_id("tty");
  resize.set_row(40);
  resize.set_column(100);
  run(agent_->tty_win_resize(resize));
  grpc::StartContainerRequest start;
  start.set_container_id("tty");
  run(agent_->start_container(start));
  EXPECT_EQ(read_all("tty", ""), "40 100\r\ndone\r\n");
  EXPECT_EQ(wait("tty"), 0);
  remove("tty");
}

TEST_F(AgentRpcVmTest, StdinRoundTrip) {
  create_and_start("cat", container_spec({"cat"}));
  grpc::WriteStreamRequest write;
  write.set_container_id("cat");
  write.set_data("ping over virtio-serial\n");
  EXPECT_EQ(run(agent_->write_stdin(write)).len(), write.data().size());
  grpc::CloseStdinRequest close;
  close.set_container_id("cat");
  run(agent_->close_stdin(close));
  EXPECT_EQ(read_all("cat", ""), "ping over virtio-serial\n");
  EXPECT_EQ(wait("cat"), 0);
  remove("cat");
}

TEST_F(AgentRpcVmTest, ExecSignalsAndLongPollsRunConcurrently) {
  create_and_start("sleeper", container_spec({"sleep", "1000"}));
  // A WaitProcess long poll on the init is pending while the exec and the signals go through.
  // Shared with the detached poll, which may outlive this test if it fails early.
  auto init_status = std::make_shared<std::optional<int>>();
  asio::co_spawn(*io_, [init_status]() -> Task<void> {
    grpc::WaitProcessRequest request;
    request.set_container_id("sleeper");
    *init_status = (co_await agent_->wait_process(request)).status();
  }, asio::detached);

  grpc::ExecProcessRequest exec;
  exec.set_container_id("sleeper");
  exec.set_exec_id("probe");
  const oci::Spec probe = container_spec({"sh", "-c", "echo $(hostname) pid1=$(cat /proc/1/comm); exit 7"});
  *exec.mutable_process() = to_agent_process(*probe.process);
  run(agent_->exec_process(exec));
  // The same exec id again is a duplicate while the first one is known.
  EXPECT_EQ(error_of(agent_->exec_process(exec)).first, Errc::already_exists);
  EXPECT_EQ(read_all("sleeper", "probe"), "vmtest pid1=sleep\n");
  EXPECT_EQ(read_all("sleeper", "probe", true), "");
  EXPECT_EQ(wait("sleeper", "probe"), 7);
  EXPECT_EQ(run(agent_->check()).status(), grpc::HealthCheckResponse::SERVING);
  EXPECT_FALSE(init_status->has_value());

  // Waited for and read to the end, the exec is forgotten: its id is free again, so execs do
  // not pile up in a long-lived container.
  grpc::WaitProcessRequest forgotten;
  forgotten.set_container_id("sleeper");
  forgotten.set_exec_id("probe");
  EXPECT_EQ(error_of(agent_->wait_process(forgotten)).first, Errc::not_found);
  run(agent_->exec_process(exec));
  EXPECT_EQ(read_all("sleeper", "probe"), "vmtest pid1=sleep\n");
  EXPECT_EQ(wait("sleeper", "probe"), 7);

  signal("sleeper", "", SIGKILL);
  EXPECT_EQ(wait("sleeper"), 128 + SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!init_status->has_value() && std::chrono::steady_clock::now() < deadline) io_->run_one_for(100ms);
  EXPECT_EQ(init_status->value_or(-1), 128 + SIGKILL);

  grpc::SignalProcessRequest again;
  again.set_container_id("sleeper");
  again.set_signal(SIGTERM);
  const auto [code, message] = error_of(agent_->signal_process(again));
  EXPECT_EQ(code, Errc::not_found) << message;
  EXPECT_NE(message.find("already exited"), std::string::npos) << message;
  remove("sleeper");
}

TEST_F(AgentRpcVmTest, PauseResumeAndStats) {
  create_and_start("paused", container_spec({"sleep", "1000"}, R"({"resources": {"memory": {"limit": 67108864}, "pids": {"limit": 32}}})"));
  grpc::PauseContainerRequest pause;
  pause.set_container_id("paused");
  run(agent_->pause_container(pause));
  grpc::StatsContainerRequest stats;
  stats.set_container_id("paused");
  const auto reply = run(agent_->stats_container(stats));
  EXPECT_EQ(reply.cgroup_stats().memory_stats().usage().limit(), 67108864u);
  EXPECT_EQ(reply.cgroup_stats().pids_stats().limit(), 32u);
  EXPECT_EQ(reply.cgroup_stats().pids_stats().current(), 1u);
  grpc::ResumeContainerRequest resume;
  resume.set_container_id("paused");
  run(agent_->resume_container(resume));
  EXPECT_EQ(error_of(agent_->resume_container(resume)).first, Errc::failed_precondition);
  remove("paused");
}

TEST_F(AgentRpcVmTest, MemoryLimitProducesOomEvent) {
  auto oom_container = std::make_shared<std::optional<std::string>>();
  asio::co_spawn(*io_, [oom_container]() -> Task<void> {
    *oom_container = (co_await agent_->get_oom_event()).container_id();
  }, asio::detached);
  create_and_start("hog", container_spec({"sh", "-c", "a=$(head -c 64000000 /dev/zero | tr '\\0' x); echo survived"},
                                         R"({"resources": {"memory": {"limit": 16777216, "swap": 16777216}}})"));
  EXPECT_EQ(read_all("hog", ""), "");
  EXPECT_EQ(wait("hog"), 128 + SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!oom_container->has_value() && std::chrono::steady_clock::now() < deadline) io_->run_one_for(100ms);
  EXPECT_EQ(oom_container->value_or("none"), "hog");
  remove("hog");
}

TEST_F(AgentRpcVmTest, BadInputIsRefusedAndTheAgentKeepsServing) {
  create_and_start("survivor", container_spec({"sleep", "1000"}));

  oci::Spec no_process = container_spec({"true"});
  no_process.process.reset();
  auto [code, message] = error_of(agent_->create_container(create_request("bad1", no_process)));
  EXPECT_EQ(code, Errc::invalid_argument) << message;
  EXPECT_NE(message.find("no process"), std::string::npos) << message;

  oci::Spec bad_rlimit = container_spec({"true"});
  bad_rlimit.process->rlimits.push_back({.type = "RLIMIT_NOPE", .hard = 1, .soft = 1});
  std::tie(code, message) = error_of(agent_->create_container(create_request("bad2", bad_rlimit)));
  EXPECT_EQ(code, Errc::invalid_argument) << message;
  EXPECT_NE(message.find("RLIMIT_NOPE"), std::string::npos) << message;

  oci::Spec missing_root = container_spec({"true"});
  missing_root.root->path = std::string(guest_share) + "/no-such-rootfs";
  std::tie(code, message) = error_of(agent_->create_container(create_request("bad3", missing_root)));
  EXPECT_EQ(code, Errc::not_found) << message;
  EXPECT_NE(message.find("no-such-rootfs"), std::string::npos) << message;

  std::tie(code, message) = error_of(agent_->create_container(create_request("survivor", container_spec({"true"}))));
  EXPECT_EQ(code, Errc::already_exists) << message;

  grpc::ExecProcessRequest exec;
  exec.set_container_id("ghost");
  exec.set_exec_id("e1");
  *exec.mutable_process() = to_agent_process(*container_spec({"true"}).process);
  std::tie(code, message) = error_of(agent_->exec_process(exec));
  EXPECT_EQ(code, Errc::not_found) << message;
  EXPECT_NE(message.find("ghost"), std::string::npos) << message;

  std::tie(code, message) = error_of(agent_->set_guest_date_time([] {
    grpc::SetGuestDateTimeRequest r;
    r.set_sec(1);
    r.set_usec(2'000'000);
    return r;
  }()));
  EXPECT_EQ(code, Errc::invalid_argument) << message;

  // The failed creations left nothing behind: the ids are free, and the survivor still runs.
  create_and_start("bad1", container_spec({"sh", "-c", "echo fine"}));
  EXPECT_EQ(read_all("bad1", ""), "fine\n");
  EXPECT_EQ(wait("bad1"), 0);
  remove("bad1");
  exec.set_container_id("survivor");
  run(agent_->exec_process(exec));
  EXPECT_EQ(wait("survivor", "e1"), 0);
  signal("survivor", "", SIGKILL);
  EXPECT_EQ(wait("survivor"), 128 + SIGKILL);
  remove("survivor");
}

TEST_F(AgentRpcVmTest, HotAddedCpuIsOnlined) {
  const auto hotplugged = run([]() -> Task<bool> {
    auto executor = co_await asio::this_coro::executor;
    asio::local::stream_protocol::socket socket(executor);
    co_await socket.async_connect(asio::local::stream_protocol::endpoint(vm_->qmp_socket().string()),
                                  asio::use_awaitable);
    hypervisor::qemu::QmpClient qmp(std::move(socket));
    co_await qmp.handshake(10s);
    const nlohmann::json cpus = co_await qmp.execute("query-hotpluggable-cpus");
    for (const auto& cpu : cpus) {
      if (cpu.contains("qom-path")) continue;
      nlohmann::json arguments = cpu["props"];
      arguments["driver"] = cpu["type"];
      arguments["id"] = "cpu-hotplug-test";
      co_await qmp.execute("device_add", arguments);
      co_return true;
    }
    co_return false;
  }());
  ASSERT_TRUE(hotplugged);
  grpc::OnlineCPUMemRequest online;
  online.set_wait(true);
  online.set_nb_cpus(1);
  online.set_cpu_only(true);
  run(agent_->online_cpu_mem(online));
  create_and_start("cpus", container_spec({"cat", "/sys/devices/system/cpu/online"}));
  EXPECT_EQ(read_all("cpus", ""), "0-2\n");
  EXPECT_EQ(wait("cpus"), 0);
  remove("cpus");
}

TEST_F(AgentRpcVmTest, HotAddedMemoryIsOnlined) {
  const auto mem_total_kib = [] {
    create_and_start("meminfo", container_spec({"head", "-n", "1", "/proc/meminfo"}));
    const std::string line = read_all("meminfo", "");
    EXPECT_EQ(wait("meminfo"), 0);
    remove("meminfo");
    return std::stoull(line.substr(line.find_first_of("0123456789")));
  };
  const auto before = mem_total_kib();
  run([]() -> Task<void> {
    auto executor = co_await asio::this_coro::executor;
    asio::local::stream_protocol::socket socket(executor);
    co_await socket.async_connect(asio::local::stream_protocol::endpoint(vm_->qmp_socket().string()),
                                  asio::use_awaitable);
    hypervisor::qemu::QmpClient qmp(std::move(socket));
    co_await qmp.handshake(10s);
    // Named arguments: a braced temporary inside co_await is destroyed twice by GCC 12.
    nlohmann::json backend;
    backend["qom-type"] = "memory-backend-ram";
    backend["id"] = "mem-test";
    backend["size"] = 128 << 20;
    co_await qmp.execute("object-add", std::move(backend));
    nlohmann::json dimm;
    dimm["driver"] = "pc-dimm";
    dimm["id"] = "dimm-test";
    dimm["memdev"] = "mem-test";
    co_await qmp.execute("device_add", std::move(dimm));
  }());
  // The Debian kernel leaves hot-added memory offline: nothing changes until the agent onlines it.
  EXPECT_EQ(mem_total_kib(), before);
  // The guest learns of the DIMM through an ACPI event after device_add returns; the runtime
  // calls OnlineCPUMem after hot-adding, and the call onlines whatever blocks are there by then,
  // so it is repeated until they have appeared.
  grpc::OnlineCPUMemRequest online;
  online.set_wait(true);
  auto after = before;
  for (int attempt = 0; attempt < 60 && after < before + (100 << 10); ++attempt) {
    std::this_thread::sleep_for(500ms);
    run(agent_->online_cpu_mem(online));
    after = mem_total_kib();
  }
  EXPECT_GE(after, before + (100 << 10)) << "MemTotal " << before << " kB -> " << after << " kB";
}

TEST_F(AgentRpcVmTest, InterfaceRoutesAndNeighbors) {
  grpc::UpdateInterfaceRequest update;
  auto* nic = update.mutable_interface();
  nic->set_name("eth0");
  nic->set_hwaddr(std::string(nic_mac));
  nic->set_mtu(1400);
  auto* address = nic->add_ipaddresses();
  address->set_address("10.0.2.15");
  address->set_mask("24");
  const types::Interface configured = run(agent_->update_interface(update));
  EXPECT_EQ(configured.name(), "eth0");
  EXPECT_EQ(configured.mtu(), 1400u);

  grpc::UpdateRoutesRequest routes;
  auto* on_link = routes.mutable_routes()->add_routes();
  on_link->set_dest("10.0.2.0/24");
  on_link->set_device("eth0");
  on_link->set_scope(253);  // RT_SCOPE_LINK
  auto* gateway = routes.mutable_routes()->add_routes();
  gateway->set_gateway("10.0.2.2");
  gateway->set_device("eth0");
  const grpc::Routes after = run(agent_->update_routes(routes));
  bool default_route = false;
  for (const auto& route : after.routes()) {
    if (route.dest().empty() && route.gateway() == "10.0.2.2" && route.device() == "eth0") default_route = true;
  }
  EXPECT_TRUE(default_route) << after.DebugString();

  grpc::AddARPNeighborsRequest neighbors;
  auto* neighbor = neighbors.mutable_neighbors()->add_arpneighbors();
  neighbor->mutable_toipaddress()->set_address("10.0.2.9");
  neighbor->set_device("eth0");
  neighbor->set_lladdr("02:00:ca:fe:00:09");
  run(agent_->add_arp_neighbors(neighbors));

  // A container (in the sandbox's network namespace) sees the configured link.
  create_and_start("net", container_spec({"cat", "/sys/class/net/eth0/mtu", "/sys/class/net/eth0/address"}));
  EXPECT_EQ(read_all("net", ""), "1400\n" + std::string(nic_mac) + "\n");
  EXPECT_EQ(wait("net"), 0);
  remove("net");

  grpc::UpdateInterfaceRequest unknown;
  unknown.mutable_interface()->set_name("eth9");
  unknown.mutable_interface()->set_hwaddr("02:00:00:00:00:99");
  EXPECT_EQ(error_of(agent_->update_interface(unknown)).first, Errc::not_found);
}

TEST_F(AgentRpcVmTest, HostReconnectsToTheSameAgent) {
  // The host end goes away (as when a shim restarts) and a new client dials the same channel at
  // once, again and again. virtio-serial may report such a disconnect late or not at all; the
  // agent tells the sessions apart by the new client's stream ids, so every dial is answered
  // on its first Health.Check (docs/agent.md, "Channel sessions").
  const hypervisor::AgentAddress address = hypervisor::SerialPortAddress{vm_->agent_socket()};
  for (int cycle = 0; cycle < 5; ++cycle) {
    agent_.reset();
    agent_ = run(connect(address, 30s));
    EXPECT_EQ(run(agent_->check()).status(), grpc::HealthCheckResponse::SERVING) << "cycle " << cycle;
  }
  create_and_start("after-reconnect", container_spec({"echo", "still here"}));
  EXPECT_EQ(read_all("after-reconnect", ""), "still here\n");
  EXPECT_EQ(wait("after-reconnect"), 0);
  remove("after-reconnect");
  run(agent_->destroy_sandbox());
}

}  // namespace
}  // namespace kata::agent
