// The qemu variant: QEMU (KVM where /dev/kvm is usable, TCG otherwise), the VirtContainer runtime,
// and the agent reached over vhost-vsock or, where the host has no vhost-vsock, a virtio-serial
// port. Everything variant-specific is these three type names.
#pragma once

#include "kata/agent/transport.hpp"
#include "kata/hypervisor/qemu/qemu.hpp"
#include "kata/runtime/virt_container.hpp"

namespace kata::variants::qemu {

using Hypervisor = hypervisor::qemu::Qemu;
using AgentTransports = agent::AnyTransport<agent::VsockTransport, agent::SerialPortTransport>;
using Factory = runtime::VirtContainerFactory<Hypervisor, AgentTransports>;

}  // namespace kata::variants::qemu

// Instantiated once, in instantiation.cpp; main.cpp only refers to it.
extern template class kata::runtime::VirtSandbox<kata::variants::qemu::Hypervisor, kata::variants::qemu::AgentTransports>;
