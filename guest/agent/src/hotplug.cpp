#include "kata/agent_guest/hotplug.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "kata/agent_guest/log.hpp"
#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {
namespace {

std::string first_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

bool write_value(const std::filesystem::path& file, std::string_view value) {
  // O_TRUNC means nothing to sysfs, and keeps a fake tree in a test honest.
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  return fd && ::write(fd.get(), value.data(), value.size()) == static_cast<ssize_t>(value.size());
}

bool has_numbered_name(const std::filesystem::path& entry, std::string_view prefix) {
  const std::string name = entry.filename().string();
  return name.size() > prefix.size() && name.starts_with(prefix) &&
         name.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
}

unsigned online_offline_cpus(unsigned wanted, const std::filesystem::path& cpu_dir) {
  unsigned onlined = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(cpu_dir, ec)) {
    if (onlined == wanted) break;
    if (!has_numbered_name(entry.path(), "cpu")) continue;
    const auto online = entry.path() / "online";  // cpu0 usually has none: it cannot go offline
    if (!std::filesystem::exists(online) || first_line(online) != "0") continue;
    if (write_value(online, "1")) {
      ++onlined;
    } else {
      log(LogLevel::warn, "online {}: {}", entry.path().filename().string(), std::strerror(errno));
    }
  }
  return onlined;
}

}  // namespace

unsigned online_cpus(unsigned count, std::chrono::milliseconds timeout, const std::filesystem::path& cpu_dir) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  unsigned onlined = 0;
  for (;;) {
    onlined += online_offline_cpus(count - onlined, cpu_dir);
    if (onlined == count) return onlined;
    if (std::chrono::steady_clock::now() >= deadline) {
      fail(Errc::deadline_exceeded, "onlined {} of {} CPUs within {} ms", onlined, count, timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

unsigned online_memory(const std::filesystem::path& memory_dir) {
  unsigned onlined = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(memory_dir, ec)) {
    if (!has_numbered_name(entry.path(), "memory")) continue;
    const auto state = entry.path() / "state";
    if (first_line(state) != "offline") continue;
    if (write_value(state, "online")) {
      ++onlined;
    } else {
      log(LogLevel::warn, "online {}: {}", entry.path().filename().string(), std::strerror(errno));
    }
  }
  return onlined;
}

}  // namespace kata::agent_guest
