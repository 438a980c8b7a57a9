// The Hypervisor named requirement: what a VMM backend must provide so that the sandbox, resource
// and agent templates can run a pod on it. Each variants/<name>/ binary instantiates the runtime
// for exactly one type satisfying this concept; there is no vtable and no run-time dispatch, and a
// backend missing an operation does not compile (upstream shipped `todo!()` bodies that panicked
// at run time, kata #8784).
//
// ## Hypervisor
//
// A type `H` satisfies Hypervisor if, given
//   - `vm`, an lvalue of `H`; `cvm`, a const lvalue of `H`;
//   - `ex`, an Executor; `ctx`, a `VmContext` rvalue;
//   - `device`, a `Device` rvalue; `id`, a `std::string_view`;
//   - `timeout`, a `std::chrono::milliseconds`; `n`, a `std::uint32_t`,
// the following hold.
//
// | expression | type | semantics |
// |---|---|---|
// | `H::name` | convertible to `std::string_view` | The `[hypervisor.<name>]` section it reads ("qemu"). Used in every error message: "resize memory is not supported by firecracker". |
// | `H::capabilities` | a `capability_set<...>` (Hana set) | What it can do (capabilities.hpp). Sandbox code branches on it with `if constexpr`. |
// | `H(ex, std::move(ctx))` | | Records the context. Starts nothing, opens nothing, cannot fail for I/O reasons. All coroutines of `vm` run on `ex`. |
// | `vm.prepare_vm()` | `Task<void>` | Creates the backend's files under `ctx.state_dir`; launches nothing yet for backends configured before start (QEMU), or launches the VMM process for API-driven ones (CH, FC). Errors: invalid_argument for an unusable config (missing kernel: the error names the path). |
// | `vm.add_device(std::move(device))` | `Task<DeviceAttachment>` | Before start: queues the device for cold-plug. After start: hotplugs it, or fails with not_supported naming the device kind and `H::name`. Takes ownership of descriptors inside `device`. Ids are unique per sandbox; a repeated id fails with already_exists (upstream duplicated QMP node names, kata #11649). |
// | `vm.remove_device(id)` | `Task<void>` | Hot-unplugs; not_found for an unknown id; not_supported where the backend cannot. |
// | `vm.start_vm(timeout)` | `Task<void>` | Boots the VM and completes when the VMM accepts control requests. On any failure (including the deadline) everything it started is killed and reaped before the error propagates; the object may then be cleaned up or destroyed. |
// | `vm.stop_vm()` | `Task<void>` | Stops the VMM and completes once it has exited and been reaped. Idempotent and safe when called concurrently or repeatedly (the CRI sends repeated shutdowns); never throws for "already stopped". |
// | `vm.wait_vm()` | `Task<ExitStatus>` | Completes when the VMM exits for any reason, noticed at once (no polling). Any number of concurrent waiters; after exit, returns immediately. |
// | `vm.pause_vm()`, `vm.resume_vm()` | `Task<void>` | Pause/resume all vCPUs; not_supported where impossible. |
// | `vm.resize_vcpus(n)` | `Task<VcpuResize>` | Hotplugs/unplugs to `n` online-able vCPUs, clamped to default_maxvcpus; returns old and new counts. The guest must still online them (agent OnlineCPUMem). |
// | `vm.resize_memory(n)` | `Task<MemoryResize>` | Grows guest memory to `n` MiB (never below the boot size), aligned to the guest block size; not_supported where impossible. |
// | `vm.vcpu_thread_ids()` | `Task<std::map<std::uint32_t, pid_t>>` | vCPU index to host thread id, for cgroup placement and pinning. |
// | `vm.cleanup()` | `Task<void>` | Releases everything the backend created on the host (files under state_dir, sockets, helper processes). Idempotent; best effort past individual failures, which it logs. Called after stop_vm, also after a failed start. |
// | `cvm.agent_address()` | `AgentAddress` | How the host reaches the agent. Valid after construction (the address is planned, not probed). |
// | `cvm.is_running()` | `bool` | The VMM process is alive (false before start and after exit). |
// | `cvm.vmm_pid()` | `pid_t` | The VMM's pid, the "task pid" reported to containerd; -1 before start. |
// | `cvm.pids()` | `std::vector<pid_t>` | All host processes of this VM (VMM and helpers). |
// | `cvm.save_state()` | `nlohmann::json` | What `shim delete` needs to clean up after a dead shim (persist's "hypervisor" object). |
//
// Threading: all members are called on the executor given at construction; none may block it
// (long waits are awaited, short syscalls are fine). Ownership: the backend owns every process,
// descriptor and file it creates until cleanup(); destroying an `H` kills and reaps what it still
// owns (RAII), but leaves files for cleanup().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kata/core/asio.hpp"
#include "kata/core/child_process.hpp"
#include "kata/hypervisor/capabilities.hpp"
#include "kata/hypervisor/vm.hpp"

namespace kata::hypervisor {

template <class H>
concept Hypervisor =
    std::constructible_from<H, Executor, VmContext> &&
    requires {
      { H::name } -> std::convertible_to<std::string_view>;
      requires is_capability_set<std::remove_cvref_t<decltype(H::capabilities)>>;
    } &&
    requires(H& vm, const H& cvm, Device device, std::string_view id, std::chrono::milliseconds timeout,
             std::uint32_t n) {
      { vm.prepare_vm() } -> std::same_as<Task<void>>;
      { vm.add_device(std::move(device)) } -> std::same_as<Task<DeviceAttachment>>;
      { vm.remove_device(id) } -> std::same_as<Task<void>>;
      { vm.start_vm(timeout) } -> std::same_as<Task<void>>;
      { vm.stop_vm() } -> std::same_as<Task<void>>;
      { vm.wait_vm() } -> std::same_as<Task<ExitStatus>>;
      { vm.pause_vm() } -> std::same_as<Task<void>>;
      { vm.resume_vm() } -> std::same_as<Task<void>>;
      { vm.resize_vcpus(n) } -> std::same_as<Task<VcpuResize>>;
      { vm.resize_memory(n) } -> std::same_as<Task<MemoryResize>>;
      { vm.vcpu_thread_ids() } -> std::same_as<Task<std::map<std::uint32_t, pid_t>>>;
      { vm.cleanup() } -> std::same_as<Task<void>>;
      { cvm.agent_address() } -> std::same_as<AgentAddress>;
      { cvm.is_running() } -> std::same_as<bool>;
      { cvm.vmm_pid() } -> std::same_as<pid_t>;
      { cvm.pids() } -> std::same_as<std::vector<pid_t>>;
      { cvm.save_state() } -> std::same_as<nlohmann::json>;
    };

}  // namespace kata::hypervisor
