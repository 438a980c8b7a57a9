// libnl-route-3 ownership and errors for the network resource (private to src/resource/network).
// Every function here works in the namespace of the calling thread: callers are inside
// NetworkNamespace::run.
#pragma once

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/classifier.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/tc.h>

#include <cstdint>
#include <memory>
#include <string>

namespace kata::resource::network::detail {

template <class T, void (*Release)(T*)>
struct Releaser {
  void operator()(T* object) const noexcept {
    if (object != nullptr) Release(object);
  }
};
using Socket = std::unique_ptr<nl_sock, Releaser<nl_sock, nl_socket_free>>;
using Cache = std::unique_ptr<nl_cache, Releaser<nl_cache, nl_cache_free>>;
using Link = std::unique_ptr<rtnl_link, Releaser<rtnl_link, rtnl_link_put>>;
using Qdisc = std::unique_ptr<rtnl_qdisc, Releaser<rtnl_qdisc, rtnl_qdisc_put>>;
using Classifier = std::unique_ptr<rtnl_cls, Releaser<rtnl_cls, rtnl_cls_put>>;
using NlAddr = std::unique_ptr<nl_addr, Releaser<nl_addr, nl_addr_put>>;

/// Throws kata::Error for a negative libnl return code: "<what>: <nl_geterror>", with the code
/// mapped (NLE_EXIST -> already_exists, NLE_NODEV/NLE_OBJ_NOTFOUND -> not_found, ...).
[[noreturn]] void fail_nl(int error, const std::string& what);

/// A connected NETLINK_ROUTE socket in the calling thread's namespace.
[[nodiscard]] Socket open_route_socket();

/// The link dump of the socket's namespace.
[[nodiscard]] Cache link_cache(nl_sock* socket);

/// The link with `ifindex`, or null.
[[nodiscard]] Link find_link(nl_sock* socket, int ifindex);

/// The handle of every ingress qdisc, ffff:.
inline constexpr std::uint32_t ingress_handle = TC_HANDLE(0xffffU, 0);

/// An ingress qdisc object for `ifindex` (to add or delete).
[[nodiscard]] Qdisc ingress_qdisc(int ifindex);

/// Deletes the ingress qdisc of `ifindex` (its filters go with it), if it has one. Errors name
/// `link`.
void remove_ingress_qdisc(nl_sock* socket, int ifindex, const std::string& link);

/// "10.0.0.1" (with "/24" when with_prefix) for IP addresses, "aa:bb:.." for link-layer ones;
/// empty for a null or empty address.
[[nodiscard]] std::string to_text(nl_addr* address, bool with_prefix);

}  // namespace kata::resource::network::detail
