// A private network namespace for the network tests: made with unshare(2) on a scratch thread and
// bind-mounted on a file in a temporary directory (nothing under /run/netns), configured and
// inspected with iproute2 run inside it through nsenter(1). The destructor unmounts it, which
// destroys it and every link in it.
#pragma once

#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace kata::resource::network::test {

/// Why the network tests cannot run here, or empty when they can.
inline std::string network_test_blocker() {
  if (::geteuid() != 0) return "needs root (network namespaces, taps, tc)";
  if (::access("/dev/net/tun", R_OK | W_OK) != 0) return "no /dev/net/tun";
  if (std::system("{ command -v nsenter && command -v ip && command -v tc; } >/dev/null 2>&1") != 0) return "needs nsenter, ip and tc";
  return {};
}

#define KATA_REQUIRE_NETWORK_TESTS()                                                   \
  do {                                                                                 \
    if (const std::string blocker = ::kata::resource::network::test::network_test_blocker(); \
        !blocker.empty()) {                                                            \
      GTEST_SKIP() << blocker;                                                         \
    }                                                                                  \
  } while (false)

class ScratchNetns {
 public:
  ScratchNetns() {
    std::string pattern = (std::filesystem::temp_directory_path() / "kata-net-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
    dir_ = pattern;
    path_ = dir_ / "netns";
    std::ofstream(path_).close();
    std::string failure;
    std::thread([&] {
      if (::unshare(CLONE_NEWNET) != 0) {
        failure = "unshare(CLONE_NEWNET) failed";
        return;
      }
      const std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
      if (::mount(self.c_str(), path_.c_str(), nullptr, MS_BIND, nullptr) != 0) failure = "bind-mount " + self + " failed";
    }).join();
    if (!failure.empty()) {
      std::filesystem::remove_all(dir_);
      throw std::runtime_error(failure);
    }
    sh("ip link set lo up");
  }
  ScratchNetns(const ScratchNetns&) = delete;
  ScratchNetns& operator=(const ScratchNetns&) = delete;
  ~ScratchNetns() {
    ::umount2(path_.c_str(), MNT_DETACH);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// Runs `script` with sh inside the namespace and returns its stdout; throws when it fails.
  std::string sh(const std::string& script) const {
    std::string quoted = "'";
    for (char c : script) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    quoted += "'";
    const std::string command = "nsenter --net=" + path_.string() + " sh -c " + quoted + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("popen " + command);
    std::string out;
    char buffer[4096];
    std::size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, got);
    const int status = ::pclose(pipe);
    if (status != 0) throw std::runtime_error("in the test namespace, `" + script + "` failed: " + out);
    return out;
  }

  /// Whether `script` succeeds (for probing kernel features).
  bool try_sh(const std::string& script) const {
    try {
      (void)sh(script);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  /// Everything the tests compare before and after: links, qdiscs and filters of every link.
  std::string snapshot() const {
    return sh("links=$(ip -o link show | cut -d: -f2 | cut -d@ -f1); echo $links; tc qdisc show; "
              "for l in $links; do tc filter show dev $l ingress; done");
  }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
};

}  // namespace kata::resource::network::test
