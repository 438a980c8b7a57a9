// VirtSandbox against the fake hypervisor and a scripted guest agent served over a real ttRPC
// socket: the runtime's lifecycle, I/O and failure handling without a VM.
#include "kata/runtime/virt_sandbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <boost/asio/use_future.hpp>

#include "google/protobuf/empty.pb.h"
#include "kata/core/error.hpp"
#include "kata/ttrpc/server.hpp"
#include "mocks/fake_hypervisor.hpp"

namespace kata::runtime {
namespace {

namespace fs = std::filesystem;

// Named, never brace-initialised inside a co_await expression: GCC 12 destroys such temporaries
// twice (docs/architecture.md, compiler notes).
const ProcessId c1_init{"c1", {}};
const ProcessId c1_e1{"c1", "e1"};
using namespace std::chrono_literals;
using Sandbox = VirtSandbox<testing::FakeHypervisor, agent::SerialPortTransport>;

/// A guest agent that records what it is asked and answers like the real one: output of a
/// started process, then end of stream; exit codes from `exit_codes`.
struct FakeGuest {
  std::vector<std::string> calls;
  grpc::CreateSandboxRequest sandbox;
  std::map<std::string, grpc::CreateContainerRequest> containers;
  std::vector<grpc::UpdateContainerRequest> updates;
  std::map<std::string, int> exit_codes;
  std::map<std::string, std::string> pending_output;  // key: container/exec
  std::string stdin_received;
  bool stdin_closed = false;
  std::optional<AsyncEvent> release_create;  // when set, CreateContainer waits for it
  std::set<std::string> fail_create;          // CreateContainer of these ids fails
  bool block_wait = false;                    // WaitProcess never answers (the process runs on)
  std::optional<AsyncEvent> stopped;          // ends the long polls when the test is over

  static std::string key(const std::string& container, const std::string& exec) { return container + "/" + exec; }

  ttrpc::ServiceDefinition service() {
    ttrpc::ServiceDefinition agent("grpc.AgentService");
    auto empty = [] { return google::protobuf::Empty{}.SerializeAsString(); };
    agent.add_unary("CreateSandbox", [this, empty](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      calls.push_back("CreateSandbox");
      sandbox.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      co_return empty();
    });
    agent.add_unary("CreateContainer", [this, empty](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::CreateContainerRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      calls.push_back("CreateContainer " + request.container_id());
      if (release_create) co_await release_create->wait();
      if (fail_create.contains(request.container_id())) fail(Errc::internal, "mount storage: injected failure");
      containers[request.container_id()] = request;
      co_return empty();
    });
    agent.add_unary("StartContainer", [this, empty](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::StartContainerRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      calls.push_back("StartContainer " + request.container_id());
      pending_output[key(request.container_id(), "")] = "hello from " + request.container_id() + "\n";
      co_return empty();
    });
    agent.add_unary("ExecProcess", [this, empty](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::ExecProcessRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      calls.push_back("ExecProcess " + request.exec_id() + " " + request.process().args(0));
      pending_output[key(request.container_id(), request.exec_id())] = "exec output\n";
      co_return empty();
    });
    agent.add_unary("ReadStdout", [this](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::ReadStreamRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      grpc::ReadStreamResponse response;
      auto it = pending_output.find(key(request.container_id(), request.exec_id()));
      if (it != pending_output.end()) {
        response.set_data(it->second);
        pending_output.erase(it);
      }
      co_return response.SerializeAsString();  // empty data: end of stream
    });
    agent.add_unary("ReadStderr", [](std::string_view, const ttrpc::CallContext&) -> Task<std::string> {
      co_return grpc::ReadStreamResponse{}.SerializeAsString();
    });
    agent.add_unary("WriteStdin", [this](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::WriteStreamRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      stdin_received += request.data();
      grpc::WriteStreamResponse response;
      response.set_len(static_cast<std::uint32_t>(request.data().size()));
      co_return response.SerializeAsString();
    });
    agent.add_unary("CloseStdin", [this, empty](std::string_view, const ttrpc::CallContext&) -> Task<std::string> {
      stdin_closed = true;
      co_return empty();
    });
    agent.add_unary("WaitProcess", [this](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      if (block_wait) co_await stopped->wait();
      grpc::WaitProcessRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      grpc::WaitProcessResponse response;
      response.set_status(exit_codes[key(request.container_id(), request.exec_id())]);
      co_return response.SerializeAsString();
    });
    agent.add_unary("RemoveContainer", [this, empty](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::RemoveContainerRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      calls.push_back("RemoveContainer " + request.container_id());
      co_return empty();
    });
    agent.add_unary("OnlineCPUMem", [this, empty](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::OnlineCPUMemRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      calls.push_back(fmt::format("OnlineCPUMem {}", request.nb_cpus()));
      co_return empty();
    });
    agent.add_unary("UpdateContainer", [this, empty](std::string_view bytes, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::UpdateContainerRequest request;
      request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
      calls.push_back("UpdateContainer " + request.container_id());
      updates.push_back(request);
      co_return empty();
    });
    agent.add_unary("GetOOMEvent", [this](std::string_view, const ttrpc::CallContext&) -> Task<std::string> {
      // A long poll that never fires in these tests: it ends when the test stops the guest.
      co_await stopped->wait();
      co_return std::string();
    });
    return agent;
  }

  static ttrpc::ServiceDefinition health() {
    ttrpc::ServiceDefinition health("grpc.Health");
    health.add_unary("Check", [](std::string_view, const ttrpc::CallContext&) -> Task<std::string> {
      grpc::HealthCheckResponse response;
      response.set_status(grpc::HealthCheckResponse::SERVING);
      co_return response.SerializeAsString();
    });
    return health;
  }
};

class VirtSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/kata-test-sandbox-XXXXXX";
    root_ = ::mkdtemp(pattern);
    fs::create_directories(root_ / "bundle" / "rootfs" / "bin");
    write_spec(R"({"ociVersion":"1.0.2","process":{"args":["/bin/sh","-c","echo hi"],"cwd":"/","user":{"uid":0,"gid":0}},
      "root":{"path":"rootfs"},"hostname":"box","mounts":[{"destination":"/proc","type":"proc","source":"proc"}],
      "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1"},{"type":"mount"}]}})");
    ::mkfifo((root_ / "stdout").c_str(), 0600);
    ::mkfifo((root_ / "stdin").c_str(), 0600);
    // containerd opens its ends before Create.
    stdout_reader_.reset(::open((root_ / "stdout").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  }

  void TearDown() override {
    stdout_reader_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  void write_spec(const std::string& json) { std::ofstream(root_ / "bundle" / "config.json") << json; }

  VirtSandboxSettings settings() {
    VirtSandboxSettings s;
    s.sandbox_id = "sb1";
    s.config.runtime.hypervisor_name = "fake";
    s.config.hypervisor["fake"].shared_fs.shared_fs = "virtio-9p";
    s.config.hypervisor["fake"].cpu.default_maxvcpus = 4;
    s.config.agent["kata"];
    s.state_root = root_ / "run-kata";
    s.shared_root = root_ / "shared";
    s.hostname = "box";
    s.boot_timeout = 10s;
    return s;
  }

  CreateContainerRequest create_request(std::string id) {
    CreateContainerRequest request;
    request.container_id = std::move(id);
    request.bundle = root_ / "bundle";
    request.stdio.stdout_path = (root_ / "stdout").string();
    return request;
  }

  std::string read_stdout() {
    std::string out;
    char buffer[256];
    ssize_t got;
    while ((got = ::read(stdout_reader_.get(), buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<std::size_t>(got));
    return out;
  }

  /// Runs `scenario` with a fake guest serving on a socket the fake hypervisor points at.
  void run(const std::function<Task<void>(Sandbox&, FakeGuest&)>& scenario, VirtSandboxSettings s) {
    asio::io_context io;
    FakeGuest guest;
    guest.stopped.emplace(io.get_executor());
    ttrpc::Server server(io.get_executor());
    server.add_service(guest.service());
    server.add_service(FakeGuest::health());
    const auto socket = root_ / "agent.sock";
    server.listen_unix(socket);
    Sandbox sandbox(io.get_executor(), std::move(s));
    sandbox.hypervisor().agent_address_override = hypervisor::SerialPortAddress{socket};
    auto body = [&]() -> Task<void> {
      std::exception_ptr failure;
      try {
        co_await scenario(sandbox, guest);
      } catch (...) {
        failure = std::current_exception();
      }
      co_await sandbox.shutdown();
      guest.stopped->set();
      server.close();
      if (failure) std::rethrow_exception(failure);
    };
    auto done = asio::co_spawn(io, body, asio::use_future);
    io.run();
    done.get();
  }

  fs::path root_;
  UniqueFd stdout_reader_;
};

TEST_F(VirtSandboxTest, ContainerLifecycleThroughTheAgent) {
  std::vector<std::string> calls;
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        guest.exit_codes["c1/"] = 3;
        const pid_t pid = co_await sandbox.create_container(create_request("c1"));
        EXPECT_EQ(pid, 4242);  // the VMM pid is every task's pid
        EXPECT_EQ(sandbox.state_process(c1_init).status, ProcessStatus::created);
        EXPECT_EQ(sandbox.hypervisor().cold_plugged, (std::vector<std::string>{"kataShared"}));

        // The spec the guest got: rootfs from the shared fs, no network/pid namespace entries.
        const auto& spec = guest.containers.at("c1").oci();
        EXPECT_EQ(spec.root().path(), "/run/kata-containers/shared/containers/passthrough/c1/rootfs");
        for (const auto& ns : spec.linux().namespaces()) {
          EXPECT_NE(ns.type(), "network");
          EXPECT_NE(ns.type(), "pid");
          EXPECT_TRUE(ns.path().empty());
        }
        EXPECT_EQ(guest.sandbox.hostname(), "box");
        EXPECT_GE(guest.sandbox.storages_size(), 2);
        if (guest.sandbox.storages_size() < 2) co_return;
        EXPECT_EQ(guest.sandbox.storages(0).driver(), "9p");
        EXPECT_TRUE(fs::exists(root_ / "run-kata" / "sb1" / "state.json"));

        co_await sandbox.start_process(c1_init);
        const ExitInfo exit = co_await sandbox.wait_process(c1_init);
        EXPECT_EQ(exit.exit_status, 3u);
        EXPECT_EQ(read_stdout(), "hello from c1\n");
        EXPECT_EQ(sandbox.state_process(c1_init).status, ProcessStatus::stopped);

        const ExitInfo deleted = co_await sandbox.delete_process(c1_init);
        EXPECT_EQ(deleted.exit_status, 3u);
        EXPECT_THROW(sandbox.state_process(c1_init), Error);
        calls = guest.calls;
      },
      settings());
  EXPECT_EQ(calls, (std::vector<std::string>{"CreateSandbox", "CreateContainer c1", "StartContainer c1", "RemoveContainer c1"}));
  // Nothing left behind: state dir and shared dir are gone.
  EXPECT_FALSE(fs::exists(root_ / "run-kata" / "sb1"));
  EXPECT_FALSE(fs::exists(root_ / "shared" / "sb1"));
}

// containerd's binary logging protocol: stdout on fd 3, stderr on fd 4, ready when fd 5 closes,
// query parameters as arguments, CONTAINER_ID/CONTAINER_NAMESPACE in the environment.
TEST_F(VirtSandboxTest, BinaryLoggerGetsTheOutputAndIsReaped) {
  const fs::path logger = root_ / "logger.sh";
  const fs::path log = root_ / "logged";
  std::ofstream(logger) << "#!/bin/sh\n"
                        << "exec 5>&-\n"
                        << "echo \"args=$* id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE\" > " << log.string() << "\n"
                        << "cat <&3 >> " << log.string() << "\n";
  fs::permissions(logger, fs::perms::owner_all);
  auto s = settings();
  s.namespace_name = "k8s.io";
  run([&](Sandbox& sandbox, FakeGuest&) -> Task<void> {
        CreateContainerRequest request = create_request("c1");
        request.stdio.stdout_path = "binary://" + logger.string() + "?--tag=web&--verbose";
        request.stdio.stderr_path = request.stdio.stdout_path;
        co_await sandbox.create_container(std::move(request));
        co_await sandbox.start_process(c1_init);
        (void)co_await sandbox.wait_process(c1_init);
        (void)co_await sandbox.delete_process(c1_init);
      },
      std::move(s));
  // shutdown() drained the gate, so the logger has seen end-of-file and was reaped.
  std::ifstream in(log);
  std::stringstream logged;
  logged << in.rdbuf();
  EXPECT_EQ(logged.str(), "args=--tag web --verbose id=c1 ns=k8s.io\nhello from c1\n");
}

TEST_F(VirtSandboxTest, MissingBinaryLoggerFailsCreateNamingIt) {
  run([&](Sandbox& sandbox, FakeGuest&) -> Task<void> {
        CreateContainerRequest request = create_request("c1");
        request.stdio.stdout_path = "binary:///nonexistent/logger";
        request.stdio.stderr_path = request.stdio.stdout_path;
        try {
          co_await sandbox.create_container(std::move(request));
          ADD_FAILURE() << "create with a missing logger succeeded";
        } catch (const Error& error) {
          EXPECT_NE(describe(error).find("/nonexistent/logger"), std::string::npos) << describe(error);
        }
      },
      settings());
}

TEST_F(VirtSandboxTest, ExecAndDuplicateExecAndStdin) {
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        co_await sandbox.create_container(create_request("c1"));
        co_await sandbox.start_process(c1_init);
        ExecProcessRequest exec;
        exec.process = c1_e1;
        exec.process_spec_json = R"({"args":["/bin/cat"],"cwd":"/","user":{"uid":0,"gid":0}})";
        exec.stdio.stdin_path = (root_ / "stdin").string();
        ExecProcessRequest duplicate = exec;
        co_await sandbox.exec_process(std::move(exec));
        try {
          co_await sandbox.exec_process(std::move(duplicate));
          ADD_FAILURE() << "a duplicate exec id must be refused";
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), Errc::already_exists);
          EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos);
        }
        ExecProcessRequest malformed;
        malformed.process = ProcessId{"c1", "e2"};
        malformed.process_spec_json = "not json";
        EXPECT_THROW(co_await sandbox.exec_process(std::move(malformed)), Error);

        co_await sandbox.start_process(c1_e1);
        {
          UniqueFd writer(::open((root_ / "stdin").c_str(), O_WRONLY | O_CLOEXEC));
          EXPECT_EQ(::write(writer.get(), "typed\n", 6), 6);
        }
        co_await sandbox.close_stdin(c1_e1);
        co_await sandbox.wait_process(c1_e1);
        // Let the stdin copy deliver what it read and close the guest's stdin.
        for (int i = 0; i < 200 && !guest.stdin_closed; ++i) {
          asio::steady_timer pause(co_await asio::this_coro::executor, 5ms);
          co_await pause.async_wait(asio::use_awaitable);
        }
        EXPECT_EQ(guest.stdin_received, "typed\n");
        EXPECT_TRUE(guest.stdin_closed);
        EXPECT_NE(std::find(guest.calls.begin(), guest.calls.end(), "ExecProcess e1 /bin/cat"), guest.calls.end());
        // The exec has no stdout path: its output is still read from the guest (and dropped), so
        // the guest's pipe never fills and the agent can forget the exec.
        for (int i = 0; i < 200 && guest.pending_output.contains(FakeGuest::key("c1", "e1")); ++i) {
          asio::steady_timer pause(co_await asio::this_coro::executor, 5ms);
          co_await pause.async_wait(asio::use_awaitable);
        }
        EXPECT_FALSE(guest.pending_output.contains(FakeGuest::key("c1", "e1")));
      },
      settings());
}

// ctr closes its end of the stdin FIFO without a CloseIO when its input ended before Create
// returned (its closer is set only afterwards): end-of-file alone must reach the guest.
TEST_F(VirtSandboxTest, StdinEndsWhenTheWriterLeavesWithoutCloseIo) {
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        CreateContainerRequest request = create_request("c1");
        request.stdio.stdin_path = (root_ / "stdin").string();
        co_await sandbox.create_container(std::move(request));
        {
          UniqueFd writer(::open((root_ / "stdin").c_str(), O_WRONLY | O_CLOEXEC));
          EXPECT_EQ(::write(writer.get(), "early\n", 6), 6);
        }
        co_await sandbox.start_process(c1_init);
        for (int i = 0; i < 400 && !guest.stdin_closed; ++i) {
          asio::steady_timer pause(co_await asio::this_coro::executor, 5ms);
          co_await pause.async_wait(asio::use_awaitable);
        }
        EXPECT_EQ(guest.stdin_received, "early\n");
        EXPECT_TRUE(guest.stdin_closed);
        co_await sandbox.wait_process(c1_init);
      },
      settings());
}

TEST_F(VirtSandboxTest, FailedBootRollsBackAndNamesTheCause) {
  try {
    run([&](Sandbox& sandbox, FakeGuest&) -> Task<void> {
          sandbox.hypervisor().fail_start = Errc::unavailable;
          co_await sandbox.create_container(create_request("c1"));
        },
        settings());
    FAIL() << "create must fail when the VM does not start";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "create container c1: start sandbox sb1: start fake VM sb1: injected failure");
    EXPECT_EQ(code_of(e), Errc::unavailable);
  }
  EXPECT_FALSE(fs::exists(root_ / "run-kata" / "sb1"));
  EXPECT_FALSE(fs::exists(root_ / "shared" / "sb1"));
}

TEST_F(VirtSandboxTest, VmmDeathEndsEveryProcessExactlyOnce) {
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        guest.block_wait = true;  // the container keeps running until the VMM dies
        co_await sandbox.create_container(create_request("c1"));
        co_await sandbox.start_process(c1_init);
        asio::steady_timer settle(co_await asio::this_coro::executor, 20ms);
        co_await settle.async_wait(asio::use_awaitable);
        EXPECT_EQ(sandbox.state_process(c1_init).status, ProcessStatus::running);
        sandbox.hypervisor().crash();
        const ExitInfo exit = co_await sandbox.wait_process(c1_init);
        EXPECT_EQ(exit.exit_status, 255u);
        // Exactly one exit: a second waiter sees the same one.
        const ExitInfo again = co_await sandbox.wait_process(c1_init);
        EXPECT_EQ(again.exited_at, exit.exited_at);
        // The dead sandbox refuses new work with a clear error.
        try {
          co_await sandbox.create_container(create_request("c2"));
          ADD_FAILURE() << "a dead sandbox must refuse new containers";
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), Errc::unavailable);
        }
      },
      settings());
}

TEST_F(VirtSandboxTest, StateAnswersWhileCreateIsInFlight) {
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        co_await sandbox.create_container(create_request("c1"));
        write_spec(R"({"ociVersion":"1.0.2","process":{"args":["sleep"],"cwd":"/","user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}})");
        guest.release_create.emplace(co_await asio::this_coro::executor);
        bool created = false;
        auto second = [&]() -> Task<void> {
          co_await sandbox.create_container(create_request("c2"));
          created = true;
        };
        asio::co_spawn(co_await asio::this_coro::executor, second, asio::detached);
        asio::steady_timer pause(co_await asio::this_coro::executor, 50ms);
        co_await pause.async_wait(asio::use_awaitable);
        // c2's Create is blocked in the guest; reads of c1 must not wait behind it.
        EXPECT_FALSE(created);
        EXPECT_EQ(sandbox.state_process(c1_init).status, ProcessStatus::created);
        EXPECT_EQ(sandbox.container_pids("c1"), (std::vector<pid_t>{4242}));
        guest.release_create->set();
        for (int i = 0; i < 200 && !created; ++i) {
          asio::steady_timer wait(co_await asio::this_coro::executor, 5ms);
          co_await wait.async_wait(asio::use_awaitable);
        }
        EXPECT_TRUE(created);
      },
      settings());
}

// Volumes (resource/volume) through the sandbox: a block volume is hotplugged before the agent
// creates the container and unplugged after it is removed; a container whose volume cannot be
// prepared or mounted fails alone, leaving no share and no device behind.
TEST_F(VirtSandboxTest, BlockVolumesAttachAndDetachAndFailuresLeaveNothing) {
  const fs::path disk = root_ / "disk0";
  ASSERT_EQ(::mknod(disk.c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  fs::create_directories(root_ / "conf");
  const auto spec_with = [&](const std::string& mounts) {
    write_spec(R"({"ociVersion":"1.0.2","process":{"args":["/bin/sh"],"cwd":"/","user":{"uid":0,"gid":0}},
      "root":{"path":"rootfs"},"mounts":[{"destination":"/proc","type":"proc","source":"proc"},)" +
               mounts + R"(],"linux":{"namespaces":[{"type":"mount"}]}})");
  };
  const std::string block = R"({"destination":"/data","type":"bind","source":")" + disk.string() +
                            R"(","options":["rbind","ro"]})";
  const std::string conf = R"({"destination":"/conf","type":"bind","source":")" + (root_ / "conf").string() +
                           R"(","options":["rbind","ro"]})";
  const ProcessId c2_init{"c2", {}};
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        spec_with(block + "," + conf);
        co_await sandbox.create_container(create_request("c1"));
        EXPECT_EQ(sandbox.hypervisor().hot_plugged.size(), 1U);
        const auto& request = guest.containers.at("c1");
        EXPECT_EQ(request.storages_size(), 1);
        if (request.storages_size() != 1) co_return;
        const auto& storage = request.storages(0);
        EXPECT_EQ(storage.driver(), "blk");
        EXPECT_EQ(storage.source(), "02/01");  // the attachment's PCI path
        EXPECT_EQ(storage.fstype(), "ext4");
        EXPECT_TRUE(storage.mount_point().starts_with("/run/kata-containers/sandbox/block/c1-")) << storage.mount_point();
        bool found = false;
        for (const auto& mount : request.oci().mounts()) {
          if (mount.destination() != "/data") continue;
          found = true;
          EXPECT_EQ(mount.source(), storage.mount_point());
          EXPECT_EQ(mount.type(), "bind");
          EXPECT_NE(std::find(mount.options().begin(), mount.options().end(), "ro"), mount.options().end());
        }
        EXPECT_TRUE(found);
        const auto shares_before = std::distance(fs::directory_iterator(root_ / "shared" / "sb1" / "rw" / "passthrough"),
                                                 fs::directory_iterator());

        // A missing source: one error naming the container, the volume and the source.
        spec_with(conf + R"(,{"destination":"/missing","type":"bind","source":")" + (root_ / "absent").string() +
                  R"(","options":["rbind"]})");
        try {
          co_await sandbox.create_container(create_request("c2"));
          ADD_FAILURE() << "a missing volume source was accepted";
        } catch (const Error& error) {
          EXPECT_EQ(error.code(), Errc::not_found);
          EXPECT_THAT(describe(error), ::testing::HasSubstr("create container c2"));
          EXPECT_THAT(describe(error), ::testing::HasSubstr("volume /missing (source " + (root_ / "absent").string()));
        }
        // The guest fails to mount: the device attached for it goes again.
        guest.fail_create.insert("c3");
        spec_with(block);
        try {
          co_await sandbox.create_container(create_request("c3"));
          ADD_FAILURE() << "a failed CreateContainer succeeded";
        } catch (const Error& error) {
          EXPECT_THAT(describe(error), ::testing::HasSubstr("create container c3"));
        }
        EXPECT_EQ(sandbox.hypervisor().hot_plugged.size(), 1U);
        EXPECT_EQ(std::distance(fs::directory_iterator(root_ / "shared" / "sb1" / "rw" / "passthrough"),
                                fs::directory_iterator()),
                  shares_before);
        EXPECT_EQ(sandbox.state_process(c1_init).status, ProcessStatus::created);  // c1 is untouched
        EXPECT_THROW((void)sandbox.state_process(c2_init), Error);

        co_await sandbox.start_process(c1_init);
        (void)co_await sandbox.wait_process(c1_init);
        (void)co_await sandbox.delete_process(c1_init);
        EXPECT_TRUE(sandbox.hypervisor().hot_plugged.empty());
      },
      settings());
  EXPECT_FALSE(fs::exists(root_ / "shared" / "sb1"));
}

// A rootfs that containerd gives as a block device (the devmapper snapshotter's) is attached and
// mounted by the agent as the container's root, neither mounted on the host nor shared.
TEST_F(VirtSandboxTest, BlockRootfsIsAttachedAndBecomesTheRoot) {
  const fs::path thin = root_ / "thin-1";
  ASSERT_EQ(::mknod(thin.c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        CreateContainerRequest request = create_request("c1");
        request.rootfs.push_back(RootfsMount{.type = "ext4", .source = thin.string(), .target = {}, .options = {"rw"}});
        co_await sandbox.create_container(std::move(request));
        EXPECT_EQ(sandbox.hypervisor().hot_plugged.size(), 1U);
        const auto& created = guest.containers.at("c1");
        EXPECT_EQ(created.storages_size(), 1);
        if (created.storages_size() != 1) co_return;
        const auto& storage = created.storages(0);
        EXPECT_EQ(storage.driver(), "blk");
        EXPECT_EQ(storage.source(), "02/01");
        EXPECT_EQ(storage.fstype(), "ext4");
        EXPECT_EQ(created.oci().root().path(), storage.mount_point());
        EXPECT_TRUE(storage.mount_point().starts_with("/run/kata-containers/sandbox/block/c1-")) << storage.mount_point();
        EXPECT_FALSE(fs::exists(root_ / "shared" / "sb1" / "rw" / "passthrough" / "c1"));
        EXPECT_FALSE(is_mount_point(root_ / "bundle" / "rootfs"));
        co_await sandbox.start_process(c1_init);
        (void)co_await sandbox.wait_process(c1_init);
        (void)co_await sandbox.delete_process(c1_init);
        EXPECT_TRUE(sandbox.hypervisor().hot_plugged.empty());
      },
      settings());
}

TEST(SpecAmendment, KeepsOnlyGuestHooksAndSandboxNamespaces) {
  oci::Spec spec = oci::parse_spec(R"({"ociVersion":"1.0.2","root":{"path":"rootfs"},
    "hooks":{"prestart":[{"path":"/p"}],"startContainer":[{"path":"/s"}],"poststop":[{"path":"/q"}]},
    "linux":{"namespaces":[{"type":"network","path":"/proc/1/ns/net"},{"type":"ipc","path":"/proc/1/ns/ipc"},{"type":"time"}],
             "resources":{"devices":[{"allow":false,"access":"rwm"}],"pids":{"limit":10}},
             "seccomp":{"defaultAction":"SCMP_ACT_ERRNO"},
             "devices":[{"path":"/dev/vfio/12","type":"c","major":240,"minor":0}]}})", "test");
  config::RuntimeConfig runtime;
  runtime.disable_guest_seccomp = true;
  amend_container_spec(spec, "/guest/rootfs", runtime);
  EXPECT_EQ(spec.root->path, "/guest/rootfs");
  EXPECT_TRUE(spec.hooks->prestart.empty());
  EXPECT_TRUE(spec.hooks->poststop.empty());
  ASSERT_EQ(spec.hooks->start_container.size(), 1u);
  ASSERT_EQ(spec.linux_spec->namespaces.size(), 1u);
  EXPECT_EQ(spec.linux_spec->namespaces[0].type, "ipc");
  EXPECT_TRUE(spec.linux_spec->namespaces[0].path.empty());
  EXPECT_TRUE(spec.linux_spec->resources->devices.empty());
  EXPECT_FALSE(spec.linux_spec->resources->pids.has_value());
  EXPECT_FALSE(spec.linux_spec->seccomp.has_value());
  EXPECT_TRUE(spec.linux_spec->devices.empty());
}

}  // namespace
}  // namespace kata::runtime

namespace kata::runtime {
namespace {

// Dynamic sizing (static_sandbox_resource_mgmt = false) through the sandbox: a container's CPU
// limit is hotplugged and onlined before the guest creates it, an update resizes, the delete
// gives the vCPUs back; the host's cpuset never reaches the guest.
TEST_F(VirtSandboxTest, DynamicModeHotplugsForContainerLimits) {
  write_spec(R"({"ociVersion":"1.0.2","process":{"args":["/bin/sh"],"cwd":"/","user":{"uid":0,"gid":0}},
      "root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}],
      "resources":{"cpu":{"quota":120000,"period":100000,"cpus":"0-1"}}}})");
  auto s = settings();
  s.config.hypervisor["fake"].cpu.default_vcpus = 0.75;
  s.config.runtime.static_sandbox_resource_mgmt = false;
  std::vector<std::string> calls;
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        EXPECT_EQ(sandbox.hypervisor().vcpus(), 1u);
        co_await sandbox.create_container(create_request("c1"));
        EXPECT_EQ(sandbox.hypervisor().vcpus(), 2u);  // ceil(0.75 + 1.2)
        const auto& resources = guest.containers.at("c1").oci().linux().resources();
        EXPECT_EQ(resources.cpu().quota(), 120000);
        EXPECT_EQ(resources.cpu().cpus(), "");

        co_await sandbox.update_container("c1", R"({"cpu":{"quota":320000,"period":100000,"cpus":"0-3"}})");
        EXPECT_EQ(sandbox.hypervisor().vcpus(), 4u);  // ceil(0.75 + 3.2)
        EXPECT_EQ(guest.updates.size(), 1u);
        if (!guest.updates.empty()) {
          EXPECT_EQ(guest.updates[0].resources().cpu().cpus(), "");
        }

        co_await sandbox.update_container("c1", R"({"cpu":{"quota":20000,"period":100000}})");
        EXPECT_EQ(sandbox.hypervisor().vcpus(), 1u);  // ceil(0.75 + 0.2)

        co_await sandbox.update_container("c1", R"({"cpu":{"quota":100000,"period":100000}})");
        EXPECT_EQ(sandbox.hypervisor().vcpus(), 2u);
        co_await sandbox.start_process(c1_init);
        (void)co_await sandbox.wait_process(c1_init);
        (void)co_await sandbox.delete_process(c1_init);
        EXPECT_EQ(sandbox.hypervisor().vcpus(), 1u);
        EXPECT_EQ(sandbox.hypervisor().vcpu_requests, (std::vector<std::uint32_t>{2, 4, 1, 2, 1}));
        calls = guest.calls;
      },
      std::move(s));
  EXPECT_EQ(calls, (std::vector<std::string>{"CreateSandbox", "OnlineCPUMem 1", "CreateContainer c1", "OnlineCPUMem 2",
                                             "UpdateContainer c1", "UpdateContainer c1", "OnlineCPUMem 1",
                                             "UpdateContainer c1", "StartContainer c1", "RemoveContainer c1"}));
}

TEST_F(VirtSandboxTest, StaticModeHotplugsNothing) {
  write_spec(R"({"ociVersion":"1.0.2","process":{"args":["/bin/sh"],"cwd":"/","user":{"uid":0,"gid":0}},
      "root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"},{"type":"mount"}],
      "resources":{"cpu":{"quota":120000,"period":100000}}}})");
  auto s = settings();
  s.config.runtime.static_sandbox_resource_mgmt = true;
  run([&](Sandbox& sandbox, FakeGuest& guest) -> Task<void> {
        co_await sandbox.create_container(create_request("c1"));
        co_await sandbox.update_container("c1", R"({"cpu":{"quota":320000,"period":100000}})");
        EXPECT_TRUE(sandbox.hypervisor().vcpu_requests.empty());
        EXPECT_EQ(std::count_if(guest.calls.begin(), guest.calls.end(),
                                [](const std::string& call) { return call.starts_with("OnlineCPUMem"); }),
                  0);
      },
      std::move(s));
}

}  // namespace
}  // namespace kata::runtime
