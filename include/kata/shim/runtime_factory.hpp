// How the shim obtains a runtime: the second seam of the shim, next to TaskRuntime.
//
// The shim binary protocol (shim.hpp) and the TaskService (task_service.hpp) are templates on a
// RuntimeFactory. A variant's main() names its factory once (`kata::shim::run<QemuFactory>`); the
// service never knows which hypervisor or runtime it drives.
//
// ## RuntimeFactory
//
// A type `F` satisfies RuntimeFactory if, given `executor` (kata::Executor), `setup`
// (SandboxSetup) and `context` (const DeleteContext&):
//
// | expression | type | semantics |
// |---|---|---|
// | `typename F::runtime_type` | a type satisfying kata::runtime::TaskRuntime | The runtime the service drives. |
// | `F::create(executor, std::move(setup))` | `Task<std::unique_ptr<F::runtime_type>>` | Builds the runtime for one sandbox (configuration found from `setup.config_path`, sizing, hypervisor...). Called by the TaskService on the first Create, before that Create's `create_container`. Must not boot anything that the first `create_container` would not: when that call fails, the service calls `shutdown()` and drops the runtime, and the next Create starts over. The returned runtime runs every coroutine on `executor`. Throws kata::Error with a context chain (the message reaches containerd verbatim). |
// | `F::cleanup_after_dead_shim(context)` | `Task<void>` | `shim delete`: releases whatever a dead shim of sandbox `context.sandbox_id` left on the host (VMM and helper processes, mounts, network, cgroups, /run/kata/<id>), using persisted state only. Idempotent: succeeds when everything is already gone. Runs in the short-lived delete process on an io_context of its own; the caller keeps `context` alive until the task completes and stops waiting after a few seconds (containerd gives `delete` 5 s). Errors are logged by the caller and never change what `delete` prints. |
//
// Lifetimes: `setup` is owned by the runtime once passed. `setup.on_oom` may be called by the
// runtime any number of times, on the runtime's executor, until `shutdown()` completed.
#pragma once

#include <concepts>
#include <filesystem>
#include <memory>
#include <string>

#include "kata/core/asio.hpp"
#include "kata/runtime/task_runtime.hpp"

namespace kata::shim {

/// What a runtime knows about its sandbox when the first Create arrives.
struct SandboxSetup {
  /// The shim's -id: the pod sandbox container's id, or the single container's id.
  std::string sandbox_id;
  /// Bundle directory of the first container (holds config.json).
  std::filesystem::path bundle;
  /// containerd namespace (-namespace).
  std::string namespace_name;
  /// runtimeoptions.v1.Options.config_path (CreateTaskRequest.options, else what `start` read
  /// on stdin); empty when containerd gave none.
  std::string config_path;
  /// Reports an OOM kill in a container; the service publishes /tasks/oom.
  runtime::OomHandler on_oom;
};

/// What `shim delete` knows about a sandbox whose shim is gone.
struct DeleteContext {
  std::string sandbox_id;
  std::filesystem::path bundle;
  std::string namespace_name;
};

template <class F>
concept RuntimeFactory = requires(Executor executor, SandboxSetup setup, const DeleteContext& context) {
  typename F::runtime_type;
  requires runtime::TaskRuntime<typename F::runtime_type>;
  { F::create(executor, std::move(setup)) } -> std::same_as<Task<std::unique_ptr<typename F::runtime_type>>>;
  { F::cleanup_after_dead_shim(context) } -> std::same_as<Task<void>>;
};

}  // namespace kata::shim
