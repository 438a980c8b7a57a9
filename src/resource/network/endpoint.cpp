#include "kata/resource/network/endpoint.hpp"

// <net/if.h> before any <linux/...> header: glibc then keeps <linux/if.h> from redefining ifreq.
#include <net/if.h>
#include <net/if_arp.h>
#include <linux/ethtool.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <netlink/route/addr.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/log/log.hpp"
#include "kata/resource/network/netns.hpp"
#include "resource/network/netlink.hpp"

namespace kata::resource::network {
namespace {

using detail::Cache;
using detail::fail_nl;
using detail::to_text;

constexpr std::string_view supported_kinds = "veth, ipvlan, macvlan, vlan, tap, physical";

/// The driver's bus_info (ethtool -i), empty when the driver reports none or has no ethtool ops.
std::string bus_info_of(int socket, const std::string& name) {
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  request.ifr_data = reinterpret_cast<char*>(&info);
  if (::ioctl(socket, SIOCETHTOOL, &request) != 0) {
    if (errno == EOPNOTSUPP || errno == ENOTSUP) return {};
    fail_errno(errno, "ethtool driver info of {}", name);
  }
  return std::string(info.bus_info, strnlen(info.bus_info, sizeof info.bus_info));
}

struct Dumps {
  Cache links, addresses, routes, neighbors;
};

Dumps dump_all(nl_sock* socket) {
  Dumps dumps;
  dumps.links = detail::link_cache(socket);
  nl_cache* cache = nullptr;
  if (const int rc = rtnl_addr_alloc_cache(socket, &cache); rc < 0) fail_nl(rc, "list addresses");
  dumps.addresses.reset(cache);
  cache = nullptr;
  if (const int rc = rtnl_route_alloc_cache(socket, AF_UNSPEC, 0, &cache); rc < 0) fail_nl(rc, "list routes");
  dumps.routes.reset(cache);
  cache = nullptr;
  if (const int rc = rtnl_neigh_alloc_cache(socket, &cache); rc < 0) fail_nl(rc, "list neighbours");
  dumps.neighbors.reset(cache);
  return dumps;
}

/// The addresses of a link the guest should get; `any` tells whether the link counts as configured.
struct LinkAddresses {
  bool any = false;
  std::vector<IpAddress> for_guest;
};

LinkAddresses addresses_of(nl_cache* addresses, int ifindex) {
  LinkAddresses out;
  for (nl_object* o = nl_cache_get_first(addresses); o != nullptr; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    const int family = rtnl_addr_get_family(a);
    if (rtnl_addr_get_ifindex(a) != ifindex || (family != AF_INET && family != AF_INET6)) continue;
    if (rtnl_addr_get_scope(a) == RT_SCOPE_HOST) continue;  // loopback addresses
    // The kernel gives every IPv6 link that is up a link-local address; it configures nothing,
    // and the guest kernel derives the same one from the same MAC.
    if (family == AF_INET6 && rtnl_addr_get_scope(a) == RT_SCOPE_LINK) continue;
    out.any = true;
    out.for_guest.push_back(IpAddress{family, to_text(rtnl_addr_get_local(a), false),
                                      static_cast<unsigned>(rtnl_addr_get_prefixlen(a))});
  }
  return out;
}

std::vector<Route> routes_of(nl_cache* routes, int ifindex, const std::string& device) {
  std::vector<Route> out;
  for (nl_object* o = nl_cache_get_first(routes); o != nullptr; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    // The kernel's own prefix routes come back in the guest when its addresses are set; the
    // local and broadcast tables are the kernel's too.
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST) continue;
    if (rtnl_route_get_protocol(r) == RTPROT_KERNEL || rtnl_route_get_nnexthops(r) != 1) continue;
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    if (rtnl_route_nh_get_ifindex(nh) != ifindex) continue;
    Route route;
    nl_addr* dst = rtnl_route_get_dst(r);
    if (dst != nullptr && nl_addr_get_prefixlen(dst) != 0) route.destination = to_text(dst, true);
    route.gateway = to_text(rtnl_route_nh_get_gateway(nh), false);
    route.device = device;
    route.source = to_text(rtnl_route_get_pref_src(r), false);
    route.scope = rtnl_route_get_scope(r);
    route.family = rtnl_route_get_family(r);
    out.push_back(std::move(route));
  }
  return out;
}

std::vector<Neighbor> neighbors_of(nl_cache* neighbors, int ifindex, const std::string& device) {
  std::vector<Neighbor> out;
  for (nl_object* o = nl_cache_get_first(neighbors); o != nullptr; o = nl_cache_get_next(o)) {
    auto* n = reinterpret_cast<rtnl_neigh*>(o);
    if (rtnl_neigh_get_ifindex(n) != ifindex || (rtnl_neigh_get_state(n) & NUD_PERMANENT) == 0) continue;
    nl_addr* dst = rtnl_neigh_get_dst(n);
    if (dst == nullptr || (nl_addr_get_family(dst) != AF_INET && nl_addr_get_family(dst) != AF_INET6)) continue;
    const std::string mac = to_text(rtnl_neigh_get_lladdr(n), false);
    if (mac.empty()) continue;
    out.push_back(Neighbor{to_text(dst, false), device, mac, rtnl_neigh_get_state(n),
                           static_cast<int>(rtnl_neigh_get_flags(n))});
  }
  return out;
}

}  // namespace

std::string_view to_string(EndpointKind kind) noexcept {
  switch (kind) {
    case EndpointKind::veth: return "veth";
    case EndpointKind::ipvlan: return "ipvlan";
    case EndpointKind::macvlan: return "macvlan";
    case EndpointKind::vlan: return "vlan";
    case EndpointKind::tap: return "tap";
    case EndpointKind::physical: return "physical";
  }
  return "unknown";
}

EndpointKind classify_link(std::string_view name, std::string_view kind, unsigned arp_type, std::string_view bus_info) {
  // A PCI function ("0000:3b:00.0") is a host NIC, whatever its driver calls its links.
  if (std::count(bus_info.begin(), bus_info.end(), ':') == 2) return EndpointKind::physical;
  // No kind: a plain device whose driver registers none (mlx5 scalable functions, ...).
  if (kind.empty() || kind == "veth") return EndpointKind::veth;
  if (kind == "vlan") return EndpointKind::vlan;
  if (kind == "ipvlan") return EndpointKind::ipvlan;
  if (kind == "macvlan") return EndpointKind::macvlan;
  if (kind == "tun") {
    if (arp_type == ARPHRD_ETHER) return EndpointKind::tap;
    fail(Errc::not_supported, "link '{}' is a layer-3 tun device, which is not supported (supported: {})", name,
         supported_kinds);
  }
  fail(Errc::not_supported, "link '{}' has type '{}', which is not supported (supported: {})", name, kind,
       supported_kinds);
}

std::vector<Endpoint> scan_endpoints(const NetworkNamespace& netns) {
  return with_context([&] { return fmt::format("scan network namespace {}", netns.path().string()); }, [&] {
    return netns.run([] {
      const detail::Socket socket = detail::open_route_socket();
      const Dumps dumps = dump_all(socket.get());
      UniqueFd ioctl_socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      if (!ioctl_socket) fail_errno(errno, "open an ioctl socket");

      std::vector<Endpoint> endpoints;
      for (nl_object* o = nl_cache_get_first(dumps.links.get()); o != nullptr; o = nl_cache_get_next(o)) {
        auto* link = reinterpret_cast<rtnl_link*>(o);
        if ((rtnl_link_get_flags(link) & IFF_LOOPBACK) != 0) continue;
        const int ifindex = rtnl_link_get_ifindex(link);
        LinkAddresses addresses = addresses_of(dumps.addresses.get(), ifindex);
        // Base tunnel devices (sit0, gre0, ...) and links nobody configured.
        if (!addresses.any) continue;

        Endpoint endpoint;
        endpoint.name = rtnl_link_get_name(link);
        endpoint.ifindex = ifindex;
        const char* kind = rtnl_link_get_type(link);
        endpoint.link_kind = kind != nullptr ? kind : "";
        const std::string bus_info = bus_info_of(ioctl_socket.get(), endpoint.name);
        endpoint.kind = classify_link(endpoint.name, endpoint.link_kind, rtnl_link_get_arptype(link), bus_info);
        if (endpoint.kind == EndpointKind::physical) endpoint.pci_address = bus_info;
        endpoint.index = static_cast<std::uint32_t>(endpoints.size());
        endpoint.mac = to_text(rtnl_link_get_addr(link), false);
        endpoint.mtu = rtnl_link_get_mtu(link);
        endpoint.noarp = (rtnl_link_get_flags(link) & IFF_NOARP) != 0;
        endpoint.addresses = std::move(addresses.for_guest);
        endpoint.routes = routes_of(dumps.routes.get(), ifindex, endpoint.name);
        endpoint.neighbors = neighbors_of(dumps.neighbors.get(), ifindex, endpoint.name);
        endpoints.push_back(std::move(endpoint));
      }
      return endpoints;
    });
  });
}

}  // namespace kata::resource::network
