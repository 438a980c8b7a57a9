// A throwaway busybox rootfs under /tmp for container-process tests, removed afterwards.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "kata/agent_guest/container_process.hpp"

namespace kata::agent_guest::test {

/// False inside a chroot into a plain directory (a fresh Debian build root): there "/" is no
/// mount, and a container's mount setup (rslave propagation of "/", pivot_root) is refused with
/// EINVAL. The guest never runs like that: its root is made a mount at boot.
inline bool root_is_a_mount() {
  struct statx root {};
  if (::statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &root) != 0) return true;
  if ((root.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) == 0) return true;  // kernel cannot tell
  return (root.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

struct BusyboxRootfs : ::testing::Test {
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts)";
    if (!root_is_a_mount()) {
      GTEST_SKIP() << "\"/\" is not a mount (a chroot?): containers cannot pivot_root here; the VM tests "
                      "(agent_rpc_vm) run them in the guest";
    }
    if (!std::filesystem::exists("/bin/busybox")) GTEST_SKIP() << "needs /bin/busybox (busybox-static)";
    char dir[] = "/tmp/kata-test-rootfs.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    base = dir;
    rootfs = base / "rootfs";
    for (const char* d : {"bin", "proc", "dev", "tmp", "etc", "sys"}) std::filesystem::create_directories(rootfs / d);
    std::filesystem::copy_file("/bin/busybox", rootfs / "bin/busybox");
    for (const char* applet : {"sh", "cat", "echo", "hostname", "id", "sleep", "ls", "touch", "pwd", "readlink",
                               "mount", "grep", "test", "true", "false", "umask", "printf", "wc", "stat"}) {
      std::filesystem::create_symlink("busybox", rootfs / "bin" / applet);
    }
  }
  void TearDown() override {
    if (!base.empty()) std::filesystem::remove_all(base);
  }

  /// A request for a new container in new mount, pid, uts and ipc namespaces with /proc.
  SpawnRequest container(std::vector<std::string> args) const {
    SpawnRequest request;
    request.process.args = std::move(args);
    request.process.env = {"PATH=/bin", "HOME=/"};
    request.rootfs = RootfsSpec{};
    request.rootfs->path = rootfs;
    request.rootfs->hostname = "kata-test";
    request.rootfs->mounts = {MountSpec{"/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}},
                              MountSpec{"/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}}};
    request.rootfs->devices = {"/dev/null", "/dev/zero"};
    request.namespaces = {{CLONE_NEWNS, {}}, {CLONE_NEWPID, {}}, {CLONE_NEWUTS, {}}, {CLONE_NEWIPC, {}}};
    return request;
  }

  std::filesystem::path base;
  std::filesystem::path rootfs;
};

/// Everything readable from `fd` until EOF (or until nothing came for 10 s).
inline std::string read_all(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) break;
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;  // EOF, or EIO on a pty master once the slave side is gone
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace kata::agent_guest::test
