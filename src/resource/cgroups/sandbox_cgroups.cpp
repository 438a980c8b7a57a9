#include "kata/resource/cgroups/sandbox_cgroups.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/log/log.hpp"

namespace kata::resource::cgroups {
namespace {

namespace fs = std::filesystem;

log::Logger cgroup_log() { return log::Logger("cgroups"); }

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find(separator, start), text.size());
    parts.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string joined;
  for (const auto& part : parts) joined += (joined.empty() ? "" : ",") + part;
  return joined;
}

/// Controller names the kernel knows (/proc/cgroups), to tell them from mount options.
std::set<std::string> kernel_controllers() {
  std::set<std::string> names;
  std::ifstream in("/proc/cgroups");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    names.insert(line.substr(0, line.find('\t')));
  }
  return names;
}

std::string read_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

/// Writes `value` to a cgroupfs file in one write(2), as the kernel expects.
void write_file(const fs::path& file, std::string_view value) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) fail_errno(errno, "open {}", file.string());
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    fail_errno(errno, "write {} to {}", value, file.string());
  }
}

/// The cgroup of the calling process in `hierarchy`, from /proc/self/cgroup.
fs::path own_cgroup(const Hierarchy& hierarchy) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (hierarchy.unified ? controllers.empty() && line.starts_with("0:") : controllers == hierarchy.controllers) {
      return hierarchy.mount_point / fs::path(path).relative_path();
    }
  }
  return hierarchy.mount_point;
}

/// Creates `relative` below the hierarchy's root, parents first; appends what it made to
/// `created`. A v1 cpuset directory inherits its parent's CPUs and memory nodes.
void make_cgroup(const Hierarchy& hierarchy, const fs::path& relative, std::vector<fs::path>& created) {
  fs::path dir = hierarchy.mount_point;
  for (const auto& component : relative) {
    const fs::path parent = dir;
    dir /= component;
    if (::mkdir(dir.c_str(), 0755) != 0) {
      if (errno == EEXIST && fs::is_directory(dir)) continue;
      fail_errno(errno, "create cgroup {}", dir.string());
    }
    created.push_back(dir);
    if (hierarchy.is_cpuset()) {
      for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
        if (read_line(dir / file).empty()) write_file(dir / file, read_line(parent / file));
      }
    }
  }
}

bool has_child_cgroup(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec)) return true;
  }
  return false;
}

enum class Removal { removed, shared, failed };

Removal remove_directory(const fs::path& dir, std::chrono::steady_clock::time_point deadline) {
  // A parent another sandbox still uses (kata-lab/ of two pods) stays, without waiting for it.
  if (has_child_cgroup(dir)) {
    cgroup_log().debug("keep cgroup {}: another cgroup is below it", dir.string());
    return Removal::shared;
  }
  for (;;) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return Removal::removed;
    // EBUSY: a process (a killed VMM) has not left yet.
    if (errno != EBUSY || std::chrono::steady_clock::now() >= deadline) {
      cgroup_log().warn("remove cgroup {}: {}", dir.string(), std::strerror(errno));
      return Removal::failed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

bool Hierarchy::is_cpuset() const {
  if (unified) return false;
  const auto names = split(controllers, ',');
  return std::find(names.begin(), names.end(), "cpuset") != names.end();
}

std::vector<Hierarchy> detect_hierarchies(const fs::path& mountinfo) {
  std::ifstream in(mountinfo);
  if (!in) fail(Errc::failed_precondition, "read {}: cannot open it", mountinfo.string());
  const std::set<std::string> known = kernel_controllers();
  std::vector<Hierarchy> v1;
  std::optional<Hierarchy> v2;
  std::string line;
  while (std::getline(in, line)) {
    // <id> <parent> <dev> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>
    const auto separator = line.find(" - ");
    if (separator == std::string::npos) continue;
    std::istringstream head(line.substr(0, separator));
    std::string id, parent, device, root, mount_point;
    head >> id >> parent >> device >> root >> mount_point;
    std::istringstream tail(line.substr(separator + 3));
    std::string fstype, source, options;
    tail >> fstype >> source >> options;
    if (fstype == "cgroup2") {
      if (!v2) v2 = Hierarchy{mount_point, "", true};
    } else if (fstype == "cgroup") {
      std::vector<std::string> controllers;
      for (const auto& option : split(options, ',')) {
        if (known.contains(option) || option.starts_with("name=")) controllers.push_back(option);
      }
      std::sort(controllers.begin(), controllers.end());
      if (!controllers.empty()) v1.push_back(Hierarchy{mount_point, join(controllers), false});
    }
  }
  // One mount per hierarchy: a bind mount of the same hierarchy elsewhere (a chroot's) is skipped.
  std::vector<Hierarchy> unique;
  for (auto& hierarchy : v1) {
    const bool seen = std::any_of(unique.begin(), unique.end(),
                                  [&](const Hierarchy& h) { return h.controllers == hierarchy.controllers; });
    if (!seen) unique.push_back(std::move(hierarchy));
  }
  if (!unique.empty()) return unique;
  if (v2) return {*v2};
  fail(Errc::failed_precondition, "no cgroup filesystem is mounted ({} lists none)", mountinfo.string());
}

fs::path relative_cgroup_path(std::string_view cgroups_path) {
  if (cgroups_path.find(':') != std::string_view::npos) {
    fail(Errc::invalid_argument,
         "linux.cgroupsPath \"{}\" is systemd style (slice:prefix:name); only cgroupfs paths are supported "
         "(configure containerd's runtime with SystemdCgroup = false)",
         cgroups_path);
  }
  fs::path relative;
  for (const auto& component : fs::path(cgroups_path).relative_path()) {
    if (component.empty()) continue;
    if (component == "." || component == "..") {
      fail(Errc::invalid_argument, "linux.cgroupsPath \"{}\": \"{}\" components are not allowed", cgroups_path,
           component.string());
    }
    relative /= component;
  }
  if (relative.empty()) fail(Errc::invalid_argument, "linux.cgroupsPath \"{}\" names no cgroup", cgroups_path);
  return relative;
}

SandboxCgroups SandboxCgroups::create(SandboxCgroupOptions options) {
  SandboxCgroups cgroups;
  cgroups.hierarchies_ = std::move(options.hierarchies);
  cgroups.sandbox_cgroup_only_ = options.sandbox_cgroup_only;
  cgroups.path_ = options.cgroups_path.empty() ? fs::path("kata_sandboxed_pod") / options.sandbox_id
                                               : relative_cgroup_path(options.cgroups_path);
  if (!options.sandbox_cgroup_only) cgroups.overhead_path_ = fs::path("kata_overhead") / options.sandbox_id;
  // On failure `cgroups` is destroyed here, removing what was made so far.
  for (const auto& hierarchy : cgroups.hierarchies_) {
    make_cgroup(hierarchy, cgroups.path_, cgroups.created_);
    if (!cgroups.overhead_path_.empty()) make_cgroup(hierarchy, cgroups.overhead_path_, cgroups.created_);
  }
  return cgroups;
}

SandboxCgroups::SandboxCgroups(SandboxCgroups&& other) noexcept
    : hierarchies_(std::move(other.hierarchies_)),
      path_(std::move(other.path_)),
      overhead_path_(std::move(other.overhead_path_)),
      sandbox_cgroup_only_(other.sandbox_cgroup_only_),
      created_(std::exchange(other.created_, {})),
      shim_origin_(std::exchange(other.shim_origin_, {})) {}

SandboxCgroups& SandboxCgroups::operator=(SandboxCgroups&& other) noexcept {
  if (this != &other) {
    remove();
    hierarchies_ = std::move(other.hierarchies_);
    path_ = std::move(other.path_);
    overhead_path_ = std::move(other.overhead_path_);
    sandbox_cgroup_only_ = other.sandbox_cgroup_only_;
    created_ = std::exchange(other.created_, {});
    shim_origin_ = std::exchange(other.shim_origin_, {});
  }
  return *this;
}

SandboxCgroups::~SandboxCgroups() { remove(); }

void SandboxCgroups::add_process(pid_t pid) {
  const fs::path& target = sandbox_cgroup_only_ ? path_ : overhead_path_;
  for (const auto& hierarchy : hierarchies_) {
    const fs::path procs = hierarchy.mount_point / target / "cgroup.procs";
    if (pid == ::getpid() && !shim_origin_.contains(procs)) shim_origin_.emplace(procs, own_cgroup(hierarchy));
    write_file(procs, std::to_string(pid));
  }
}

void SandboxCgroups::add_vcpu_threads(const std::vector<pid_t>& thread_ids) {
  if (sandbox_cgroup_only_ || thread_ids.empty()) return;
  for (const auto& hierarchy : hierarchies_) {
    if (hierarchy.unified) {
      cgroup_log().info("cgroup v2: the {} vCPU threads stay in {} (threads cannot leave their process's cgroup)",
                        thread_ids.size(), overhead_path_.string());
      continue;
    }
    for (pid_t tid : thread_ids) write_file(hierarchy.mount_point / path_ / "tasks", std::to_string(tid));
  }
}

void SandboxCgroups::remove(std::chrono::milliseconds timeout) noexcept {
  for (const auto& [procs, origin] : shim_origin_) {
    try {
      write_file(origin / "cgroup.procs", std::to_string(::getpid()));
    } catch (const std::exception& e) {
      cgroup_log().warn("move the shim back from {}: {}", procs.parent_path().string(), describe(e));
    }
  }
  shim_origin_.clear();
  if (created_.empty()) return;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) (void)remove_directory(*it, deadline);
  created_.clear();
}

bool on_cgroup_filesystem(const fs::path& path) {
  struct statfs info {};
  if (::statfs(path.c_str(), &info) != 0) return false;
  return info.f_type == CGROUP_SUPER_MAGIC || info.f_type == CGROUP2_SUPER_MAGIC;
}

std::vector<fs::path> remove_cgroup_directories(const std::vector<fs::path>& directories,
                                                std::chrono::milliseconds timeout) {
  std::vector<fs::path> left;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto it = directories.rbegin(); it != directories.rend(); ++it) {
    std::error_code ec;
    if (!fs::exists(*it, ec)) continue;
    if (!on_cgroup_filesystem(*it)) {
      cgroup_log().warn("not removing {}: it is not on a cgroup filesystem", it->string());
      left.push_back(*it);
      continue;
    }
    if (remove_directory(*it, deadline) == Removal::failed) left.push_back(*it);
  }
  return left;
}

}  // namespace kata::resource::cgroups
