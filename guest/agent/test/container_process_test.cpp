#include "kata/agent_guest/container_process.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/mount.h>

#include <fstream>

#include <gtest/gtest.h>

#include "container_fixture.hpp"
#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

using namespace std::chrono_literals;
using test::BusyboxRootfs;
using test::read_all;

TEST(MountOptions, DecodesFlagsPropagationAndData) {
  const MountFlags f = parse_mount_options({"rbind", "ro", "nosuid", "rprivate", "size=64k", "mode=755"});
  EXPECT_EQ(f.flags, static_cast<unsigned long>(MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID));
  EXPECT_EQ(f.propagation, static_cast<unsigned long>(MS_PRIVATE | MS_REC));
  EXPECT_EQ(f.data, "size=64k,mode=755");
  EXPECT_TRUE(f.read_only);
  EXPECT_FALSE(parse_mount_options({"ro", "rw"}).read_only);
}

TEST_F(BusyboxRootfs, NewNamespacesGiveHostnameAndPidOne) {
  ContainerProcess p = ContainerProcess::spawn(container({"sh", "-c", "hostname; echo pid=$$; ls /dev"}));
  p.stdin_writer.reset();
  const std::string out = read_all(p.stdout_reader.get());
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
  EXPECT_NE(out.find("kata-test\npid=1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("null"), std::string::npos) << out;
  EXPECT_NE(out.find("stdout"), std::string::npos) << out;
}

TEST_F(BusyboxRootfs, ReportsExitCodeAndTerminatingSignal) {
  ContainerProcess exits = ContainerProcess::spawn(container({"sh", "-c", "exit 7"}));
  EXPECT_EQ(exits.exit_state()->wait_blocking(), (ExitStatus{7, 0}));

  ContainerProcess sleeper = ContainerProcess::spawn(container({"sh", "-c", "echo up; exec sleep 100"}));
  char c;
  ASSERT_EQ(::read(sleeper.stdout_reader.get(), &c, 1), 1);  // running its command
  sleeper.signal(SIGKILL);
  EXPECT_EQ(sleeper.exit_state()->wait_blocking(), (ExitStatus{0, SIGKILL}));
  EXPECT_EQ(sleeper.exit_state()->wait_blocking().as_exit_code(), 137);
  sleeper.signal(SIGTERM);  // after exit: harmless
}

TEST_F(BusyboxRootfs, HeldProcessExecsOnlyOnStart) {
  SpawnRequest request = container({"echo", "started"});
  request.hold_before_exec = true;
  ContainerProcess p = ContainerProcess::spawn(request);
  EXPECT_FALSE(p.started());
  EXPECT_FALSE(p.exit_state()->wait_for(200ms).has_value());
  p.start();
  EXPECT_TRUE(p.started());
  EXPECT_EQ(read_all(p.stdout_reader.get()), "started\n");
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
  EXPECT_THROW(p.start(), Error);
}

TEST_F(BusyboxRootfs, ExecFailureNamesTheProgram) {
  try {
    (void)ContainerProcess::spawn(container({"no-such-program"}));
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "spawn no-such-program: exec: No such file or directory");
    EXPECT_EQ(code_of(e), Errc::not_found);
  }
  SpawnRequest held = container({"/bin/nope"});
  held.hold_before_exec = true;
  ContainerProcess p = ContainerProcess::spawn(held);
  try {
    p.start();
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "start /bin/nope: exec: No such file or directory");
  }
}

TEST_F(BusyboxRootfs, BadMountNamesTheMount) {
  SpawnRequest request = container({"true"});
  request.rootfs->mounts.push_back(MountSpec{"/mnt/x", "nosuchfs", "none", {}});
  try {
    (void)ContainerProcess::spawn(request);
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "spawn true: mount nosuchfs on /mnt/x: No such device");
  }
}

TEST_F(BusyboxRootfs, IdentityLimitsEnvironmentAndDirectory) {
  SpawnRequest request = container({"sh", "-c", "id -u; id -g; id -G; umask; pwd; echo $FOO; ulimit -n"});
  request.process.uid = 1000;
  request.process.gid = 1001;
  request.process.additional_gids = {1001, 2000};
  request.process.umask = 027;
  request.process.cwd = "/tmp";
  request.process.env.push_back("FOO=bar");
  request.process.rlimits = {RlimitSpec{RLIMIT_NOFILE, 123, 123}};
  request.process.no_new_privileges = true;
  ContainerProcess p = ContainerProcess::spawn(request);
  EXPECT_EQ(read_all(p.stdout_reader.get()), "1000\n1001\n1001 2000\n0027\n/tmp\nbar\n123\n");
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
}

TEST_F(BusyboxRootfs, ReadOnlyRootfsMaskedAndReadOnlyPaths) {
  std::filesystem::create_directories(rootfs / "secret");
  std::ofstream(rootfs / "secret/key") << "s3cret";
  std::ofstream(rootfs / "etc/config") << "cfg";
  std::filesystem::create_directories(rootfs / "data");
  SpawnRequest request = container({"sh", "-c",
                                    "cat /secret/key; echo; cat /etc/config; echo;"
                                    "touch /x 2>/dev/null && echo root-writable;"
                                    "touch /data/y && echo data-writable;"
                                    "cat /proc/kcore 2>/dev/null | wc -c"});
  request.rootfs->read_only = true;
  request.rootfs->masked_paths = {"/secret", "/proc/kcore", "/does/not/exist"};
  request.rootfs->readonly_paths = {"/etc"};
  request.rootfs->mounts.push_back(MountSpec{"/data", "tmpfs", "tmpfs", {"rw"}});
  ContainerProcess p = ContainerProcess::spawn(request);
  EXPECT_EQ(read_all(p.stdout_reader.get()), "\ncfg\ndata-writable\n0\n");
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
}

TEST_F(BusyboxRootfs, BindMountsAreReadOnlyWhenAsked) {
  std::filesystem::create_directories(base / "volume");
  std::ofstream(base / "volume/file") << "from-host";
  std::ofstream(base / "single") << "one-file";
  SpawnRequest request = container({"sh", "-c", "cat /vol/file /etc/single; echo; touch /vol/new 2>/dev/null || echo ro"});
  request.rootfs->mounts.push_back(MountSpec{"/vol", "bind", (base / "volume").string(), {"rbind", "ro"}});
  request.rootfs->mounts.push_back(MountSpec{"/etc/single", "bind", (base / "single").string(), {"bind"}});
  ContainerProcess p = ContainerProcess::spawn(request);
  EXPECT_EQ(read_all(p.stdout_reader.get()), "from-hostone-file\nro\n");
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
  EXPECT_FALSE(std::filesystem::exists(base / "volume/new"));
}

TEST_F(BusyboxRootfs, SymlinkInImageCannotRedirectAMountOutside) {
  // An image whose /evil points at a host directory: the mount must land inside the rootfs.
  std::filesystem::create_directories(base / "outside");
  std::filesystem::create_symlink(base / "outside", rootfs / "evil");
  // Resolved inside the root, the link names this directory.
  std::filesystem::create_directories(rootfs / base.relative_path() / "outside");
  SpawnRequest request = container({"true"});
  request.rootfs->mounts.push_back(MountSpec{"/evil/sub", "tmpfs", "tmpfs", {}});
  ContainerProcess p = ContainerProcess::spawn(request);
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
  EXPECT_FALSE(std::filesystem::exists(base / "outside/sub"));
  EXPECT_TRUE(std::filesystem::exists(rootfs / base.relative_path() / "outside/sub"));
}

TEST_F(BusyboxRootfs, TerminalGivesAControllingPty) {
  SpawnRequest request = container({"sh", "-c", "test -t 0 && test -t 1 && echo tty-ok"});
  request.process.terminal = true;
  ContainerProcess p = ContainerProcess::spawn(request);
  EXPECT_FALSE(p.stdout_reader);
  ASSERT_TRUE(p.pty_master);
  p.resize_terminal(40, 120);
  EXPECT_NE(read_all(p.pty_master.get()).find("tty-ok"), std::string::npos);
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
}

TEST_F(BusyboxRootfs, ExecJoinsTheContainersNamespaces) {
  SpawnRequest init = container({"sh", "-c", "echo ready; exec sleep 100"});
  ContainerProcess container_init = ContainerProcess::spawn(init);
  char c;
  ASSERT_EQ(::read(container_init.stdout_reader.get(), &c, 1), 1);
  const std::string ns = fmt::format("/proc/{}/ns/", container_init.pid());
  SpawnRequest exec;
  exec.process.args = {"sh", "-c", "hostname; echo pid=$$; cat /proc/1/comm; ls /bin/busybox"};
  exec.process.env = {"PATH=/bin"};
  exec.namespaces = {{CLONE_NEWNS, ns + "mnt"}, {CLONE_NEWUTS, ns + "uts"}, {CLONE_NEWIPC, ns + "ipc"},
                     {CLONE_NEWPID, ns + "pid"}};
  ContainerProcess joined = ContainerProcess::spawn(exec);
  const std::string out = read_all(joined.stdout_reader.get());
  EXPECT_EQ(joined.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
  EXPECT_NE(out.find("kata-test\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("pid=1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("sleep\n/bin/busybox\n"), std::string::npos) << out;
  container_init.signal(SIGKILL);
  EXPECT_EQ(container_init.exit_state()->wait_blocking().signal, SIGKILL);
}

TEST_F(BusyboxRootfs, NoAgentDescriptorLeaksIntoTheContainer) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  ContainerProcess p = ContainerProcess::spawn(container({"ls", "/proc/self/fd"}));
  const std::string out = read_all(p.stdout_reader.get());
  ::close(leaked);
  EXPECT_EQ(p.exit_state()->wait_blocking(), (ExitStatus{0, 0}));
  EXPECT_EQ(out, "0\n1\n2\n3\n") << out;  // 3 is ls's own directory handle
}

TEST_F(BusyboxRootfs, DestroyingAnUnstartedProcessKillsIt) {
  SpawnRequest request = container({"sleep", "100"});
  request.hold_before_exec = true;
  pid_t pid = -1;
  std::shared_ptr<ExitState> exit;
  {
    ContainerProcess p = ContainerProcess::spawn(request);
    pid = p.pid();
    exit = p.exit_state();
  }
  ASSERT_TRUE(exit->status().has_value());
  EXPECT_EQ(exit->status()->signal, SIGKILL);
  EXPECT_NE(::kill(pid, 0), 0);
}

}  // namespace
}  // namespace kata::agent_guest
