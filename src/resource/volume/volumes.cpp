#include "kata/resource/volume/volumes.hpp"

#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <random>

#include "kata/core/error.hpp"

namespace kata::resource {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view shm_device = "/dev/shm";
constexpr std::string_view ephemeral_type = "ephemeral";

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
    if (mount.destination != shm_device || !is_bind(mount) || mount.source == shm_device) continue;
    struct statfs info{};
    if (::statfs(mount.source.c_str(), &info) != 0) {
      fail_errno(errno, "size of /dev/shm: statfs {}", mount.source);
    }
    size = static_cast<std::uint64_t>(info.f_blocks) * static_cast<std::uint64_t>(info.f_bsize);
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

VolumeKind classify_volume(const oci::Mount& mount) {
  if (mount.destination == shm_device && mount.type != ephemeral_type) return VolumeKind::shm;
  if (mount.type == ephemeral_type) return VolumeKind::ephemeral;
  if (!is_bind(mount) || is_system_source(mount.source)) return VolumeKind::unchanged;
  // Host devices are not passed to the guest; a regular file (a termination log) is.
  if (is_under(mount.destination, "/dev") && !is_regular_file(mount.source)) return VolumeKind::unchanged;
  return VolumeKind::shared_bind;
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

ContainerVolumes VolumeManager::prepare(const std::string& container_id, const std::vector<oci::Mount>& mounts) {
  return with_context(
      [&] { return fmt::format("prepare volumes of container {}", container_id); },
      [&] {
        ContainerVolumes volumes;
        for (const auto& mount : mounts) {
          with_context([&] { return describe_mount(mount); }, [&] {
            switch (classify_volume(mount)) {
              case VolumeKind::shm:
                volumes.mounts.push_back(guest_bind(mount, std::string(guest_shm_dir), {"rbind"}));
                break;
              case VolumeKind::ephemeral: {
                struct stat info{};
                if (::stat(mount.source.c_str(), &info) != 0) fail_errno(errno, "stat {}", mount.source);
                const std::string guest_dir =
                    (fs::path(guest_ephemeral_dir) / fs::path(mount.source).filename()).string();
                grpc::Storage storage;
                storage.set_driver("ephemeral");
                storage.set_source("tmpfs");
                storage.set_fstype("tmpfs");
                storage.set_mount_point(guest_dir);
                // The volume's group keeps access to the fresh tmpfs.
                if (info.st_gid != 0) storage.add_options(fmt::format("fsgid={}", info.st_gid));
                volumes.storages.push_back(std::move(storage));
                volumes.mounts.push_back(guest_bind(mount, guest_dir, mount.options));
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
