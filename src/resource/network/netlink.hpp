// libnl-route-3 operations of the network resource (private to src/resource/network).
// Every function here works in the namespace of the calling thread: callers are inside
// NetworkNamespace::run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kata/core/netlink.hpp"

namespace kata::resource::network::detail {

// Ownership and errors are libnl's shared ones (kata/core/netlink.hpp).
using ::kata::netlink::Cache;
using ::kata::netlink::Classifier;
using ::kata::netlink::fail_nl;
using ::kata::netlink::Link;
using ::kata::netlink::link_cache;
using ::kata::netlink::NlAddr;
using ::kata::netlink::Qdisc;
using ::kata::netlink::Socket;
using ::kata::netlink::to_text;

/// A connected NETLINK_ROUTE socket in the calling thread's namespace.
[[nodiscard]] Socket open_route_socket();

/// The link with `ifindex`, or null.
[[nodiscard]] Link find_link(nl_sock* socket, int ifindex);

/// The handle of every ingress qdisc, ffff:.
inline constexpr std::uint32_t ingress_handle = TC_HANDLE(0xffffU, 0);

/// An ingress qdisc object for `ifindex` (to add or delete).
[[nodiscard]] Qdisc ingress_qdisc(int ifindex);

/// Deletes the ingress qdisc of `ifindex` (its filters go with it), if it has one. Errors name
/// `link`.
void remove_ingress_qdisc(nl_sock* socket, int ifindex, const std::string& link);

}  // namespace kata::resource::network::detail
