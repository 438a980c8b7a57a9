#include "kata/agent/network_conversion.hpp"

#include <sys/socket.h>

#include <exception>

#include "kata/core/error.hpp"

namespace kata::agent {

types::IPAddress to_proto(const IpAddress& address) {
  types::IPAddress out;
  out.set_family(address.family == AF_INET6 ? types::v6 : types::v4);
  out.set_address(address.address);
  out.set_mask(std::to_string(address.prefix_length));
  return out;
}

IpAddress from_proto(const types::IPAddress& address) {
  IpAddress out;
  out.family = address.family() == types::v6 ? AF_INET6 : AF_INET;
  out.address = address.address();
  if (out.address.empty()) fail(Errc::invalid_argument, "IP address is empty");
  const std::string& mask = address.mask();
  unsigned prefix = out.family == AF_INET6 ? 128 : 32;
  if (!mask.empty()) {
    std::size_t used = 0;
    unsigned long value = 0;
    try {
      value = std::stoul(mask, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != mask.size() || value > prefix) {
      fail(Errc::invalid_argument, "address {}: mask '{}' is not a prefix length (0-{})", out.address, mask, prefix);
    }
    prefix = static_cast<unsigned>(value);
  }
  out.prefix_length = prefix;
  return out;
}

types::Route to_proto(const NetworkRoute& route) {
  types::Route out;
  out.set_dest(route.destination);
  out.set_gateway(route.gateway);
  out.set_device(route.device);
  out.set_source(route.source);
  out.set_scope(route.scope);
  out.set_family(route.family == AF_INET6 ? types::v6 : types::v4);
  return out;
}

NetworkRoute from_proto(const types::Route& route) {
  NetworkRoute out;
  out.destination = route.dest();
  out.gateway = route.gateway();
  out.device = route.device();
  out.source = route.source();
  out.scope = route.scope();
  const bool v6 = route.family() == types::v6 || route.dest().find(':') != std::string::npos ||
                  route.gateway().find(':') != std::string::npos;
  out.family = v6 ? AF_INET6 : AF_INET;
  if (out.device.empty()) fail(Errc::invalid_argument, "route to '{}' names no device", route.dest());
  return out;
}

}  // namespace kata::agent
