// The shared filesystem for real: these tests run as root on the host, mount in a temporary
// directory, start QEMU's virtiofsd when it is installed, and check /proc/self/mountinfo that
// nothing is left behind.
#include "kata/resource/share_fs/shared_fs.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/resource/share_fs/virtiofsd.hpp"
#include "unit/resource/test_support.hpp"

namespace kata::resource {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test::create_errno;
using test::read_file;
using test::run_task;
using test::write_file;

constexpr const char* qemu_virtiofsd = "/usr/lib/qemu/virtiofsd";

// --- pure parts --------------------------------------------------------------------------------

TEST(ShareFsKind, ConfiguredValues) {
  EXPECT_EQ(share_fs_kind(std::nullopt), ShareFsKind::none);
  EXPECT_EQ(share_fs_kind("none"), ShareFsKind::none);
  EXPECT_EQ(share_fs_kind(""), ShareFsKind::virtio_fs);
  EXPECT_EQ(share_fs_kind("virtio-fs"), ShareFsKind::virtio_fs);
  EXPECT_EQ(share_fs_kind("virtio-9p"), ShareFsKind::virtio_9p);
  try {
    (void)share_fs_kind("inline-virtio-fs");
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::not_supported);
    EXPECT_THAT(error.what(), HasSubstr("inline-virtio-fs"));
    EXPECT_THAT(error.what(), HasSubstr("allowed: virtio-fs, virtio-9p, none"));
  }
  EXPECT_THROW((void)share_fs_kind("nfs"), Error);
}

TEST(Virtiofsd, QemuCArguments) {
  VirtiofsdSettings settings;
  settings.socket = "/run/kata/abc/root/virtiofsd.sock";
  settings.shared_dir = "/run/kata-containers/shared/sandboxes/abc/ro";
  settings.cache = "never";
  settings.extra_args = {"--thread-pool-size=1", "-o", "announce_submounts"};
  EXPECT_THAT(virtiofsd_arguments(VirtiofsdFlavor::qemu_c, settings),
              ElementsAre("--socket-path=/run/kata/abc/root/virtiofsd.sock", "-o",
                          "source=/run/kata-containers/shared/sandboxes/abc/ro", "-o", "cache=none",
                          "--thread-pool-size=1", "-o", "announce_submounts"));
  settings.cache = "always";
  settings.extra_args.clear();
  settings.xattr = true;
  EXPECT_THAT(virtiofsd_arguments(VirtiofsdFlavor::qemu_c, settings),
              ElementsAre("--socket-path=/run/kata/abc/root/virtiofsd.sock", "-o",
                          "source=/run/kata-containers/shared/sandboxes/abc/ro", "-o", "cache=always", "-o", "xattr"));
  settings.cache = "metadata";
  try {
    (void)virtiofsd_arguments(VirtiofsdFlavor::qemu_c, settings);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::invalid_argument);
    EXPECT_THAT(error.what(), HasSubstr("metadata"));
    EXPECT_THAT(error.what(), HasSubstr("QEMU C virtiofsd"));
  }
}

TEST(Virtiofsd, RustArguments) {
  VirtiofsdSettings settings;
  settings.socket = "/run/kata/abc/root/virtiofsd.sock";
  settings.shared_dir = "/srv/ro";
  settings.cache = "auto";
  settings.extra_args = {"--thread-pool-size=1"};
  settings.xattr = true;
  EXPECT_THAT(virtiofsd_arguments(VirtiofsdFlavor::rust, settings),
              ElementsAre("--socket-path", "/run/kata/abc/root/virtiofsd.sock", "--shared-dir", "/srv/ro", "--cache",
                          "auto", "--thread-pool-size=1", "--xattr"));
  settings.cache = "metadata";
  EXPECT_THAT(virtiofsd_arguments(VirtiofsdFlavor::rust, settings), ::testing::Contains("metadata"));
  settings.cache = "none";
  EXPECT_THROW((void)virtiofsd_arguments(VirtiofsdFlavor::rust, settings), Error);
}

TEST(Virtiofsd, FlavorFromHelpText) {
  EXPECT_EQ(virtiofsd_flavor_from_help("    -o source=PATH             shared directory tree\n"), VirtiofsdFlavor::qemu_c);
  EXPECT_EQ(virtiofsd_flavor_from_help("      --shared-dir <shared-dir>\n  -o <compat-options>  e.g. source=...\n"),
            VirtiofsdFlavor::rust);
  EXPECT_THROW((void)virtiofsd_flavor_from_help("usage: something else"), Error);
}

// --- on the host -------------------------------------------------------------------------------

class SharedFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "shared filesystem tests need root";
    dir_ = test::make_temp_dir("kata-test-sharefs");
  }

  void TearDown() override {
    shared_.reset();
    if (dir_.empty()) return;
    EXPECT_TRUE(mount_points_under(dir_).empty()) << "mounts left behind";
    unmount_all_under(dir_);
    fs::remove_all(dir_);
  }

  SharedFsOptions options(std::optional<std::string> kind) {
    SharedFsOptions options;
    options.sandbox_id = "sandbox-1";
    options.config.shared_fs = std::move(kind);
    options.config.virtio_fs_daemon = qemu_virtiofsd;
    options.config.virtio_fs_cache = "never";
    options.host_root = dir_ / "sandboxes";
    options.daemon_socket = default_virtiofsd_socket(dir_ / "state");
    return options;
  }

  SharedFs& make(SharedFsOptions options) {
    shared_.emplace(io_.get_executor(), std::move(options));
    return *shared_;
  }

  // A stand-in daemon: prints `help` for --help, otherwise runs `body`.
  fs::path fake_daemon(const std::string& name, const std::string& help, const std::string& body) {
    const fs::path path = dir_ / name;
    write_file(path, "#!/bin/sh\nif [ \"$1\" = --help ]; then echo '" + help + "'; exit 0; fi\n" + body + "\n");
    fs::permissions(path, fs::perms::owner_all);
    return path;
  }

  asio::io_context io_;
  fs::path dir_;
  std::optional<SharedFs> shared_;
};

TEST_F(SharedFsTest, NoneCreatesNothingAndRefusesShares) {
  auto& shared = make(options("none"));
  EXPECT_FALSE(shared.sharing_supported());
  EXPECT_EQ(shared.device(), std::nullopt);
  EXPECT_TRUE(shared.storages().empty());
  EXPECT_FALSE(fs::exists(dir_ / "sandboxes"));
  try {
    (void)shared.share(dir_, "x", false);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_supported);
  }
  run_task(io_, shared.start());
  run_task(io_, shared.stop());
  shared.cleanup();
}

TEST_F(SharedFsTest, NinePeeServesAReadOnlyView) {
  auto& shared = make(options("virtio-9p"));
  const fs::path sandbox = dir_ / "sandboxes" / "sandbox-1";
  EXPECT_EQ(shared.sandbox_dir(), sandbox);
  EXPECT_TRUE(fs::is_directory(sandbox / "rw" / "passthrough"));
  EXPECT_TRUE(fs::is_directory(sandbox / "ro" / "passthrough"));  // the view shows rw
  EXPECT_TRUE(is_mount_point(sandbox / "ro"));
  EXPECT_EQ(create_errno(sandbox / "ro"), EROFS);
  EXPECT_EQ(create_errno(sandbox / "ro" / "passthrough"), EROFS);
  EXPECT_EQ(create_errno(sandbox / "rw" / "passthrough"), 0);

  const auto device = shared.device();
  ASSERT_TRUE(device.has_value());
  EXPECT_EQ(device->kind, hypervisor::ShareFsDevice::Kind::virtio_9p);
  EXPECT_EQ(device->mount_tag, "kataShared");
  EXPECT_EQ(device->shared_dir, sandbox / "ro");

  const auto storages = shared.storages();
  ASSERT_EQ(storages.size(), 1U);
  EXPECT_EQ(storages[0].driver(), "9p");
  EXPECT_EQ(storages[0].source(), "kataShared");
  EXPECT_EQ(storages[0].fstype(), "9p");
  EXPECT_EQ(storages[0].mount_point(), "/run/kata-containers/shared/containers/");
  EXPECT_THAT(storages[0].options(), ElementsAre("trans=virtio,version=9p2000.L,cache=mmap", "nodev", "msize=8192"));

  run_task(io_, shared.start());  // nothing to start for 9p
  EXPECT_EQ(shared.daemon_pid(), -1);
  shared.cleanup();
  EXPECT_FALSE(fs::exists(sandbox));
  EXPECT_TRUE(mount_points_under(dir_).empty());
  shared.cleanup();  // idempotent
}

TEST_F(SharedFsTest, SharesAreVisibleInTheViewWithTheirMode) {
  auto& shared = make(options("virtio-9p"));
  const fs::path volume = dir_ / "volume";
  fs::create_directories(volume);
  write_file(volume / "data", "payload");
  const fs::path file = dir_ / "file";
  write_file(file, "single");

  {
    SharedPath writable = shared.share(volume, "cid-1/rootfs", false);
    EXPECT_EQ(writable.guest_path(), "/run/kata-containers/shared/containers/passthrough/cid-1/rootfs");
    EXPECT_EQ(writable.host_path(), shared.rw_dir() / "passthrough" / "cid-1" / "rootfs");
    EXPECT_EQ(writable.view_path(), shared.ro_dir() / "passthrough" / "cid-1" / "rootfs");
    EXPECT_EQ(read_file(writable.view_path() / "data"), "payload");
    EXPECT_EQ(create_errno(writable.view_path()), 0);

    SharedPath read_only = shared.share(volume, "vol-ro", true);
    EXPECT_EQ(read_file(read_only.view_path() / "data"), "payload");
    EXPECT_EQ(create_errno(read_only.view_path()), EROFS);
    EXPECT_EQ(create_errno(read_only.host_path()), EROFS);
    EXPECT_EQ(create_errno(volume), 0);

    SharedPath single = shared.share(file, "a-file", true);
    EXPECT_EQ(read_file(single.view_path()), "single");

    EXPECT_THROW((void)shared.share(volume, "vol-ro", true), Error);  // already shared there
  }
  // Unsharing removed the mounts, the mount points and the directory made for cid-1.
  EXPECT_TRUE(mount_points_under(shared.rw_dir() / "passthrough").empty());
  EXPECT_TRUE(mount_points_under(shared.ro_dir() / "passthrough").empty());
  EXPECT_TRUE(fs::is_empty(shared.rw_dir() / "passthrough"));
}

TEST_F(SharedFsTest, ShareErrorsNameWhatIsWrong) {
  auto& shared = make(options("virtio-9p"));
  try {
    (void)shared.share(dir_ / "absent", "x", false);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::not_found);
    EXPECT_THAT(describe(error), HasSubstr((dir_ / "absent").string()));
  }
  EXPECT_FALSE(fs::exists(shared.rw_dir() / "passthrough" / "x"));
  for (const char* bad : {"/etc", "../escape", "a/../../b", "."}) {
    try {
      (void)shared.share(dir_, bad, false);
      FAIL() << bad;
    } catch (const Error& error) {
      EXPECT_EQ(code_of(error), Errc::invalid_argument) << bad;
    }
  }
}

TEST_F(SharedFsTest, CleanupUnmountsSharesStillHeld) {
  auto& shared = make(options("virtio-9p"));
  fs::create_directories(dir_ / "volume");
  SharedPath held = shared.share(dir_ / "volume", "held", false);
  shared.cleanup();
  EXPECT_FALSE(fs::exists(shared.sandbox_dir()));
  EXPECT_TRUE(fs::exists(dir_ / "volume"));  // never deleted through a mount
  held = SharedPath();  // its late release finds nothing to do
}

TEST_F(SharedFsTest, LeftoversOfACrashedShimAreReplaced) {
  const fs::path stale = dir_ / "sandboxes" / "sandbox-1" / "rw" / "passthrough" / "old";
  fs::create_directories(stale);
  fs::create_directories(dir_ / "precious");
  write_file(dir_ / "precious" / "keep", "x");
  (void)ScopedMount::bind(dir_ / "precious", stale).release();
  auto& shared = make(options("virtio-9p"));
  EXPECT_FALSE(fs::exists(shared.rw_dir() / "passthrough" / "old"));
  EXPECT_EQ(read_file(dir_ / "precious" / "keep"), "x");
}

TEST_F(SharedFsTest, DaemonMustBeAllowed) {
  auto opts = options("virtio-fs");
  opts.config.valid_virtio_fs_daemon_paths = {"/opt/kata/libexec/*"};
  try {
    make(std::move(opts));
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::invalid_argument);
    EXPECT_THAT(describe(error), HasSubstr("valid_virtio_fs_daemon_paths [/opt/kata/libexec/*]"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "sandboxes" / "sandbox-1"));
  auto allowed = options("virtio-fs");
  allowed.config.valid_virtio_fs_daemon_paths = {"/usr/lib/qemu/*"};
  EXPECT_NO_THROW(make(std::move(allowed)));
}

TEST_F(SharedFsTest, QemuVirtiofsdStartsAndStops) {
  if (!fs::exists(qemu_virtiofsd)) GTEST_SKIP() << qemu_virtiofsd << " is not installed";
  auto opts = options("virtio-fs");
  opts.config.virtio_fs_queue_size = 512;
  opts.config.virtio_fs_extra_args = {"--thread-pool-size=1", "-o", "announce_submounts"};
  auto& shared = make(std::move(opts));

  const auto device = shared.device();
  ASSERT_TRUE(device.has_value());
  EXPECT_EQ(device->kind, hypervisor::ShareFsDevice::Kind::virtio_fs);
  EXPECT_EQ(device->mount_tag, "kataShared");
  EXPECT_EQ(device->daemon_socket, dir_ / "state" / "root" / "virtiofsd.sock");
  EXPECT_EQ(device->queue_size, 512U);
  const auto storages = shared.storages();
  ASSERT_EQ(storages.size(), 1U);
  EXPECT_EQ(storages[0].driver(), "virtio-fs");
  EXPECT_EQ(storages[0].source(), "kataShared");
  EXPECT_EQ(storages[0].fstype(), "virtiofs");
  EXPECT_THAT(storages[0].options(), ElementsAre("nodev"));
  EXPECT_EQ(storages[0].mount_point(), "/run/kata-containers/shared/containers/");

  run_task(io_, shared.start());
  const pid_t pid = shared.daemon_pid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(fs::is_socket(device->daemon_socket));
  const std::string cmdline = read_file(fs::path("/proc") / std::to_string(pid) / "cmdline");
  EXPECT_THAT(cmdline, HasSubstr((shared.ro_dir()).string()));
  run_task(io_, shared.start());  // already running: nothing happens
  EXPECT_EQ(shared.daemon_pid(), pid);

  run_task(io_, shared.stop());
  EXPECT_EQ(shared.daemon_pid(), -1);
  EXPECT_NE(::kill(pid, 0), 0);  // reaped: the pid no longer exists
  EXPECT_FALSE(fs::exists(device->daemon_socket));
  run_task(io_, shared.stop());  // idempotent
  shared.cleanup();
}

// What happens when QEMU goes away: the C daemon exits by itself, and the runtime notices.
TEST_F(SharedFsTest, DaemonExitIsObserved) {
  if (!fs::exists(qemu_virtiofsd)) GTEST_SKIP() << qemu_virtiofsd << " is not installed";
  auto& shared = make(options("virtio-fs"));
  run_task(io_, shared.start());
  ASSERT_GT(shared.daemon_pid(), 0);
  {
    const UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string socket_path = shared.device()->daemon_socket.string();
    socket_path.copy(address.sun_path, sizeof address.sun_path - 1);
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  }  // the "VMM" disconnects
  const ExitStatus status = run_task(io_, shared.wait_daemon_exit());
  EXPECT_EQ(status.signal, 0);
  EXPECT_EQ(shared.daemon_pid(), -1);
  run_task(io_, shared.stop());
  EXPECT_EQ(run_task(io_, shared.wait_daemon_exit()), status);  // later waiters get the same answer
}

TEST_F(SharedFsTest, DestructionKillsARunningDaemon) {
  if (!fs::exists(qemu_virtiofsd)) GTEST_SKIP() << qemu_virtiofsd << " is not installed";
  auto& shared = make(options("virtio-fs"));
  run_task(io_, shared.start());
  const pid_t pid = shared.daemon_pid();
  ASSERT_GT(pid, 0);
  shared_.reset();
  EXPECT_NE(::kill(pid, 0), 0);
  EXPECT_FALSE(fs::exists(dir_ / "sandboxes" / "sandbox-1"));
}

TEST_F(SharedFsTest, RustFlavourDaemonGetsItsArguments) {
  auto opts = options("virtio-fs");
  opts.config.virtio_fs_daemon =
      fake_daemon("rust-virtiofsd", "  --shared-dir <shared-dir>  Shared directory path",
                  "echo \"$@\" > " + (dir_ / "args").string() +
                      "\necho '[INFO  virtiofsd] Waiting for vhost-user socket connection...' >&2\nexec sleep 600")
          .string();
  opts.config.virtio_fs_cache = "auto";
  opts.disable_guest_selinux = false;
  auto& shared = make(std::move(opts));
  run_task(io_, shared.start());
  EXPECT_GT(shared.daemon_pid(), 0);
  EXPECT_EQ(read_file(dir_ / "args"), "--socket-path " + (dir_ / "state" / "root" / "virtiofsd.sock").string() +
                                          " --shared-dir " + shared.ro_dir().string() + " --cache auto --xattr\n");
  run_task(io_, shared.stop());
  EXPECT_EQ(shared.daemon_pid(), -1);
}

TEST_F(SharedFsTest, DaemonThatExitsEarlyReportsItsOutput) {
  auto opts = options("virtio-fs");
  opts.config.virtio_fs_daemon =
      fake_daemon("broken-virtiofsd", "    -o source=PATH", "echo 'fuse: unknown option bogus' >&2\nexit 3").string();
  auto& shared = make(std::move(opts));
  try {
    run_task(io_, shared.start());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::unavailable);
    const std::string text = describe(error);
    EXPECT_THAT(text, HasSubstr("start virtiofsd for sandbox sandbox-1"));
    EXPECT_THAT(text, HasSubstr("exited with status 3"));
    EXPECT_THAT(text, HasSubstr("fuse: unknown option bogus"));
  }
  EXPECT_EQ(shared.daemon_pid(), -1);
}

TEST_F(SharedFsTest, SilentDaemonTimesOutAndIsKilled) {
  auto opts = options("virtio-fs");
  opts.config.virtio_fs_daemon =
      fake_daemon("silent-virtiofsd", "    -o source=PATH",
                  "echo $$ > " + (dir_ / "pid").string() + "\nexec sleep 600").string();
  opts.daemon_ready_timeout = std::chrono::milliseconds(300);
  auto& shared = make(std::move(opts));
  try {
    run_task(io_, shared.start());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::deadline_exceeded);
    EXPECT_THAT(describe(error), HasSubstr("Waiting for vhost-user socket connection"));
  }
  const pid_t pid = std::stoi(read_file(dir_ / "pid"));
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST_F(SharedFsTest, UnrecognisedDaemonIsRefused) {
  auto opts = options("virtio-fs");
  opts.config.virtio_fs_daemon = fake_daemon("odd-daemon", "usage: odd-daemon [flags]", "exit 0").string();
  auto& shared = make(std::move(opts));
  try {
    run_task(io_, shared.start());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(code_of(error), Errc::failed_precondition);
    EXPECT_THAT(describe(error), HasSubstr("--shared-dir"));
    EXPECT_THAT(describe(error), HasSubstr("odd-daemon --help"));
  }
}

TEST_F(SharedFsTest, DetectsTheInstalledQemuDaemon) {
  if (!fs::exists(qemu_virtiofsd)) GTEST_SKIP() << qemu_virtiofsd << " is not installed";
  EXPECT_EQ(run_task(io_, detect_virtiofsd_flavor(io_.get_executor(), qemu_virtiofsd, std::chrono::seconds(10))),
            VirtiofsdFlavor::qemu_c);
}

}  // namespace
}  // namespace kata::resource
