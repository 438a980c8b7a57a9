#include "kata/agent_guest/storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <thread>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {
namespace {

namespace fs = std::filesystem;

// The mount options without fsgid=, which is applied after mounting.
std::vector<std::string> storage_options(const grpc::Storage& storage) {
  std::vector<std::string> options;
  for (const std::string& option : storage.options()) {
    if (!option.starts_with("fsgid=")) options.push_back(option);
  }
  return options;
}

// A pod's fsGroup owns the volume: group rwx and setgid, so new files stay in the group.
void apply_fs_group(const grpc::Storage& storage, const fs::path& dir) {
  for (const std::string& option : storage.options()) {
    if (!option.starts_with("fsgid=")) continue;
    const std::string text = option.substr(6);
    std::size_t used = 0;
    unsigned long gid = 0;
    try {
      gid = std::stoul(text, &used, 10);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size() || gid > 0xfffffffeUL) {
      fail(Errc::invalid_argument, "option '{}' is not a group id", option);
    }
    if (::chown(dir.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0) {
      fail_errno(errno, "chown {} to group {}", dir.string(), gid);
    }
    struct stat info{};
    if (::stat(dir.c_str(), &info) != 0) fail_errno(errno, "stat {}", dir.string());
    if (::chmod(dir.c_str(), (info.st_mode & 07777) | S_ISGID | S_IRWXG) != 0) fail_errno(errno, "chmod {}", dir.string());
  }
}

std::vector<unsigned> parse_pci_path(std::string_view pci_path) {
  std::vector<unsigned> slots;
  std::size_t start = 0;
  while (start <= pci_path.size()) {
    const std::size_t end = std::min(pci_path.find('/', start), pci_path.size());
    const std::string_view part = pci_path.substr(start, end - start);
    unsigned slot = 0;
    bool valid = !part.empty() && part.size() <= 2;
    for (char c : part) {
      const int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                        : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                                    : -1;
      if (digit < 0) valid = false;
      slot = slot * 16 + static_cast<unsigned>(std::max(digit, 0));
    }
    if (!valid || slot > 0x1f || slots.size() == 8) {
      fail(Errc::invalid_argument, "'{}' is not a PCI path (hex slots 00-1f separated by '/')", pci_path);
    }
    slots.push_back(slot);
    start = end + 1;
  }
  return slots;
}

StorageMount mount_block(const grpc::Storage& storage, const StorageEnvironment& environment) {
  if (storage.source().empty()) fail(Errc::invalid_argument, "no source (the device's PCI path)");
  if (storage.fstype().empty()) fail(Errc::invalid_argument, "no fstype");
  (void)parse_pci_path(storage.source());
  const auto deadline = std::chrono::steady_clock::now() + environment.device_timeout;
  std::optional<fs::path> device;
  while (!(device = block_device_at(storage.source(), environment))) {
    if (std::chrono::steady_clock::now() >= deadline) {
      fail(Errc::deadline_exceeded, "no block device appeared at PCI path {} within {} ms", storage.source(),
           environment.device_timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // devtmpfs creates the node right after the disk is registered; wait for that moment too.
  while (!fs::exists(*device)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      fail(Errc::deadline_exceeded, "{} (PCI path {}) has no device node", device->string(), storage.source());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The node and sysfs entry come at device_add, the disk goes live (openable) a moment later
  // in add_disk; until then an open or a mount fails with ENXIO. Wait for it to open.
  while (true) {
    const UniqueFd probe(::open(device->c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (probe) break;
    if (errno != ENXIO) fail_errno(errno, "open {} (PCI path {})", device->string(), storage.source());
    if (std::chrono::steady_clock::now() >= deadline) {
      fail(Errc::deadline_exceeded, "{} (PCI path {}) did not become usable", device->string(), storage.source());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const fs::path target = storage.mount_point();
  fs::create_directories(target);
  StorageMount mounted(target, ScopedMount::mount(*device, target, storage.fstype(), storage_options(storage)));
  apply_fs_group(storage, target);
  return mounted;
}

// A "local" storage is a directory shared by the containers of the pod (an emptyDir); its
// permissions come from a "mode=" option, octal as Kubernetes writes it.
StorageMount make_local_directory(const grpc::Storage& storage) {
  const std::filesystem::path dir = storage.mount_point();
  std::filesystem::create_directories(dir);
  for (const std::string& option : storage.options()) {
    if (!option.starts_with("mode=")) continue;
    const std::string text = option.substr(5);
    std::size_t used = 0;
    unsigned long mode = 0;
    try {
      mode = std::stoul(text, &used, 8);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || mode > 07777) fail(Errc::invalid_argument, "option '{}' is not an octal mode", option);
    if (::chmod(dir.c_str(), static_cast<mode_t>(mode)) != 0) fail_errno(errno, "chmod {}", dir.string());
  }
  apply_fs_group(storage, dir);
  return StorageMount(dir, ScopedMount());
}

}  // namespace

std::optional<fs::path> block_device_at(std::string_view pci_path, const StorageEnvironment& environment) {
  const std::vector<unsigned> slots = parse_pci_path(pci_path);
  fs::path parent = environment.sysfs / "devices" / "pci0000:00";
  std::string bus = "0000:00";
  std::error_code error;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const fs::path device = parent / fmt::format("{}:{:02x}.0", bus, slots[i]);
    if (!fs::is_directory(device, error)) return std::nullopt;
    if (i + 1 == slots.size()) {
      for (const auto& entry : fs::directory_iterator(device, error)) {
        if (!entry.path().filename().string().starts_with("virtio")) continue;
        for (const auto& disk : fs::directory_iterator(entry.path() / "block", error)) {
          return environment.dev / disk.path().filename();
        }
      }
      return std::nullopt;
    }
    // A bridge or port: the bus behind it is named in its pci_bus directory.
    std::optional<std::string> secondary;
    for (const auto& entry : fs::directory_iterator(device / "pci_bus", error)) {
      secondary = entry.path().filename().string();
      break;
    }
    if (!secondary) return std::nullopt;
    bus = *secondary;
    parent = device;
  }
  return std::nullopt;
}

StorageMount mount_storage(const grpc::Storage& storage, const StorageEnvironment& environment) {
  return with_context(
      [&] { return fmt::format("storage {} (driver {})", storage.mount_point(), storage.driver()); }, [&] {
        if (storage.mount_point().empty() || storage.mount_point().front() != '/') {
          fail(Errc::invalid_argument, "mount_point '{}' is not an absolute path", storage.mount_point());
        }
        const std::string& driver = storage.driver();
        if (driver == "local") return make_local_directory(storage);
        if (driver == "blk") return mount_block(storage, environment);
        std::string fstype = storage.fstype();
        if (driver == "9p") {
          if (fstype.empty()) fstype = "9p";
        } else if (driver == "virtio-fs") {
          if (fstype.empty()) fstype = "virtiofs";
        } else if (driver == "ephemeral") {
          if (fstype.empty()) fstype = "tmpfs";
        } else {
          fail(Errc::not_supported, "storage driver '{}' is not supported by this agent (supported: 9p, virtio-fs, "
                                    "ephemeral, local, blk)", driver);
        }
        if (storage.source().empty()) fail(Errc::invalid_argument, "no source");
        const std::filesystem::path target = storage.mount_point();
        std::filesystem::create_directories(target);
        StorageMount mounted(target, ScopedMount::mount(storage.source(), target, fstype, storage_options(storage)));
        apply_fs_group(storage, target);
        return mounted;
      });
}

void write_resolv_conf(const std::vector<std::string>& dns, const std::filesystem::path& resolv_conf) {
  std::string text;
  for (const std::string& entry : dns) {
    if (entry.find_first_of("\n\r") != std::string::npos) {
      fail(Errc::invalid_argument, "dns entry '{}' spans more than one line", entry);
    }
    if (entry.find(' ') == std::string::npos && entry.find('\t') == std::string::npos) text += "nameserver ";
    text += entry;
    text += '\n';
  }
  const std::filesystem::path temporary = resolv_conf.string() + ".kata-new";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) fail(Errc::internal, "write {}", temporary.string());
  }
  std::filesystem::rename(temporary, resolv_conf);
}

}  // namespace kata::agent_guest
