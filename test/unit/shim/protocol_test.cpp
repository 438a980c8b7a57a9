// The shim binary protocol end to end, as containerd 1.6 uses it (host-lab §1c, §1f): `start`
// in the bundle prints an address, the daemon it launched serves ttRPC there, pod containers
// get the sandbox's address, `delete` prints a DeleteResponse and kills the served shim.
//
// The test process is a child subreaper, so the daemonised shims become its children: it can
// reap them, check how they ended, and kill whatever a failing test leaves behind.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "kata/core/child_process.hpp"
#include "kata/shim/cli.hpp"
#include "kata/shim/shim.hpp"
#include "runtimeoptions/v1/api.pb.h"
#include "unit/shim/service_test_support.hpp"

namespace kata::shim {
namespace {

using ::testing::HasSubstr;
namespace v2 = containerd::task::v2;

constexpr std::string_view containerd_address = "/run/test-containerd/containerd.sock";

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string drain(int fd) {
  std::string data;
  char buffer[4096];
  ssize_t got = 0;
  while ((got = ::read(fd, buffer, sizeof buffer)) > 0 || (got < 0 && errno == EINTR)) {
    if (got > 0) data.append(buffer, static_cast<std::size_t>(got));
  }
  return data;
}

/// Reaps `pid` (a child of ours), waiting at most 20 s (a hang guard, not a timing assertion).
std::optional<int> reap(pid_t pid) {
  for (int i = 0; i < 20000; ++i) {
    int status = 0;
    const pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (got < 0) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::nullopt;
}

class ShimProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    sandbox_bundle_ = dir_.path() / "sb";
    container_bundle_ = dir_.path() / "c1";
    std::filesystem::create_directories(sandbox_bundle_);
    std::filesystem::create_directories(container_bundle_);
    std::ofstream(sandbox_bundle_ / "config.json")
        << R"({"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"sandbox",)"
        << R"("io.kubernetes.cri.sandbox-id":"sb"}})";
    std::ofstream(container_bundle_ / "config.json")
        << R"({"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"container",)"
        << R"("io.kubernetes.cri.sandbox-id":"sb"}})";
    ::setenv(std::string(socket_dir_env).c_str(), socket_dir().c_str(), 1);
    ::setenv("KATA_FAKE_SHIM_RECORD", record().c_str(), 1);
    ::unsetenv("TTRPC_ADDRESS");
  }

  void TearDown() override {
    for (pid_t pid : shims_) {
      if (::kill(pid, SIGKILL) == 0) reap(pid);
    }
    ::unsetenv(std::string(socket_dir_env).c_str());
    ::unsetenv("KATA_FAKE_SHIM_RECORD");
  }

  [[nodiscard]] std::filesystem::path socket_dir() const { return dir_.path() / "s"; }
  [[nodiscard]] std::filesystem::path record() const { return dir_.path() / "record"; }

  [[nodiscard]] std::string expected_address(std::string_view id) const {
    return socket_address(containerd_address, "default", id, socket_dir());
  }

  /// Runs the shim as containerd does: the common flags, then `extra`, in `cwd`, with `input`
  /// on stdin (/dev/null when empty).
  Result run_shim(std::vector<std::string> extra, const std::filesystem::path& cwd, const std::string& input = {}) {
    Pipe out = make_pipe();
    Pipe err = make_pipe();
    Pipe in = make_pipe();
    SpawnOptions options;
    options.program = KATA_FAKE_SHIM;
    options.arguments = {"-namespace", "default", "-address", std::string(containerd_address), "-publish-binary",
                         "/usr/bin/containerd"};
    options.arguments.insert(options.arguments.end(), extra.begin(), extra.end());
    options.working_directory = cwd;
    options.stdout_fd = out.write_end.get();
    options.stderr_fd = err.write_end.get();
    if (!input.empty()) options.stdin_fd = in.read_end.get();
    auto child = ChildProcess::spawn(options);
    out.write_end.reset();
    err.write_end.reset();
    in.read_end.reset();
    if (!input.empty()) {
      EXPECT_EQ(::write(in.write_end.get(), input.data(), input.size()), static_cast<ssize_t>(input.size()));
    }
    in.write_end.reset();
    Result result;
    std::thread err_reader([&] { result.err = drain(err.read_end.get()); });
    result.out = drain(out.read_end.get());
    err_reader.join();
    asio::io_context io;
    const auto status = test::run(io, child.wait(io.get_executor()));
    result.exit_code = status.as_exit_code();
    return result;
  }

  /// `start` for `id` in `bundle`; remembers the shim it launched (if any) for cleanup.
  Result start(const std::string& id, const std::filesystem::path& bundle, const std::string& input = {}) {
    auto result = run_shim({"-id", id, "start"}, bundle, input);
    if (std::filesystem::exists(bundle / "shim.pid")) shims_.push_back(read_pid_file(bundle));
    return result;
  }

  Result delete_(const std::string& id, const std::filesystem::path& bundle) {
    return run_shim({"-id", id, "-bundle", bundle.string(), "delete"}, bundle);
  }

  template <class Body>
  void with_task_client(const std::string& address, Body body) {
    asio::io_context io;
    test::run(io, [&]() -> Task<void> {
      auto client = co_await ttrpc::Client::connect_unix(io.get_executor(), socket_path_of(address));
      v2::TaskClient task(client);
      co_await body(task);
      client.close();
    }());
  }

  std::vector<std::string> record_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(read_file(record()));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  test::TempDir dir_;
  std::filesystem::path sandbox_bundle_;
  std::filesystem::path container_bundle_;
  std::vector<pid_t> shims_;
};

std::string runtime_options_any(const std::string& config_path) {
  runtimeoptions::v1::Options options;
  options.set_config_path(config_path);
  google::protobuf::Any any;
  any.set_type_url("runtimeoptions.v1.Options");
  any.set_value(options.SerializeAsString());
  return any.SerializeAsString();
}

TEST_F(ShimProtocolTest, StartServesPodContainersShareItAndDeleteKillsIt) {
  const auto started = start("sb", sandbox_bundle_, runtime_options_any("/cfg/from-stdin.toml"));
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_EQ(started.out, expected_address("sb"));
  EXPECT_EQ(started.err, "") << "containerd reads stderr as part of the address";
  EXPECT_EQ(read_file(sandbox_bundle_ / "address"), started.out);
  const pid_t shim = read_pid_file(sandbox_bundle_);
  ASSERT_GT(shim, 0);
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(shim) + "/cwd"), sandbox_bundle_);

  with_task_client(started.out, [&](v2::TaskClient& task) -> Task<void> {
    v2::ConnectRequest connect;
    connect.set_id("sb");
    const auto connected = co_await task.connect(connect);
    EXPECT_EQ(connected.shim_pid(), static_cast<std::uint32_t>(shim));
    EXPECT_EQ(connected.task_pid(), 0u);
    v2::CreateTaskRequest create;
    create.set_id("sb");
    create.set_bundle(sandbox_bundle_.string());
    EXPECT_EQ((co_await task.create(create)).pid(), 4242u);
  });
  EXPECT_THAT(record_lines(), ::testing::Contains("runtime sb config=/cfg/from-stdin.toml"));

  // The app container of the pod: the sandbox's address, no new shim.
  const auto joined = start("c1", container_bundle_);
  ASSERT_EQ(joined.exit_code, 0) << joined.err;
  EXPECT_EQ(joined.out, started.out);
  EXPECT_EQ(read_file(container_bundle_ / "address"), started.out);
  EXPECT_FALSE(std::filesystem::exists(container_bundle_ / "shim.pid"));

  // start again for the sandbox: the live shim is found, not replaced.
  const auto again = start("sb", sandbox_bundle_);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, started.out);
  EXPECT_EQ(read_pid_file(sandbox_bundle_), shim);

  // The pod container's delete touches neither the sandbox's shim nor its runtime.
  const auto container_deleted = delete_("c1", container_bundle_);
  ASSERT_EQ(container_deleted.exit_code, 0) << container_deleted.err;
  EXPECT_EQ(::kill(shim, 0), 0);
  EXPECT_TRUE(std::filesystem::exists(socket_path_of(started.out)));

  const auto deleted = delete_("sb", sandbox_bundle_);
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  v2::DeleteResponse response;
  ASSERT_TRUE(response.ParseFromString(deleted.out));
  EXPECT_EQ(response.pid(), 0u);
  EXPECT_EQ(response.exit_status(), 137u);
  EXPECT_GT(response.exited_at().seconds(), 0);
  const auto status = reap(shim);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  EXPECT_FALSE(std::filesystem::exists(socket_path_of(started.out)));

  // Idempotent: everything is gone already.
  const auto deleted_again = delete_("sb", sandbox_bundle_);
  ASSERT_EQ(deleted_again.exit_code, 0) << deleted_again.err;
  v2::DeleteResponse response_again;
  ASSERT_TRUE(response_again.ParseFromString(deleted_again.out));
  EXPECT_EQ(response_again.exit_status(), 137u);

  const auto cleanup = "cleanup sb " + sandbox_bundle_.string() + " default";
  const auto lines = record_lines();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), cleanup), 2);
  for (const auto& line : lines) EXPECT_THAT(line, ::testing::Not(HasSubstr("cleanup c1")));
}

TEST_F(ShimProtocolTest, ShutdownEndsTheServingShimAndRemovesItsSocket) {
  const auto started = start("sb", sandbox_bundle_);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const pid_t shim = read_pid_file(sandbox_bundle_);
  with_task_client(started.out, [&](v2::TaskClient& task) -> Task<void> {
    v2::ShutdownRequest shutdown;
    shutdown.set_id("sb");
    co_await task.shutdown(shutdown);
  });
  const auto status = reap(shim);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_FALSE(std::filesystem::exists(socket_path_of(started.out)));
}

TEST_F(ShimProtocolTest, TheServingShimIgnoresSigtermAndStopsOnSigint) {
  const auto started = start("sb", sandbox_bundle_);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const pid_t shim = read_pid_file(sandbox_bundle_);
  auto connect_succeeds = [&](v2::TaskClient& task) -> Task<void> {
    v2::ConnectRequest connect;
    EXPECT_EQ((co_await task.connect(connect)).shim_pid(), static_cast<std::uint32_t>(shim));
  };
  // `start` bound the socket, so only a reply proves the daemon runs its server, which it does
  // after setting up its signal handling.
  with_task_client(started.out, connect_succeeds);
  ASSERT_EQ(::kill(shim, SIGTERM), 0);
  // A pending signal is delivered before the shim next runs user code, so a reply means the
  // SIGTERM has been dealt with.
  with_task_client(started.out, connect_succeeds);
  ASSERT_EQ(::kill(shim, SIGINT), 0);
  const auto status = reap(shim);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST_F(ShimProtocolTest, DeleteSucceedsWhenNothingIsLeft) {
  const auto empty = dir_.path() / "gone";
  std::filesystem::create_directories(empty);
  const auto deleted = delete_("gone", empty);
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  v2::DeleteResponse response;
  ASSERT_TRUE(response.ParseFromString(deleted.out));
  EXPECT_EQ(response.exit_status(), 137u);
}

TEST_F(ShimProtocolTest, DeleteLeavesAProcessThatIsNotOurShimAlone) {
  // A stale shim.pid naming some other process of ours (a recycled pid).
  SpawnOptions options;
  options.program = "/bin/sleep";
  options.arguments = {"30"};
  auto bystander = ChildProcess::spawn(options);
  write_pid_file(sandbox_bundle_, bystander.pid());
  const auto deleted = delete_("sb", sandbox_bundle_);
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_FALSE(bystander.try_wait().has_value()) << "delete killed a process that is not a shim";
}

TEST_F(ShimProtocolTest, VersionNamesTheRuntime) {
  const auto version = run_shim({"-version"}, dir_.path());
  ASSERT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.out, HasSubstr("containerd shim (C++): id: io.containerd.kata.v2, version: "));
  EXPECT_THAT(version.out, HasSubstr(", commit: "));
}

TEST_F(ShimProtocolTest, BadUsageFailsWithTheFlagNamed) {
  const auto bad = run_shim({"-id", "sb", "-frobnicate", "start"}, sandbox_bundle_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("-frobnicate"));
  const auto info = run_shim({"-info"}, dir_.path());
  EXPECT_EQ(info.exit_code, 1);
  EXPECT_THAT(info.err, HasSubstr("-info is not supported"));
}

}  // namespace
}  // namespace kata::shim
