// The links of a pod's network namespace that its VM takes over (upstream's endpoints), found by
// scanning the namespace over rtnetlink as upstream's get_entity_from_netns does
// (runtime-rs-facts §8):
//
//   - loopback links are skipped, and so are links without an IP address (tunnel base devices
//     such as sit0, links a CNI plugin has not configured); the IPv6 link-local address the
//     kernel gives every link that is up does not count (upstream counts it, and so takes the
//     far end of a veth pair left in the namespace, which nobody configured, for an endpoint);
//   - every other link becomes an endpoint, numbered in dump order from 0 (its tap is
//     tap<index>_kata);
//   - a link whose driver reports a PCI bus address (ethtool bus_info "0000:3b:00.0") is a
//     physical endpoint; otherwise the link kind decides: veth and kind-less devices (mlx5
//     scalable functions) -> veth, vlan, ipvlan, macvlan, and tun devices in tap mode -> tap.
//     Anything else (bridge, a layer-3 tun, vxlan, ...) is refused with an error naming the link
//     and its type.
//
// For each endpoint the scan records what the guest must be given: its addresses (IPv6
// link-local ones excepted: the guest kernel derives the same one from the same MAC), the routes
// through it that are not the kernel's own prefix routes, and its permanent ARP neighbours.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kata/agent/network_model.hpp"

namespace kata::resource::network {

class NetworkNamespace;

enum class EndpointKind { veth, ipvlan, macvlan, vlan, tap, physical };

/// "veth", "ipvlan", "macvlan", "vlan", "tap", "physical".
[[nodiscard]] std::string_view to_string(EndpointKind kind) noexcept;

// Addresses and routes as the agent protocol carries them (one model with the guest agent).
using IpAddress = agent::IpAddress;
using Route = agent::NetworkRoute;

struct Neighbor {
  std::string ip_address;
  std::string device;
  std::string mac;
  int state = 0;  ///< NUD_* (only NUD_PERMANENT entries are taken)
  int flags = 0;
  friend bool operator==(const Neighbor&, const Neighbor&) = default;
};

struct Endpoint {
  EndpointKind kind = EndpointKind::veth;
  /// Position among the namespace's endpoints; names the tap (tap<index>_kata).
  std::uint32_t index = 0;
  std::string name;        ///< the link in the pod namespace ("eth0")
  int ifindex = 0;         ///< in the pod namespace
  std::string link_kind;   ///< IFLA_INFO_KIND as reported ("veth", "" for none)
  std::string mac;         ///< the link's MAC: the guest NIC gets it, so the CNI network sees it
  std::uint32_t mtu = 0;
  bool noarp = false;      ///< IFF_NOARP on the link (the guest link gets it too)
  std::string pci_address; ///< physical endpoints: the PCI function ("0000:3b:00.0")
  std::vector<IpAddress> addresses;
  std::vector<Route> routes;
  std::vector<Neighbor> neighbors;
};

/// How a link is classified (the rules above), from what netlink and ethtool report: its
/// IFLA_INFO_KIND (`kind`, empty when absent), its ARPHRD_* hardware type and its driver's
/// bus_info. Errors: not_supported "link '<name>' has type '<kind>', which is not supported
/// (supported: veth, ipvlan, macvlan, vlan, tap, physical)", or, for a tun device in tun mode,
/// "link '<name>' is a layer-3 tun device ...".
[[nodiscard]] EndpointKind classify_link(std::string_view name, std::string_view kind, unsigned arp_type,
                                         std::string_view bus_info);

/// Scans `netns` (the rules at the top of this file). Runs its netlink and ethtool requests on a
/// thread inside the namespace and blocks the caller for the few milliseconds that takes.
/// Errors: netlink failures naming the dump; classify_link's errors, wrapped with
/// "scan network namespace <path>". Nothing is created, so nothing needs undoing.
[[nodiscard]] std::vector<Endpoint> scan_endpoints(const NetworkNamespace& netns);

}  // namespace kata::resource::network
