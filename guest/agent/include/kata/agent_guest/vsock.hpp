// The agent's vsock listener (upstream's default transport, `vsock://<cid>:1024` on the host).
#pragma once

#include <cstdint>
#include <optional>

#include "kata/core/unique_fd.hpp"

namespace kata::agent_guest {

/// A listening AF_VSOCK stream socket on (VMADDR_CID_ANY, port), or nullopt when the guest has no
/// vsock transport (no device, or the family is not available): the virtio-serial channel is
/// then the only way in, which is not an error. Other failures (port in use) throw kata::Error.
[[nodiscard]] std::optional<UniqueFd> listen_vsock(std::uint32_t port);

}  // namespace kata::agent_guest
