#include "kata/agent_guest/system_init.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/magic.h>

#include <fstream>
#include <sstream>

#include "kata/agent_guest/log.hpp"
#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {
namespace {

struct EarlyMount {
  const char* source;
  const char* target;  // relative to root
  const char* fstype;
  unsigned long flags;
  const char* data;
  long magic;          // statfs f_type of an existing mount of this kind
  mode_t mode;
};

// Same order and options as a systemd-less guest needs them: /dev before devpts and shm.
constexpr EarlyMount early_mounts[] = {
    {"proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, PROC_SUPER_MAGIC, 0555},
    {"sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, SYSFS_MAGIC, 0555},
    {"devtmpfs", "dev", "devtmpfs", MS_NOSUID, "mode=0755", TMPFS_MAGIC, 0755},
    {"devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620", DEVPTS_SUPER_MAGIC,
     0755},
    {"shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", TMPFS_MAGIC, 01777},
    {"tmpfs", "run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", TMPFS_MAGIC, 0755},
    {"cgroup2", "sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate", CGROUP2_SUPER_MAGIC,
     0555},
};

bool is_mount_point_of(const std::filesystem::path& target, long magic) {
  struct statfs fs{};
  if (::statfs(target.c_str(), &fs) != 0 || static_cast<long>(fs.f_type) != magic) return false;
  // Same filesystem type as the parent directory means it is the parent's filesystem, not a mount.
  struct stat self{};
  struct stat parent{};
  if (::stat(target.c_str(), &self) != 0 || ::stat(target.parent_path().c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

}  // namespace

void leave_initramfs_root() {
  struct statfs root{};
  if (::statfs("/", &root) != 0) fail_errno(errno, "statfs /");
  if (root.f_type != RAMFS_MAGIC && root.f_type != TMPFS_MAGIC) return;
  with_context("leave the initramfs root", [] {
    constexpr const char* staging = "/.agent-root";
    if (::mkdir(staging, 0700) != 0 && errno != EEXIST) fail_errno(errno, "create {}", staging);
    if (::mount("/", staging, nullptr, MS_BIND, nullptr) != 0) fail_errno(errno, "bind / on {}", staging);
    if (::chdir(staging) != 0) fail_errno(errno, "enter {}", staging);
    if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) fail_errno(errno, "move {} to /", staging);
    if (::chroot(".") != 0 || ::chdir("/") != 0) fail_errno(errno, "chroot into the bind mount");
    // Same filesystem through the bind: the staging directory is visible here too.
    ::rmdir(staging);
  });
}

void mount_early_filesystems(const std::filesystem::path& root) {
  for (const EarlyMount& m : early_mounts) {
    const std::filesystem::path target = root / m.target;
    with_context([&] { return fmt::format("mount {} on {}", m.fstype, target.string()); }, [&] {
      if (::mkdir(target.c_str(), m.mode) != 0 && errno != EEXIST) fail_errno(errno, "create mount point");
      if (is_mount_point_of(target, m.magic)) return;
      if (::mount(m.source, target.c_str(), m.fstype, m.flags, m.data) != 0) fail_errno(errno, "mount");
    });
  }
}

bool load_module(const std::filesystem::path& file, const std::string& parameters) {
  return with_context([&] { return fmt::format("load module {}", file.string()); }, [&] {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_errno(errno, "open");
    if (::syscall(SYS_finit_module, fd.get(), parameters.c_str(), 0) == 0) return true;
    if (errno == EEXIST) return false;
    fail_errno(errno, "finit_module");
  });
}

ModuleLoadReport load_modules(const std::filesystem::path& order_file, const std::filesystem::path& module_dir) {
  ModuleLoadReport report;
  std::ifstream in(order_file);
  if (!in) fail(Errc::not_found, "module list {} cannot be read", order_file.string());
  std::string name;
  while (std::getline(in, name)) {
    if (name.empty() || name.front() == '#') continue;
    try {
      (load_module(module_dir / name) ? report.loaded : report.already).push_back(name);
    } catch (const std::exception& error) {
      report.failed.push_back(describe(error));
      log(LogLevel::warn, "{}", describe(error));
    }
  }
  return report;
}

std::vector<std::string> loaded_module_names() {
  std::ifstream in("/proc/modules");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) names.push_back(line.substr(0, line.find(' ')));
  return names;
}

void become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) fail_errno(errno, "become child subreaper");
}

void power_off() {
  ::sync();
  ::reboot(RB_POWER_OFF);
  fail_errno(errno, "power off");
}

}  // namespace kata::agent_guest
