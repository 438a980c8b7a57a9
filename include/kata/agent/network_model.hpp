// Addresses and routes as the agent protocol carries them, the one model of both sides: the
// shim's network resource fills it from the pod's namespace, the guest agent applies it and
// reports back. Plain data; the protobuf translation is network_conversion.hpp.
#pragma once

#include <string>

namespace kata::agent {

struct IpAddress {
  int family = 0;              ///< AF_INET or AF_INET6
  std::string address;         ///< "10.88.0.2"
  unsigned prefix_length = 0;  ///< 24
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct NetworkRoute {
  std::string destination;  ///< CIDR ("10.89.0.0/24"); empty for the default route
  std::string gateway;      ///< empty for an on-link route
  std::string device;       ///< the link's name
  std::string source;       ///< preferred source address, may be empty
  unsigned scope = 0;       ///< RT_SCOPE_* (0 = universe)
  int family = 0;           ///< AF_INET / AF_INET6; 0 = from the addresses
  friend bool operator==(const NetworkRoute&, const NetworkRoute&) = default;
};

}  // namespace kata::agent
