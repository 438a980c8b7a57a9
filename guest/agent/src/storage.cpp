#include "kata/agent_guest/storage.hpp"

#include <sys/stat.h>

#include <fstream>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

std::vector<std::string> storage_options(const grpc::Storage& storage) {
  return {storage.options().begin(), storage.options().end()};
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
  return StorageMount(dir, ScopedMount());
}

}  // namespace

StorageMount mount_storage(const grpc::Storage& storage) {
  return with_context(
      [&] { return fmt::format("storage {} (driver {})", storage.mount_point(), storage.driver()); }, [&] {
        if (storage.mount_point().empty() || storage.mount_point().front() != '/') {
          fail(Errc::invalid_argument, "mount_point '{}' is not an absolute path", storage.mount_point());
        }
        const std::string& driver = storage.driver();
        if (driver == "local") return make_local_directory(storage);
        std::string fstype = storage.fstype();
        if (driver == "9p") {
          if (fstype.empty()) fstype = "9p";
        } else if (driver == "virtio-fs") {
          if (fstype.empty()) fstype = "virtiofs";
        } else if (driver == "ephemeral") {
          if (fstype.empty()) fstype = "tmpfs";
        } else {
          fail(Errc::not_supported, "storage driver '{}' is not supported by this agent (supported: 9p, virtio-fs, "
                                    "ephemeral, local)", driver);
        }
        if (storage.source().empty()) fail(Errc::invalid_argument, "no source");
        const std::filesystem::path target = storage.mount_point();
        std::filesystem::create_directories(target);
        return StorageMount(target, ScopedMount::mount(storage.source(), target, fstype, storage_options(storage)));
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
