// VirtContainer, the runtime policy a variant binary instantiates: a RuntimeFactory (the shim's
// seam, kata/shim/runtime_factory.hpp) that builds a VirtSandbox<H, T> from the first
// container's config.json and the Kata configuration, and cleans up after a dead shim.
//
// What create() decides, in upstream's order (runtime-rs-facts §1.3): which configuration file
// (KATA_CONF_FILE, the runtime option config_path, the default list), annotation overrides
// (gated by enable_annotations), static sizing from the CRI annotations (pod) or linux.resources
// (single container), the pod's network namespace, hostname.
#pragma once

#include <filesystem>
#include <memory>

#include "kata/agent/transport.hpp"
#include "kata/hypervisor/hypervisor.hpp"
#include "kata/runtime/virt_sandbox.hpp"
#include "kata/shim/runtime_factory.hpp"

namespace kata::runtime {

/// Non-template parts of VirtContainer (src/runtime/virt_container.cpp).
namespace virt_container {

/// Loads and sizes the configuration for a sandbox whose first container's spec is `spec`, and
/// fills the sandbox settings. Throws with a chain naming the file, key or annotation at fault.
[[nodiscard]] VirtSandboxSettings settings_for(const shim::SandboxSetup& setup, const oci::Spec& spec,
                                               std::string_view hypervisor_name);

/// shim delete after the serving shim died: kills the processes state.json recorded (only if
/// they are still the same processes), unmounts what remains under the sandbox's shared
/// directory and the bundle's rootfs, and removes the sandbox's directories. Idempotent.
void cleanup_after_dead_shim(const shim::DeleteContext& context, const std::filesystem::path& state_root,
                             const std::filesystem::path& shared_root);

}  // namespace virt_container

template <hypervisor::Hypervisor H, agent::AgentTransport T>
struct VirtContainerFactory {
  using runtime_type = VirtSandbox<H, T>;

  static Task<std::unique_ptr<runtime_type>> create(Executor executor, shim::SandboxSetup setup) {
    const oci::Spec spec = with_context(fmt::format("create sandbox {}", setup.sandbox_id),
                                        [&] { return oci::load_spec(setup.bundle / "config.json"); });
    VirtSandboxSettings settings = with_context(fmt::format("create sandbox {}", setup.sandbox_id),
                                                [&] { return virt_container::settings_for(setup, spec, H::name); });
    co_return std::make_unique<runtime_type>(executor, std::move(settings));
  }

  static Task<void> cleanup_after_dead_shim(const shim::DeleteContext& context) {
    virt_container::cleanup_after_dead_shim(context, "/run/kata", resource::host_shared_root);
    co_return;
  }
};

}  // namespace kata::runtime
