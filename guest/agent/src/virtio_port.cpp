#include "kata/agent_guest/virtio_port.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

constexpr std::chrono::milliseconds poll_interval{20};

}  // namespace

std::optional<std::filesystem::path> find_virtio_port(std::string_view name, const std::filesystem::path& sysfs_ports,
                                                      const std::filesystem::path& dev) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(sysfs_ports, ec)) {
    std::ifstream in(entry.path() / "name");
    std::string port_name;
    if (!std::getline(in, port_name)) continue;
    if (port_name == name) return dev / entry.path().filename();
  }
  return std::nullopt;
}

std::filesystem::path wait_for_virtio_port(std::string_view name, std::chrono::milliseconds timeout,
                                           const std::filesystem::path& sysfs_ports, const std::filesystem::path& dev) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto port = find_virtio_port(name, sysfs_ports, dev); port && std::filesystem::exists(*port)) return *port;
    if (std::chrono::steady_clock::now() >= deadline) {
      fail(Errc::not_found, "virtio-serial port '{}' did not appear in {} within {} ms", name, sysfs_ports.string(),
           timeout.count());
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

VirtioPort VirtioPort::open(const std::filesystem::path& device) {
  UniqueFd fd(::open(device.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) fail_errno(errno, "open virtio-serial port {}", device.string());
  return VirtioPort(std::move(fd), device);
}

bool VirtioPort::host_connected() const {
  pollfd p{fd_.get(), POLLIN | POLLOUT, 0};
  if (::poll(&p, 1, 0) < 0) fail_errno(errno, "poll {}", device_.string());
  return (p.revents & POLLHUP) == 0;
}

bool VirtioPort::wait_for_host(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (host_connected()) return true;
    if (timeout.count() >= 0 && std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll_interval);
  }
}

}  // namespace kata::agent_guest
