// An in-memory Hypervisor for tests of the sandbox, resource and agent templates: it keeps the
// documented semantics (cold-plug before start, hotplug only with the capability, idempotent
// stop, many waiters, duplicate ids refused) without running a VMM. Failures can be injected.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"
#include "kata/hypervisor/hypervisor.hpp"

namespace kata::testing {

class FakeHypervisor {
 public:
  static constexpr std::string_view name = "fake";
  static constexpr auto capabilities =
      hypervisor::capability_set<hypervisor::capability::block_device, hypervisor::capability::block_device_hotplug,
                                 hypervisor::capability::fs_sharing, hypervisor::capability::cpu_hotplug,
                                 hypervisor::capability::pause_resume>;

  FakeHypervisor(Executor executor, hypervisor::VmContext context)
      : executor_(executor),
        context_(std::move(context)),
        exited_(executor),
        vcpus_(std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::ceil(context_.config.cpu.default_vcpus)))),
        memory_mib_(context_.config.memory.default_memory) {}

  /// Test knobs.
  std::optional<Errc> fail_start;
  std::vector<std::string> cold_plugged;
  std::vector<std::string> hot_plugged;
  /// NICs as given (their tap descriptors stay open, as in a VMM) until removed.
  std::vector<hypervisor::NetworkDevice> network_devices;
  int stop_calls = 0;
  bool paused = false;
  /// Every resize_vcpus / resize_memory argument, in order.
  std::vector<std::uint32_t> vcpu_requests;
  std::vector<std::uint32_t> memory_requests;
  /// Makes the next resizes fail with this code.
  std::optional<Errc> fail_resize;

  Task<void> prepare_vm() { co_return; }

  Task<hypervisor::DeviceAttachment> add_device(hypervisor::Device device) {
    const std::string id = std::visit([](const auto& d) -> std::string {
      if constexpr (requires { d.id; }) return d.id; else return d.mount_tag;
    }, device);
    if (known(id)) fail(Errc::already_exists, "device {} already exists", id);
    if (running_) {
      if (!std::holds_alternative<hypervisor::BlockDevice>(device)) {
        fail(Errc::not_supported, "hotplug of this device kind is not supported by {}", name);
      }
      hot_plugged.push_back(id);
    } else {
      cold_plugged.push_back(id);
    }
    if (auto* nic = std::get_if<hypervisor::NetworkDevice>(&device)) network_devices.push_back(std::move(*nic));
    co_return hypervisor::DeviceAttachment{id, "02/01", ""};
  }

  Task<void> remove_device(std::string_view id) {
    // Before start a device leaves the cold-plug queue (as QEMU's does); after, it is unplugged.
    auto& list = running_ ? hot_plugged : cold_plugged;
    auto it = std::find(list.begin(), list.end(), id);
    if (it == list.end()) fail(Errc::not_found, "device {} not found", id);
    list.erase(it);
    std::erase_if(network_devices, [&](const hypervisor::NetworkDevice& nic) { return nic.id == id; });
    co_return;
  }

  Task<void> start_vm(std::chrono::milliseconds) {
    if (fail_start) fail(*fail_start, "start {} VM {}: injected failure", name, context_.sandbox_id);
    running_ = true;
    co_return;
  }

  Task<void> stop_vm() {
    ++stop_calls;
    if (running_) {
      running_ = false;
      status_ = ExitStatus{0, 9};
      exited_.set();
    }
    co_return;
  }

  /// Simulates the VMM dying on its own (SIGKILL from outside).
  void crash() {
    running_ = false;
    status_ = ExitStatus{0, 9};
    exited_.set();
  }

  Task<ExitStatus> wait_vm() {
    co_await exited_.wait();
    co_return status_;
  }

  Task<void> pause_vm() { paused = true; co_return; }
  Task<void> resume_vm() { paused = false; co_return; }

  /// As QEMU: clamped to [boot vCPUs, default_maxvcpus] (boot vCPUs cannot be unplugged).
  Task<hypervisor::VcpuResize> resize_vcpus(std::uint32_t count) {
    vcpu_requests.push_back(count);
    if (fail_resize) fail(*fail_resize, "resize vCPUs to {}: injected failure", count);
    const auto old = vcpus_;
    const std::uint32_t boot = std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::ceil(context_.config.cpu.default_vcpus)));
    vcpus_ = std::clamp(count, boot, std::max(boot, context_.config.cpu.default_maxvcpus));
    co_return hypervisor::VcpuResize{old, vcpus_};
  }

  /// As QEMU: never below the boot size, at most default_maxmemory; with enable_virtio_mem the
  /// size follows the request both ways, otherwise (pc-dimm) it only grows. Not advertised in
  /// `capabilities`: a test derives a fake that does.
  Task<hypervisor::MemoryResize> resize_memory(std::uint32_t mib) {
    memory_requests.push_back(mib);
    if (fail_resize) fail(*fail_resize, "resize memory to {} MiB: injected failure", mib);
    const auto old = memory_mib_;
    const auto& memory = context_.config.memory;
    const std::uint32_t wanted = std::clamp(mib, memory.default_memory, std::max(memory.default_memory, memory.default_maxmemory));
    memory_mib_ = memory.enable_virtio_mem ? wanted : std::max(old, wanted);
    co_return hypervisor::MemoryResize{old, memory_mib_};
  }

  [[nodiscard]] std::uint32_t vcpus() const { return vcpus_; }
  [[nodiscard]] std::uint32_t memory_mib() const { return memory_mib_; }

  Task<std::map<std::uint32_t, pid_t>> vcpu_thread_ids() { co_return std::map<std::uint32_t, pid_t>{}; }
  Task<void> cleanup() { cleaned_up = true; co_return; }

  [[nodiscard]] hypervisor::AgentAddress agent_address() const {
    if (agent_address_override) return *agent_address_override;
    return hypervisor::SerialPortAddress{context_.state_dir / "agent.sock"};
  }

  /// Where a test's fake agent listens, when not under the state directory.
  std::optional<hypervisor::AgentAddress> agent_address_override;
  [[nodiscard]] bool is_running() const { return running_; }
  [[nodiscard]] pid_t vmm_pid() const { return running_ ? 4242 : -1; }
  [[nodiscard]] std::vector<pid_t> pids() const { return running_ ? std::vector<pid_t>{4242} : std::vector<pid_t>{}; }
  [[nodiscard]] nlohmann::json save_state() const { return {{"hypervisor_type", name}, {"id", context_.sandbox_id}}; }

  bool cleaned_up = false;

 private:
  bool known(const std::string& id) const {
    return std::find(cold_plugged.begin(), cold_plugged.end(), id) != cold_plugged.end() ||
           std::find(hot_plugged.begin(), hot_plugged.end(), id) != hot_plugged.end();
  }

  Executor executor_;
  hypervisor::VmContext context_;
  AsyncEvent exited_;
  ExitStatus status_{};
  bool running_ = false;
  std::uint32_t vcpus_;
  std::uint32_t memory_mib_;
};

}  // namespace kata::testing
