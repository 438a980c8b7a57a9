#include "kata/resource/volume/volumes.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::resource {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view shm_device = "/dev/shm";
constexpr std::string_view ephemeral_type = "ephemeral";
constexpr std::string_view local_type = "local";
constexpr std::string_view direct_volume_type = "directvol";
// Kubelet's directory of emptyDir volumes: .../volumes/kubernetes.io~empty-dir/<name>.
constexpr std::string_view k8s_empty_dir = "kubernetes.io~empty-dir";

bool has_option(const oci::Mount& mount, std::string_view wanted) {
  return std::find(mount.options.begin(), mount.options.end(), wanted) != mount.options.end();
}

// OCI leaves the type of a bind mount to the options; runc and upstream read type "none" or
// no type plus bind/rbind as a bind.
bool is_bind(const oci::Mount& mount) {
  if (mount.type == "bind") return true;
  return (mount.type.empty() || mount.type == "none") && (has_option(mount, "bind") || has_option(mount, "rbind"));
}

bool is_under(std::string_view path, std::string_view dir) {
  return path == dir || (path.starts_with(dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

bool is_system_source(std::string_view source) { return is_under(source, "/proc") || is_under(source, "/sys"); }

bool is_regular_file(const std::string& path) {
  struct stat info{};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

bool is_block_device(const std::string& path) {
  struct stat info{};
  return ::stat(path.c_str(), &info) == 0 && S_ISBLK(info.st_mode);
}

bool is_k8s_empty_dir(const std::string& source) {
  const fs::path parent = fs::path(source).parent_path();
  return parent.filename() == k8s_empty_dir && parent.has_parent_path();
}

// The filesystem of a path (statfs f_type), 0 when it cannot be examined.
long filesystem_type(const std::string& path) {
  struct statfs info{};
  return ::statfs(path.c_str(), &info) == 0 ? static_cast<long>(info.f_type) : 0;
}

bool has_direct_volume(const fs::path& root, const std::string& source) {
  if (source.empty()) return false;
  std::error_code error;
  return fs::is_directory(direct_volume_dir(root, source), error);
}

std::uint64_t parse_tmpfs_size(const std::string& option) {
  const std::string text = option.substr(5);  // after "size="
  std::size_t used = 0;
  std::uint64_t value = 0;
  try {
    value = std::stoull(text, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  std::uint64_t unit = 1;
  if (used > 0 && used + 1 == text.size()) {
    switch (text.back()) {
      case 'k': case 'K': unit = 1ULL << 10; break;
      case 'm': case 'M': unit = 1ULL << 20; break;
      case 'g': case 'G': unit = 1ULL << 30; break;
      default: used = 0;
    }
    if (used > 0) ++used;
  }
  if (used == 0 || used != text.size() || value == 0) {
    fail(Errc::invalid_argument, "/dev/shm option '{}': not a size in bytes or with a k, m or g suffix", option);
  }
  return value * unit;
}

std::string describe_mount(const oci::Mount& mount) {
  return fmt::format("volume {} (source {})", mount.destination, mount.source.empty() ? "none" : mount.source);
}

oci::Mount guest_bind(const oci::Mount& original, std::string guest_source, std::vector<std::string> options) {
  oci::Mount mount = original;
  mount.type = "bind";
  mount.source = std::move(guest_source);
  mount.options = std::move(options);
  return mount;
}

}  // namespace

std::uint64_t sandbox_shm_size(const std::vector<oci::Mount>& mounts) {
  std::uint64_t size = default_shm_size;
  for (const auto& mount : mounts) {
    if (mount.destination != shm_device || mount.type == ephemeral_type) continue;
    if (is_bind(mount)) {
      if (mount.source == shm_device) continue;
      struct statfs info{};
      if (::statfs(mount.source.c_str(), &info) != 0) {
        fail_errno(errno, "size of /dev/shm: statfs {}", mount.source);
      }
      size = static_cast<std::uint64_t>(info.f_blocks) * static_cast<std::uint64_t>(info.f_bsize);
    } else if (mount.type == "tmpfs") {
      size = default_shm_size;
      for (const auto& option : mount.options) {
        if (option.starts_with("size=")) size = parse_tmpfs_size(option);
      }
    }
  }
  return size;
}

grpc::Storage sandbox_shm_storage(std::uint64_t size_bytes) {
  grpc::Storage storage;
  storage.set_driver("ephemeral");
  storage.set_source("shm");
  storage.set_fstype("tmpfs");
  storage.set_mount_point(std::string(guest_shm_dir));
  for (const char* option : {"noexec", "nosuid", "nodev", "mode=1777"}) storage.add_options(option);
  storage.add_options(fmt::format("size={}", size_bytes));
  return storage;
}

std::string_view to_string(VolumeKind kind) noexcept {
  switch (kind) {
    case VolumeKind::shm: return "shm";
    case VolumeKind::ephemeral: return "ephemeral";
    case VolumeKind::local: return "local";
    case VolumeKind::block: return "block";
    case VolumeKind::direct: return "direct";
    case VolumeKind::shared_bind: return "shared bind";
    case VolumeKind::unchanged: return "unchanged";
  }
  return "unknown";
}

VolumeKind classify_volume(const oci::Mount& mount, const VolumeEnvironment& environment) {
  if (mount.destination == shm_device && mount.type != ephemeral_type) return VolumeKind::shm;
  if (mount.type == ephemeral_type) return VolumeKind::ephemeral;
  if (mount.type == local_type) return VolumeKind::local;
  const bool bind = is_bind(mount);
  if (bind && is_k8s_empty_dir(mount.source)) {
    // What kubelet's medium gives the directory: Memory is a tmpfs, the default is the node's
    // disk. Hugepage emptyDirs (hugetlbfs) are shared as they are.
    const long type = filesystem_type(mount.source);
    if (type == TMPFS_MAGIC) return VolumeKind::ephemeral;
    if (!environment.fs_sharing && type != HUGETLBFS_MAGIC) return VolumeKind::local;
  }
  if (bind && is_block_device(mount.source)) return VolumeKind::block;
  if ((bind || mount.type == direct_volume_type) && has_direct_volume(environment.direct_volume_root, mount.source)) {
    return VolumeKind::direct;
  }
  if (!bind || is_system_source(mount.source)) return VolumeKind::unchanged;
  // Host devices are not passed to the guest; a regular file (a termination log) is.
  if (is_under(mount.destination, "/dev") && !is_regular_file(mount.source)) return VolumeKind::unchanged;
  return VolumeKind::shared_bind;
}

std::string base64url_encode(std::string_view bytes) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto word = (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                      (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                      static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    for (int shift = 18; shift >= 0; shift -= 6) out += alphabet[(word >> shift) & 0x3f];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t word = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) word |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += alphabet[(word >> 18) & 0x3f];
    out += alphabet[(word >> 12) & 0x3f];
    out += rest == 2 ? alphabet[(word >> 6) & 0x3f] : '=';
    out += '=';
  }
  return out;
}

fs::path direct_volume_dir(const fs::path& root, std::string_view volume_path) {
  return root / base64url_encode(volume_path);
}

DirectVolumeInfo read_direct_volume_info(const fs::path& root, std::string_view volume_path) {
  const fs::path file = direct_volume_dir(root, volume_path) / direct_volume_info_file;
  std::ifstream in(file);
  if (!in) fail(Errc::not_found, "direct volume {}: {} does not exist", volume_path, file.string());
  const nlohmann::json json = nlohmann::json::parse(in, nullptr, false);
  const auto bad = [&](std::string_view what) {
    fail(Errc::invalid_argument, "direct volume {}: {}: {}", volume_path, file.string(), what);
  };
  if (json.is_discarded() || !json.is_object()) bad("not a JSON object");
  const auto text = [&](const char* key, bool required) -> std::string {
    const auto it = json.find(key);
    if (it == json.end() || it->is_null()) {
      if (required) bad(fmt::format("\"{}\" is missing", key));
      return {};
    }
    if (!it->is_string()) bad(fmt::format("\"{}\" is not a string", key));
    return it->get<std::string>();
  };
  DirectVolumeInfo info;
  info.volume_type = text("volume-type", true);
  info.device = text("device", true);
  info.fstype = text("fstype", false);
  if (const auto it = json.find("metadata"); it != json.end() && !it->is_null()) {
    if (!it->is_object()) bad("\"metadata\" is not an object");
    for (const auto& [key, value] : it->items()) {
      if (!value.is_string()) bad(fmt::format("metadata \"{}\" is not a string", key));
      info.metadata.emplace(key, value.get<std::string>());
    }
  }
  if (const auto it = json.find("options"); it != json.end() && !it->is_null()) {
    if (!it->is_array()) bad("\"options\" is not an array");
    for (const auto& option : *it) {
      if (!option.is_string()) bad("\"options\" holds a non-string");
      info.options.push_back(option.get<std::string>());
    }
  }
  if (info.device.empty()) bad("\"device\" is empty");
  return info;
}

std::string shared_volume_name(std::string_view container_id, const fs::path& source) {
  static thread_local std::mt19937 generator{std::random_device{}()};
  const auto random = static_cast<std::uint32_t>(generator());
  std::string base = source.filename().string();
  if (base.empty()) base = "volume";
  return fmt::format("{}-{:08x}-{}", container_id.substr(0, 10), random, base);
}

std::size_t VolumeManager::share_count() const {
  return static_cast<std::size_t>(
      std::count_if(shares_.begin(), shares_.end(), [](const auto& entry) { return !entry.second.expired(); }));
}

std::shared_ptr<const SharedPath> VolumeManager::share(const std::string& container_id, const oci::Mount& mount) {
  if (!shared_fs_.sharing_supported()) {
    fail(Errc::not_supported,
         "bind volumes need a shared filesystem and shared_fs = none (copying files into the guest is not supported)");
  }
  std::error_code error;
  const fs::path source = fs::canonical(mount.source, error);
  if (error) throw_errno(error.value(), fmt::format("source {}", mount.source));
  const bool read_only = has_option(mount, "ro");

  std::erase_if(shares_, [](const auto& entry) { return entry.second.expired(); });
  const auto key = std::make_pair(source.string(), read_only);
  if (auto existing = shares_[key].lock()) return existing;
  auto shared = std::make_shared<const SharedPath>(
      shared_fs_.share(source, shared_volume_name(container_id, source), read_only));
  shares_[key] = shared;
  return shared;
}

namespace {

// The guest directory of a volume the agent makes (ephemeral, local): its group keeps access
// when the host's directory belongs to another group (a pod's fsGroup).
grpc::Storage guest_made_storage(const oci::Mount& mount, std::string_view driver, std::string_view guest_root,
                                 std::vector<std::string> options) {
  struct stat info{};
  if (::stat(mount.source.c_str(), &info) != 0) fail_errno(errno, "source {}", mount.source);
  grpc::Storage storage;
  storage.set_driver(std::string(driver));
  storage.set_source(driver == ephemeral_type ? "tmpfs" : std::string(driver));
  storage.set_fstype(driver == ephemeral_type ? "tmpfs" : std::string(driver));
  storage.set_mount_point((fs::path(guest_root) / fs::path(mount.source).filename()).string());
  if (info.st_gid != 0) options.push_back(fmt::format("fsgid={}", info.st_gid));
  for (auto& option : options) storage.add_options(std::move(option));
  return storage;
}

// BLKROGET: a device the host marked read-only stays read-only in the guest.
bool block_device_read_only(const fs::path& device) {
  UniqueFd fd(::open(device.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  int read_only = 0;
  return fd && ::ioctl(fd.get(), BLKROGET, &read_only) == 0 && read_only != 0;
}

// The container's bind of a guest directory: its own options, and a bind flag if it has none.
std::vector<std::string> container_bind_options(const oci::Mount& mount) {
  std::vector<std::string> options = mount.options;
  if (!has_option(mount, "bind") && !has_option(mount, "rbind")) options.emplace_back("rbind");
  return options;
}

}  // namespace

ContainerVolumes VolumeManager::prepare(const std::string& container_id, const std::vector<oci::Mount>& mounts) {
  const VolumeEnvironment environment{.fs_sharing = shared_fs_.sharing_supported(), .direct_volume_root = direct_volumes_};
  return with_context(
      [&] { return fmt::format("prepare volumes of container {}", container_id); },
      [&] {
        ContainerVolumes volumes;
        // A block device for the sandbox to attach; its Storage is mounted by the agent.
        const auto add_block = [&](const oci::Mount& mount, const fs::path& device, std::string fstype,
                                   std::vector<std::string> storage_options, bool read_only) {
          BlockVolumeDevice block;
          block.device_id = shared_volume_name(container_id, mount.destination);
          block.host_path = device;
          block.read_only = read_only || block_device_read_only(device);
          block.storage_index = volumes.storages.size();
          block.description = describe_mount(mount);
          grpc::Storage storage;
          storage.set_driver("blk");
          storage.set_fstype(fstype.empty() ? std::string(default_block_volume_fstype) : std::move(fstype));
          storage.set_mount_point((fs::path(guest_block_dir) / block.device_id).string());
          // The container's bind keeps bind and propagation flags; the filesystem mount must
          // not get them (mount(2) would take MS_PRIVATE as a propagation change).
          static constexpr std::string_view bind_only[] = {"bind",  "rbind",  "private",    "rprivate",
                                                           "shared", "rshared", "slave",     "rslave",
                                                           "unbindable", "runbindable"};
          for (auto& option : storage_options) {
            if (std::find(std::begin(bind_only), std::end(bind_only), option) == std::end(bind_only)) {
              storage.add_options(std::move(option));
            }
          }
          if (block.read_only && std::find(storage.options().begin(), storage.options().end(), "ro") == storage.options().end()) {
            storage.add_options("ro");
          }
          volumes.mounts.push_back(guest_bind(mount, storage.mount_point(), container_bind_options(mount)));
          volumes.storages.push_back(std::move(storage));
          volumes.block_devices.push_back(std::move(block));
        };
        for (const auto& mount : mounts) {
          with_context([&] { return describe_mount(mount); }, [&] {
            switch (classify_volume(mount, environment)) {
              case VolumeKind::shm:
                volumes.mounts.push_back(guest_bind(mount, std::string(guest_shm_dir), {"rbind"}));
                break;
              case VolumeKind::ephemeral: {
                auto storage = guest_made_storage(mount, ephemeral_type, guest_ephemeral_dir, {});
                volumes.mounts.push_back(guest_bind(mount, storage.mount_point(), container_bind_options(mount)));
                volumes.storages.push_back(std::move(storage));
                break;
              }
              case VolumeKind::local: {
                auto storage = guest_made_storage(mount, local_type, guest_local_dir, {"mode=0777"});
                volumes.mounts.push_back(guest_bind(mount, storage.mount_point(), container_bind_options(mount)));
                volumes.storages.push_back(std::move(storage));
                break;
              }
              case VolumeKind::block:
                add_block(mount, mount.source, std::string(default_block_volume_fstype), mount.options,
                          has_option(mount, "ro"));
                break;
              case VolumeKind::direct: {
                DirectVolumeInfo info = read_direct_volume_info(direct_volumes_, mount.source);
                if (info.volume_type != direct_volume_type) {
                  fail(Errc::not_supported, "direct volume type {} is not supported (only {}: raw block)", info.volume_type,
                       direct_volume_type);
                }
                struct stat device{};
                if (::stat(info.device.c_str(), &device) != 0) {
                  fail_errno(errno, "device {} of the direct volume", info.device);
                }
                if (!S_ISBLK(device.st_mode) && !S_ISREG(device.st_mode)) {
                  fail(Errc::invalid_argument, "device {} of the direct volume is neither a block device nor a file",
                       info.device);
                }
                add_block(mount, info.device, std::move(info.fstype), std::move(info.options), has_option(mount, "ro"));
                break;
              }
              case VolumeKind::shared_bind: {
                auto shared = share(container_id, mount);
                volumes.mounts.push_back(guest_bind(mount, shared->guest_path(), mount.options));
                volumes.shares.push_back(std::move(shared));
                break;
              }
              case VolumeKind::unchanged:
                volumes.mounts.push_back(mount);
                break;
            }
          });
        }
        return volumes;
      });
}

}  // namespace kata::resource
