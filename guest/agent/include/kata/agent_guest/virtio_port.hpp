// The agent's end of a virtio-serial port (`-device virtserialport,name=agent.channel.0`).
//
// Semantics that shape this class (host-lab §3a, verified under QEMU 7.2):
//  * the device is /dev/vportNpM; without udev there is no /dev/virtio-ports/<name> link, so the
//    port is found by its name in /sys/class/virtio-ports/*/name;
//  * only one descriptor may have the port open;
//  * while no host is connected to the chardev, read() returns 0 and poll() reports POLLHUP at
//    once, and write() blocks until a host connects. EOF therefore means "host not here (yet or
//    any more)", never "channel gone": the host may connect, disconnect and connect again.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string_view>

#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {

/// The device node of the port called `name`, or nullopt if no such port exists (yet).
/// `sysfs_ports` and `dev` are parameters so tests can point them at a fake tree.
[[nodiscard]] std::optional<std::filesystem::path> find_virtio_port(
    std::string_view name, const std::filesystem::path& sysfs_ports = "/sys/class/virtio-ports",
    const std::filesystem::path& dev = "/dev");

/// Like find_virtio_port, but waits up to `timeout` for the port to appear: the virtio_console
/// driver probes asynchronously after its module loads. Throws kata::Error(not_found) naming the
/// port on timeout.
[[nodiscard]] std::filesystem::path wait_for_virtio_port(
    std::string_view name, std::chrono::milliseconds timeout,
    const std::filesystem::path& sysfs_ports = "/sys/class/virtio-ports", const std::filesystem::path& dev = "/dev");

/// An open port. Move-only; closing releases the port for another opener.
class VirtioPort {
 public:
  /// Opens `device` read-write, non-blocking, close-on-exec. Throws kata::Error on failure.
  static VirtioPort open(const std::filesystem::path& device);

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] const std::filesystem::path& device() const noexcept { return device_; }

  /// True if a host is connected now: poll() reports no POLLHUP.
  [[nodiscard]] bool host_connected() const;

  /// Waits until a host is connected, up to `timeout` (a negative timeout waits forever).
  /// Returns whether one is. Polls at a short interval, because POLLHUP is level-triggered and
  /// poll() cannot wait for it to clear.
  bool wait_for_host(std::chrono::milliseconds timeout) const;

 private:
  VirtioPort(UniqueFd fd, std::filesystem::path device) : fd_(std::move(fd)), device_(std::move(device)) {}

  UniqueFd fd_;
  std::filesystem::path device_;
};

}  // namespace kata::agent_guest
