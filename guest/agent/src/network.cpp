#include "kata/agent_guest/network.hpp"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>

#include <algorithm>
#include <set>

#include "kata/core/error.hpp"
#include "kata/core/netlink.hpp"

namespace kata::agent_guest {
namespace {

using ::kata::netlink::Addr;
using ::kata::netlink::Cache;
using ::kata::netlink::fail_nl;
using ::kata::netlink::Link;
using ::kata::netlink::link_cache;
using ::kata::netlink::Neigh;
using ::kata::netlink::NlAddr;
using ::kata::netlink::Route;
using ::kata::netlink::to_text;

NlAddr parse_address(const std::string& text, int family, std::string_view what) {
  nl_addr* parsed = nullptr;
  if (const int rc = nl_addr_parse(text.c_str(), family, &parsed); rc < 0) {
    fail(Errc::invalid_argument, "{} '{}' is not a valid address", what, text);
  }
  return NlAddr(parsed);
}

int family_of(const std::string& address) { return address.find(':') != std::string::npos ? AF_INET6 : AF_INET; }

Cache address_cache(nl_sock* socket) {
  nl_cache* cache = nullptr;
  if (const int rc = rtnl_addr_alloc_cache(socket, &cache); rc < 0) fail_nl(rc, "list addresses");
  return Cache(cache);
}

Cache route_cache(nl_sock* socket) {
  nl_cache* cache = nullptr;
  if (const int rc = rtnl_route_alloc_cache(socket, AF_UNSPEC, 0, &cache); rc < 0) fail_nl(rc, "list routes");
  return Cache(cache);
}

int ifindex_of(nl_cache* links, const std::string& device) {
  const int index = rtnl_link_name2i(links, device.c_str());
  if (index <= 0) fail(Errc::not_found, "no network device named '{}'", device);
  return index;
}

std::vector<IpAddress> addresses_of(nl_cache* addresses, int ifindex) {
  std::vector<IpAddress> out;
  for (nl_object* o = nl_cache_get_first(addresses); o != nullptr; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex) continue;
    out.push_back(IpAddress{rtnl_addr_get_family(a), to_text(rtnl_addr_get_local(a), false),
                            static_cast<unsigned>(rtnl_addr_get_prefixlen(a))});
  }
  return out;
}

NetworkInterface describe_link(rtnl_link* link, nl_cache* addresses) {
  NetworkInterface out;
  out.name = rtnl_link_get_name(link);
  out.hw_address = to_text(rtnl_link_get_addr(link), false);
  out.mtu = rtnl_link_get_mtu(link);
  out.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
  out.addresses = addresses_of(addresses, rtnl_link_get_ifindex(link));
  return out;
}

}  // namespace

void Netlink::SocketDeleter::operator()(nl_sock* socket) const noexcept { nl_socket_free(socket); }

Netlink Netlink::open() {
  std::unique_ptr<nl_sock, SocketDeleter> socket(nl_socket_alloc());
  if (!socket) fail(Errc::resource_exhausted, "allocate netlink socket");
  if (const int rc = nl_connect(socket.get(), NETLINK_ROUTE); rc < 0) fail_nl(rc, "connect rtnetlink");
  return Netlink(std::move(socket));
}

std::vector<NetworkInterface> Netlink::list_interfaces() {
  const Cache links = link_cache(socket_.get());
  const Cache addresses = address_cache(socket_.get());
  std::vector<NetworkInterface> out;
  for (nl_object* o = nl_cache_get_first(links.get()); o != nullptr; o = nl_cache_get_next(o)) {
    out.push_back(describe_link(reinterpret_cast<rtnl_link*>(o), addresses.get()));
  }
  return out;
}

NetworkInterface Netlink::update_interface(const NetworkInterface& wanted) {
  return with_context([&] { return fmt::format("update interface {} ({})", wanted.name, wanted.hw_address); }, [&] {
    nl_sock* sock = socket_.get();
    const Cache links = link_cache(sock);
    rtnl_link* current = nullptr;
    for (nl_object* o = nl_cache_get_first(links.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* link = reinterpret_cast<rtnl_link*>(o);
      if (!wanted.hw_address.empty() && strcasecmp(to_text(rtnl_link_get_addr(link), false).c_str(),
                                                   wanted.hw_address.c_str()) == 0) {
        current = link;
      }
    }
    if (current == nullptr) fail(Errc::not_found, "no link has hardware address '{}'", wanted.hw_address);
    const int ifindex = rtnl_link_get_ifindex(current);

    // A link must be down to be renamed.
    Link down(rtnl_link_alloc());
    rtnl_link_unset_flags(down.get(), IFF_UP);
    if (const int rc = rtnl_link_change(sock, current, down.get(), 0); rc < 0) fail_nl(rc, "set link down");
    Link change(rtnl_link_alloc());
    if (!wanted.name.empty() && wanted.name != rtnl_link_get_name(current)) rtnl_link_set_name(change.get(), wanted.name.c_str());
    if (wanted.mtu != 0) rtnl_link_set_mtu(change.get(), static_cast<unsigned>(wanted.mtu));
    rtnl_link_set_flags(change.get(), IFF_UP);
    if (const int rc = rtnl_link_change(sock, current, change.get(), 0); rc < 0) fail_nl(rc, "rename/set MTU/set up");

    const Cache addresses = address_cache(sock);
    for (nl_object* o = nl_cache_get_first(addresses.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* a = reinterpret_cast<rtnl_addr*>(o);
      if (rtnl_addr_get_ifindex(a) != ifindex) continue;
      // IPv6 link-local addresses belong to the kernel; the runtime never sends them.
      if (rtnl_addr_get_family(a) == AF_INET6 && rtnl_addr_get_scope(a) == RT_SCOPE_LINK) continue;
      if (const int rc = rtnl_addr_delete(sock, a, 0); rc < 0) fail_nl(rc, "remove address " + to_text(rtnl_addr_get_local(a), true));
    }
    for (const IpAddress& ip : wanted.addresses) {
      const int family = ip.family != 0 ? ip.family : family_of(ip.address);
      NlAddr local = parse_address(ip.address, family, "interface address");
      nl_addr_set_prefixlen(local.get(), static_cast<int>(ip.prefix_length));
      Addr address(rtnl_addr_alloc());
      rtnl_addr_set_ifindex(address.get(), ifindex);
      rtnl_addr_set_family(address.get(), family);
      if (const int rc = rtnl_addr_set_local(address.get(), local.get()); rc < 0) fail_nl(rc, "address " + ip.address);
      if (const int rc = rtnl_addr_add(sock, address.get(), 0); rc < 0) {
        fail_nl(rc, fmt::format("add address {}/{}", ip.address, ip.prefix_length));
      }
    }
    const Cache updated_links = link_cache(sock);
    const Cache updated_addresses = address_cache(sock);
    rtnl_link* result = rtnl_link_get(updated_links.get(), ifindex);
    if (result == nullptr) fail(Errc::not_found, "link {} vanished", ifindex);
    const Link hold(result);
    return describe_link(result, updated_addresses.get());
  });
}

std::vector<NetworkRoute> Netlink::list_routes() {
  const Cache links = link_cache(socket_.get());
  const Cache routes = route_cache(socket_.get());
  std::vector<NetworkRoute> out;
  for (nl_object* o = nl_cache_get_first(routes.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_nnexthops(r) == 0) continue;
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    NetworkRoute route;
    nl_addr* dst = rtnl_route_get_dst(r);
    if (dst != nullptr && nl_addr_get_prefixlen(dst) != 0) route.destination = to_text(dst, true);
    route.gateway = to_text(rtnl_route_nh_get_gateway(nh), false);
    char name[IF_NAMESIZE] = {};
    rtnl_link_i2name(links.get(), rtnl_route_nh_get_ifindex(nh), name, sizeof name);
    route.device = name;
    route.source = to_text(rtnl_route_get_pref_src(r), false);
    route.scope = rtnl_route_get_scope(r);
    route.family = rtnl_route_get_family(r);
    out.push_back(std::move(route));
  }
  return out;
}

void Netlink::update_routes(const std::vector<NetworkRoute>& routes) {
  with_context("update routes", [&] {
    nl_sock* sock = socket_.get();
    const Cache links = link_cache(sock);
    std::set<int> devices;
    for (const NetworkRoute& r : routes) devices.insert(ifindex_of(links.get(), r.device));

    const Cache existing = route_cache(sock);
    for (nl_object* o = nl_cache_get_first(existing.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* r = reinterpret_cast<rtnl_route*>(o);
      if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_nnexthops(r) == 0) continue;
      // Kernel-made prefix routes of the interface addresses stay; the runtime's list does not
      // repeat them.
      if (rtnl_route_get_protocol(r) == RTPROT_KERNEL) continue;
      if (devices.count(rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, 0))) == 0) continue;
      if (const int rc = rtnl_route_delete(sock, r, 0); rc < 0) fail_nl(rc, "remove an old route");
    }

    std::vector<const NetworkRoute*> ordered;
    for (const auto& r : routes) ordered.push_back(&r);
    std::stable_partition(ordered.begin(), ordered.end(), [](const NetworkRoute* r) { return r->gateway.empty(); });
    for (const NetworkRoute* wanted : ordered) {
      with_context([&] { return fmt::format("add route {} via '{}' dev {}", wanted->destination.empty() ? "default" : wanted->destination,
                                            wanted->gateway, wanted->device); }, [&] {
        int family = wanted->family;
        if (family == 0) family = family_of(!wanted->gateway.empty() ? wanted->gateway : wanted->destination);
        Route route(rtnl_route_alloc());
        rtnl_route_set_family(route.get(), static_cast<std::uint8_t>(family));
        rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
        rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
        NlAddr dst = parse_address(wanted->destination.empty() ? "default" : wanted->destination, family, "route destination");
        rtnl_route_set_dst(route.get(), dst.get());
        const unsigned scope = wanted->scope != 0 ? wanted->scope : (wanted->gateway.empty() ? unsigned{RT_SCOPE_LINK} : unsigned{RT_SCOPE_UNIVERSE});
        rtnl_route_set_scope(route.get(), static_cast<std::uint8_t>(scope));
        if (!wanted->source.empty()) {
          NlAddr src = parse_address(wanted->source, family, "route source");
          rtnl_route_set_pref_src(route.get(), src.get());
        }
        rtnl_nexthop* nh = rtnl_route_nh_alloc();  // owned by the route once added
        rtnl_route_nh_set_ifindex(nh, ifindex_of(links.get(), wanted->device));
        if (!wanted->gateway.empty()) {
          NlAddr gw = parse_address(wanted->gateway, family, "route gateway");
          rtnl_route_nh_set_gateway(nh, gw.get());
        }
        rtnl_route_add_nexthop(route.get(), nh);
        if (const int rc = rtnl_route_add(sock, route.get(), NLM_F_CREATE | NLM_F_REPLACE); rc < 0) fail_nl(rc, "rtnetlink");
      });
    }
  });
}

void Netlink::add_arp_neighbors(const std::vector<ArpNeighbor>& neighbors) {
  nl_sock* sock = socket_.get();
  const Cache links = link_cache(sock);
  for (const ArpNeighbor& n : neighbors) {
    with_context([&] { return fmt::format("add neighbour {} ({}) dev {}", n.ip_address, n.ll_address, n.device); }, [&] {
      Neigh neigh(rtnl_neigh_alloc());
      rtnl_neigh_set_ifindex(neigh.get(), ifindex_of(links.get(), n.device));
      NlAddr dst = parse_address(n.ip_address, family_of(n.ip_address), "neighbour address");
      if (const int rc = rtnl_neigh_set_dst(neigh.get(), dst.get()); rc < 0) fail_nl(rc, "neighbour address");
      NlAddr ll = parse_address(n.ll_address, AF_LLC, "neighbour MAC");
      rtnl_neigh_set_lladdr(neigh.get(), ll.get());
      rtnl_neigh_set_state(neigh.get(), n.state != 0 ? n.state : NUD_PERMANENT);
      if (n.flags != 0) rtnl_neigh_set_flags(neigh.get(), static_cast<unsigned>(n.flags));
      if (const int rc = rtnl_neigh_add(sock, neigh.get(), NLM_F_CREATE | NLM_F_REPLACE); rc < 0) fail_nl(rc, "rtnetlink");
    });
  }
}

}  // namespace kata::agent_guest
