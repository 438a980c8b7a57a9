#include "kata/core/mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>
#include <string_view>
#include <utility>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata {
namespace {

namespace fs = std::filesystem;

struct FlagOption {
  std::string_view name;
  bool clear;
  unsigned long flag;
};

constexpr std::array flag_options{
    FlagOption{"async", true, MS_SYNCHRONOUS},     FlagOption{"atime", true, MS_NOATIME},
    FlagOption{"bind", false, MS_BIND},            FlagOption{"defaults", false, 0},
    FlagOption{"dev", true, MS_NODEV},             FlagOption{"diratime", true, MS_NODIRATIME},
    FlagOption{"dirsync", false, MS_DIRSYNC},      FlagOption{"exec", true, MS_NOEXEC},
    FlagOption{"mand", false, MS_MANDLOCK},        FlagOption{"noatime", false, MS_NOATIME},
    FlagOption{"nodev", false, MS_NODEV},          FlagOption{"nodiratime", false, MS_NODIRATIME},
    FlagOption{"noexec", false, MS_NOEXEC},        FlagOption{"nomand", true, MS_MANDLOCK},
    FlagOption{"norelatime", true, MS_RELATIME},   FlagOption{"nostrictatime", true, MS_STRICTATIME},
    FlagOption{"nosuid", false, MS_NOSUID},        FlagOption{"rbind", false, MS_BIND | MS_REC},
    FlagOption{"relatime", false, MS_RELATIME},    FlagOption{"remount", false, MS_REMOUNT},
    FlagOption{"ro", false, MS_RDONLY},            FlagOption{"rw", true, MS_RDONLY},
    FlagOption{"strictatime", false, MS_STRICTATIME}, FlagOption{"suid", true, MS_NOSUID},
    FlagOption{"sync", false, MS_SYNCHRONOUS},
};

struct PropagationOption {
  std::string_view name;
  unsigned long flags;
};

constexpr std::array propagation_options{
    PropagationOption{"private", MS_PRIVATE},         PropagationOption{"rprivate", MS_PRIVATE | MS_REC},
    PropagationOption{"shared", MS_SHARED},           PropagationOption{"rshared", MS_SHARED | MS_REC},
    PropagationOption{"slave", MS_SLAVE},             PropagationOption{"rslave", MS_SLAVE | MS_REC},
    PropagationOption{"unbindable", MS_UNBINDABLE},   PropagationOption{"runbindable", MS_UNBINDABLE | MS_REC},
};

struct FlagName {
  unsigned long flag;
  std::string_view name;
};

constexpr std::array flag_names{
    FlagName{MS_RDONLY, "MS_RDONLY"},       FlagName{MS_NOSUID, "MS_NOSUID"},
    FlagName{MS_NODEV, "MS_NODEV"},         FlagName{MS_NOEXEC, "MS_NOEXEC"},
    FlagName{MS_SYNCHRONOUS, "MS_SYNCHRONOUS"}, FlagName{MS_REMOUNT, "MS_REMOUNT"},
    FlagName{MS_MANDLOCK, "MS_MANDLOCK"},   FlagName{MS_DIRSYNC, "MS_DIRSYNC"},
    FlagName{MS_NOATIME, "MS_NOATIME"},     FlagName{MS_NODIRATIME, "MS_NODIRATIME"},
    FlagName{MS_BIND, "MS_BIND"},           FlagName{MS_MOVE, "MS_MOVE"},
    FlagName{MS_REC, "MS_REC"},             FlagName{MS_UNBINDABLE, "MS_UNBINDABLE"},
    FlagName{MS_PRIVATE, "MS_PRIVATE"},     FlagName{MS_SLAVE, "MS_SLAVE"},
    FlagName{MS_SHARED, "MS_SHARED"},       FlagName{MS_RELATIME, "MS_RELATIME"},
    FlagName{MS_STRICTATIME, "MS_STRICTATIME"},
};

// The flags that belong to one mount rather than to the filesystem: a bind mount only takes
// them on a remount.
constexpr unsigned long per_mount_flags =
    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME;

const char* c_str_or_null(const std::string& text) { return text.empty() ? nullptr : text.c_str(); }

std::string describe_data(const std::string& data) { return data.empty() ? std::string() : ", data " + data; }

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string decode_mountinfo_path(std::string_view field) {
  std::string decoded;
  decoded.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const auto digit = [&](std::size_t at) { return field[at] >= '0' && field[at] <= '7'; };
      if (digit(i + 1) && digit(i + 2) && digit(i + 3)) {
        decoded.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
        i += 3;
        continue;
      }
    }
    decoded.push_back(field[i]);
  }
  return decoded;
}

// Mount points of this namespace in mountinfo order (a mount appears after its parent and
// after the mounts it is stacked on).
std::vector<fs::path> read_mount_points() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  if (!mountinfo) fail_errno(errno, "open /proc/self/mountinfo");
  std::vector<fs::path> points;
  std::string line;
  while (std::getline(mountinfo, line)) {
    // id parent major:minor root mount-point options ...
    std::string_view rest(line);
    for (int skip = 0; skip < 4; ++skip) {
      const auto space = rest.find(' ');
      if (space == std::string_view::npos) {
        rest = {};
        break;
      }
      rest.remove_prefix(space + 1);
    }
    const auto end = rest.find(' ');
    if (rest.empty() || end == std::string_view::npos) continue;
    points.emplace_back(decode_mountinfo_path(rest.substr(0, end)));
  }
  return points;
}

bool is_at_or_below(const fs::path& candidate, const fs::path& base) {
  auto base_it = base.begin();
  auto candidate_it = candidate.begin();
  for (; base_it != base.end(); ++base_it, ++candidate_it) {
    if (base_it->empty()) continue;  // the trailing "" of "/a/b/"
    if (candidate_it == candidate.end() || *candidate_it != *base_it) return false;
  }
  return true;
}

fs::path resolved(const fs::path& path) {
  std::error_code ignored;
  auto absolute = fs::absolute(path, ignored);
  auto canonical = fs::weakly_canonical(absolute.empty() ? path : absolute, ignored);
  return canonical.empty() ? path.lexically_normal() : canonical;
}

std::size_t depth(const fs::path& path) { return static_cast<std::size_t>(std::distance(path.begin(), path.end())); }

}  // namespace

MountFlags parse_mount_options(const std::vector<std::string>& options) {
  MountFlags parsed;
  for (const auto& option : options) {
    const auto flag = std::find_if(flag_options.begin(), flag_options.end(),
                                   [&](const FlagOption& known) { return known.name == option; });
    if (flag != flag_options.end()) {
      if (flag->clear) {
        parsed.flags &= ~flag->flag;
      } else {
        parsed.flags |= flag->flag;
      }
      continue;
    }
    const auto propagation = std::find_if(propagation_options.begin(), propagation_options.end(),
                                          [&](const PropagationOption& known) { return known.name == option; });
    if (propagation != propagation_options.end()) {
      parsed.propagation = propagation->flags;
      continue;
    }
    if (!parsed.data.empty()) parsed.data.push_back(',');
    parsed.data += option;
  }
  return parsed;
}

std::string mount_flags_to_string(unsigned long flags) {
  if (flags == 0) return "0";
  std::string text;
  for (const auto& [flag, name] : flag_names) {
    if ((flags & flag) == 0) continue;
    if (!text.empty()) text.push_back('|');
    text += name;
    flags &= ~flag;
  }
  if (flags != 0) {
    if (!text.empty()) text.push_back('|');
    text += fmt::format("{:#x}", flags);
  }
  return text;
}

ScopedMount::ScopedMount(ScopedMount&& other) noexcept : target_(std::exchange(other.target_, {})) {}

ScopedMount& ScopedMount::operator=(ScopedMount&& other) noexcept {
  if (this != &other) {
    reset();
    target_ = std::exchange(other.target_, {});
  }
  return *this;
}

ScopedMount::~ScopedMount() { reset(); }

void ScopedMount::reset() noexcept {
  if (target_.empty()) return;
  ::umount2(target_.c_str(), MNT_DETACH);
  target_.clear();
}

ScopedMount ScopedMount::mount(const fs::path& source, const fs::path& target, const std::string& fstype,
                               unsigned long flags, const std::string& data) {
  const auto describe_call = [&] {
    return fmt::format("mount {} on {} (type {}, flags {}{})", source.string(), target.string(),
                       fstype.empty() ? "none" : fstype, mount_flags_to_string(flags), describe_data(data));
  };
  if ((flags & MS_REMOUNT) != 0) {
    fail(Errc::invalid_argument, "{}: a remount changes an existing mount; use remount_read_only", describe_call());
  }
  if (::mount(source.c_str(), target.c_str(), c_str_or_null(fstype), flags, c_str_or_null(data)) != 0) {
    throw_errno(errno, describe_call());
  }
  ScopedMount owned(target);
  if ((flags & MS_BIND) != 0 && (flags & per_mount_flags) != 0) {
    const unsigned long remount = MS_BIND | MS_REMOUNT | (flags & per_mount_flags);
    if (::mount(nullptr, target.c_str(), nullptr, remount, nullptr) != 0) {
      fail_errno(errno, "{}: remount with {}", describe_call(), mount_flags_to_string(remount));
    }
  }
  return owned;
}

ScopedMount ScopedMount::mount(const fs::path& source, const fs::path& target, const std::string& fstype,
                               const std::vector<std::string>& options) {
  const MountFlags parsed = parse_mount_options(options);
  ScopedMount owned = mount(source, target, fstype, parsed.flags, parsed.data);
  if (parsed.propagation != 0) owned.set_propagation(parsed.propagation);
  return owned;
}

ScopedMount ScopedMount::bind(const fs::path& source, const fs::path& target, BindOptions options) {
  const unsigned long recursive = options.recursive ? MS_REC : 0;
  if (!options.read_only) return mount(source, target, {}, MS_BIND | recursive);

  const auto describe_call = [&] {
    return fmt::format("bind mount {} on {} (flags {})", source.string(), target.string(),
                       mount_flags_to_string(MS_BIND | recursive | MS_RDONLY));
  };
  const unsigned int tree_flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (options.recursive ? AT_RECURSIVE : 0);
  UniqueFd tree(::open_tree(AT_FDCWD, source.c_str(), tree_flags));
  if (!tree) {
    // Kernels before 5.12 lack the new mount API: fall back to bind + remount, where only this
    // copy (not copies propagated meanwhile) becomes read-only.
    if (errno == ENOSYS) return mount(source, target, {}, MS_BIND | recursive | MS_RDONLY);
    fail_errno(errno, "{}: open_tree", describe_call());
  }
  mount_attr attributes{};
  attributes.attr_set = MOUNT_ATTR_RDONLY;
  const unsigned int attr_flags = AT_EMPTY_PATH | (options.recursive ? AT_RECURSIVE : 0);
  if (::mount_setattr(tree.get(), "", attr_flags, &attributes, sizeof attributes) != 0) {
    if (errno == ENOSYS) return mount(source, target, {}, MS_BIND | recursive | MS_RDONLY);
    fail_errno(errno, "{}: mount_setattr read-only", describe_call());
  }
  if (::move_mount(tree.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    fail_errno(errno, "{}: move_mount", describe_call());
  }
  return ScopedMount(target);
}

ScopedMount ScopedMount::adopt(const fs::path& target) {
  if (!is_mount_point(target)) fail(Errc::invalid_argument, "adopt mount {}: not a mount point", target.string());
  return ScopedMount(target);
}

void ScopedMount::remount_read_only(bool read_only) {
  if (target_.empty()) fail(Errc::failed_precondition, "remount: this ScopedMount owns no mount");
  struct statvfs current{};
  if (::statvfs(target_.c_str(), &current) != 0) fail_errno(errno, "remount {}: statvfs", target_.string());
  unsigned long kept = 0;
  for (const auto& [statvfs_flag, mount_flag] :
       std::array{std::pair{ST_NOSUID, MS_NOSUID}, std::pair{ST_NODEV, MS_NODEV}, std::pair{ST_NOEXEC, MS_NOEXEC},
                  std::pair{ST_NOATIME, MS_NOATIME}, std::pair{ST_NODIRATIME, MS_NODIRATIME},
                  std::pair{ST_RELATIME, MS_RELATIME}}) {
    if ((current.f_flag & statvfs_flag) != 0) kept |= mount_flag;
  }
  const unsigned long flags = MS_BIND | MS_REMOUNT | kept | (read_only ? MS_RDONLY : 0);
  if (::mount(nullptr, target_.c_str(), nullptr, flags, nullptr) != 0) {
    fail_errno(errno, "remount {} {} (flags {})", target_.string(), read_only ? "read-only" : "read-write",
               mount_flags_to_string(flags));
  }
}

void ScopedMount::set_propagation(unsigned long propagation) {
  if (target_.empty()) fail(Errc::failed_precondition, "set propagation: this ScopedMount owns no mount");
  if (::mount(nullptr, target_.c_str(), nullptr, propagation, nullptr) != 0) {
    fail_errno(errno, "set propagation of {} to {}", target_.string(), mount_flags_to_string(propagation));
  }
}

void ScopedMount::unmount() {
  const fs::path target = std::exchange(target_, {});
  if (target.empty()) return;
  if (::umount2(target.c_str(), MNT_DETACH) != 0) fail_errno(errno, "unmount {}", target.string());
}

fs::path ScopedMount::release() noexcept { return std::exchange(target_, {}); }

std::vector<fs::path> mount_points_under(const fs::path& path) {
  const fs::path base = resolved(path);
  std::vector<fs::path> below;
  for (auto& point : read_mount_points()) {
    if (is_at_or_below(point, base)) below.push_back(std::move(point));
  }
  // Later entries sit on top of or inside earlier ones; then deeper paths first.
  std::reverse(below.begin(), below.end());
  std::stable_sort(below.begin(), below.end(),
                   [](const fs::path& a, const fs::path& b) { return depth(a) > depth(b); });
  return below;
}

bool is_mount_point(const fs::path& path) {
  const fs::path base = resolved(path);
  const auto points = read_mount_points();
  return std::find(points.begin(), points.end(), base) != points.end();
}

std::size_t unmount_all_under(const fs::path& path) {
  std::size_t unmounted = 0;
  for (const auto& point : mount_points_under(path)) {
    if (::umount2(point.c_str(), MNT_DETACH) == 0) {
      ++unmounted;
    } else if (errno != EINVAL && errno != ENOENT) {
      // EINVAL/ENOENT: already gone with a parent or through propagation.
      fail_errno(errno, "unmount {}", point.string());
    }
  }
  return unmounted;
}

}  // namespace kata
