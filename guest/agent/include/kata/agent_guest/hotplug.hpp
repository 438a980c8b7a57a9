// OnlineCPUMem: bringing hot-added vCPUs and memory online in the guest.
//
// The Debian kernel leaves hot-added memory offline (no MEMORY_HOTPLUG_DEFAULT_ONLINE), and a
// vCPU added through QMP appears in sysfs asynchronously (ACPI), some time after the RPC that
// announced it; so CPUs are waited for, memory blocks are onlined as found.
#pragma once

#include <chrono>
#include <filesystem>

namespace kata::agent_guest {

/// Onlines offline CPUs (cpuN/online containing 0) until `count` have been onlined, retrying for
/// up to `timeout` while fewer are present. Returns how many were onlined. Throws
/// Errc::deadline_exceeded ("onlined 1 of 2 CPUs within 5000 ms") if it cannot reach `count`.
unsigned online_cpus(unsigned count, std::chrono::milliseconds timeout,
                     const std::filesystem::path& cpu_dir = "/sys/devices/system/cpu");

/// Onlines every offline memory block (memoryN/state "offline"). Returns how many were onlined;
/// a block the kernel refuses is skipped (it stays offline, as upstream leaves it).
unsigned online_memory(const std::filesystem::path& memory_dir = "/sys/devices/system/memory");

}  // namespace kata::agent_guest
