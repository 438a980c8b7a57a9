// libnl-3 ownership, errors and the two helpers both sides need (the link dump, an address as
// text), shared by the host's network resource (src/resource/network) and
// the guest agent (guest/agent/src/network.cpp). Header-only: each user links libnl-route-3 by
// plain name and adds libnl3's include directory itself.
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/classifier.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>

#include <memory>
#include <string>
#include <string_view>

#include "kata/core/error.hpp"

namespace kata::netlink {

/// Deleter calling libnl's release function (put/free) for one object type.
template <class T, void (*Release)(T*)>
struct Releaser {
  void operator()(T* object) const noexcept {
    if (object != nullptr) Release(object);
  }
};

using Socket = std::unique_ptr<nl_sock, Releaser<nl_sock, nl_socket_free>>;
using Cache = std::unique_ptr<nl_cache, Releaser<nl_cache, nl_cache_free>>;
using Link = std::unique_ptr<rtnl_link, Releaser<rtnl_link, rtnl_link_put>>;
using Addr = std::unique_ptr<rtnl_addr, Releaser<rtnl_addr, rtnl_addr_put>>;
using Route = std::unique_ptr<rtnl_route, Releaser<rtnl_route, rtnl_route_put>>;
using Neigh = std::unique_ptr<rtnl_neigh, Releaser<rtnl_neigh, rtnl_neigh_put>>;
using Qdisc = std::unique_ptr<rtnl_qdisc, Releaser<rtnl_qdisc, rtnl_qdisc_put>>;
using Classifier = std::unique_ptr<rtnl_cls, Releaser<rtnl_cls, rtnl_cls_put>>;
using NlAddr = std::unique_ptr<nl_addr, Releaser<nl_addr, nl_addr_put>>;

/// The kata::Errc of a libnl error code (negative or not).
[[nodiscard]] inline Errc errc_of(int error) noexcept {
  switch (error < 0 ? -error : error) {
    case NLE_EXIST: return Errc::already_exists;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: return Errc::not_found;
    case NLE_INVAL:
    case NLE_RANGE: return Errc::invalid_argument;
    case NLE_PERM:
    case NLE_NOACCESS: return Errc::permission_denied;
    case NLE_OPNOTSUPP: return Errc::not_supported;
    case NLE_BUSY: return Errc::unavailable;
    case NLE_NOMEM: return Errc::resource_exhausted;
    default: return Errc::internal;
  }
}

/// Throws kata::Error "<what>: <nl_geterror>" for a libnl error code, with errc_of's code.
[[noreturn]] inline void fail_nl(int error, std::string_view what) {
  throw Error(errc_of(error), std::string(what) + ": " + nl_geterror(error < 0 ? -error : error));
}

/// The link dump of the socket's namespace.
[[nodiscard]] inline Cache link_cache(nl_sock* socket) {
  nl_cache* cache = nullptr;
  if (const int rc = rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache); rc < 0) fail_nl(rc, "list links");
  return Cache(cache);
}

/// "10.0.0.1" (with "/24" when with_prefix) for IP addresses, "aa:bb:.." for link-layer ones;
/// empty for a null or empty address.
[[nodiscard]] inline std::string to_text(nl_addr* address, bool with_prefix) {
  if (address == nullptr || nl_addr_get_len(address) == 0) return {};
  const int family = nl_addr_get_family(address);
  char buffer[INET6_ADDRSTRLEN + 8] = {};
  if (family != AF_INET && family != AF_INET6) return nl_addr2str(address, buffer, sizeof buffer);
  if (inet_ntop(family, nl_addr_get_binary_addr(address), buffer, sizeof buffer) == nullptr) return {};
  std::string out = buffer;
  if (with_prefix) out += "/" + std::to_string(nl_addr_get_prefixlen(address));
  return out;
}

}  // namespace kata::netlink
