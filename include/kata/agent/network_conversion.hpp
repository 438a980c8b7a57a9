// The agent protocol's network messages (kata/types.proto: IPAddress, Route) to and from the
// model both sides keep (network_model.hpp). Compiled into the shim's network resource and the
// guest agent (the static guest agent must not link the host's kata_agent, as with
// oci_conversion).
#pragma once

#include "kata/agent/network_model.hpp"
#include "kata/types.pb.h"

namespace kata::agent {

[[nodiscard]] types::IPAddress to_proto(const IpAddress& address);
/// Throws kata::Error (invalid_argument) for an empty address or a mask that is no prefix length.
[[nodiscard]] IpAddress from_proto(const types::IPAddress& address);

[[nodiscard]] types::Route to_proto(const NetworkRoute& route);
/// Throws kata::Error (invalid_argument) for a route that names no device.
[[nodiscard]] NetworkRoute from_proto(const types::Route& route);

}  // namespace kata::agent
