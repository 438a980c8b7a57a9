// What the agent does as PID 1 before it can serve anything: the early filesystems, the kernel
// modules the image builder packed, and the guest facts the RPCs report.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace kata::agent_guest {

/// Makes the root directory a mount with a parent, when it is the initramfs (rootfs) itself.
/// pivot_root(2) refuses to move a root that has no parent mount (EINVAL), so without this no
/// container could be started from an initrd-booted guest. The initramfs is bind-mounted onto
/// itself and the agent chroots into the bind; nothing is copied. Call first, as PID 1, before
/// any other mount. No-op when "/" is not a ramfs/tmpfs.
void leave_initramfs_root();

/// Mounts proc, sysfs, devtmpfs (the Debian kernel has no DEVTMPFS_MOUNT), devpts, /dev/shm,
/// /run and the unified cgroup hierarchy at /sys/fs/cgroup, under `root` ("/" in the guest).
/// A target that is already mounted with the same type is left alone, so calling it twice is
/// harmless. Throws kata::Error naming the first mount that failed.
void mount_early_filesystems(const std::filesystem::path& root = "/");

struct ModuleLoadReport {
  std::vector<std::string> loaded;        ///< file names, in load order
  std::vector<std::string> already;       ///< were loaded (built in or EEXIST)
  std::vector<std::string> failed;        ///< "name: reason"
};

/// Loads one module file with finit_module(2). Returns false if it was already loaded; throws
/// kata::Error ("load module <file>: <errno text>") otherwise.
bool load_module(const std::filesystem::path& file, const std::string& parameters = {});

/// Loads every module named in `order_file` (one file name a line, dependencies first, as
/// build-image.sh writes /etc/modules.order) from `module_dir`. A failing module is reported and
/// the rest still load: a guest without, say, 9p still serves containers on virtio-fs.
[[nodiscard]] ModuleLoadReport load_modules(const std::filesystem::path& order_file,
                                            const std::filesystem::path& module_dir);

/// Names of the loaded modules, from /proc/modules.
[[nodiscard]] std::vector<std::string> loaded_module_names();

/// Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so that orphans of the
/// processes it starts come back to it when it is not PID 1 (host tests, or a tiny init).
void become_subreaper();

/// Powers the VM off (sync + reboot(RB_POWER_OFF)). Only returns by throwing.
[[noreturn]] void power_off();

}  // namespace kata::agent_guest
