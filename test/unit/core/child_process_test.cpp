#include "kata/core/child_process.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "kata/core/error.hpp"

namespace kata {
namespace {

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(ChildProcess, ReportsExecFailureWithPath) {
  try {
    (void)ChildProcess::spawn({.program = "/nonexistent/qemu"});
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "exec /nonexistent/qemu: No such file or directory");
    EXPECT_EQ(code_of(e), Errc::not_found);
  }
}

TEST(ChildProcess, ReportsMissingNetworkNamespace) {
  try {
    (void)ChildProcess::spawn({.program = "/bin/true", .network_namespace = "/nonexistent/netns"});
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "exec /bin/true: open network namespace /nonexistent/netns: No such file or directory");
  }
}

TEST(ChildProcess, WaitReturnsExitCode) {
  boost::asio::io_context io;
  auto child = ChildProcess::spawn({.program = "/bin/sh", .arguments = {"-c", "exit 7"}});
  auto status = boost::asio::co_spawn(io, child.wait(io.get_executor()), boost::asio::use_future);
  io.run();
  EXPECT_EQ(status.get(), (ExitStatus{7, 0}));
  EXPECT_EQ(child.try_wait()->as_exit_code(), 7);
}

TEST(ChildProcess, SignalledExitMapsTo128PlusSignal) {
  boost::asio::io_context io;
  auto child = ChildProcess::spawn({.program = "/bin/sleep", .arguments = {"30"}});
  child.signal(SIGKILL);
  auto status = boost::asio::co_spawn(io, child.wait(io.get_executor()), boost::asio::use_future);
  io.run();
  EXPECT_EQ(status.get().as_exit_code(), 137);
}

TEST(ChildProcess, DestructorKillsAndReaps) {
  pid_t pid;
  {
    auto child = ChildProcess::spawn({.program = "/bin/sleep", .arguments = {"30"}});
    pid = child.pid();
    ASSERT_TRUE(process_exists(pid));
  }
  // Reaped, so not even a zombie remains.
  EXPECT_FALSE(process_exists(pid));
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
}

TEST(ChildProcess, PassesDescriptorsAndWorkingDirectory) {
  Pipe out = make_pipe();
  auto child = ChildProcess::spawn({.program = "/bin/sh",
                                    .arguments = {"-c", "pwd >&5"},
                                    .working_directory = "/tmp",
                                    .extra_fds = {{out.write_end.get(), 5}}});
  out.write_end.reset();
  char buffer[64] = {};
  const auto got = ::read(out.read_end.get(), buffer, sizeof buffer - 1);
  EXPECT_EQ(std::string(buffer, got > 0 ? static_cast<std::size_t>(got) : 0u), "/tmp\n");
  EXPECT_EQ(child.terminate_blocking(std::chrono::milliseconds(1000)).exit_code, 0);
}

TEST(ChildProcess, TerminateEscalatesToKill) {
  auto child = ChildProcess::spawn({.program = "/bin/sh", .arguments = {"-c", "trap '' TERM; sleep 30"}});
  ::usleep(100000);  // let the shell install its trap
  const auto status = child.terminate_blocking(std::chrono::milliseconds(200));
  EXPECT_EQ(status.signal, SIGKILL);
}

}  // namespace
}  // namespace kata
