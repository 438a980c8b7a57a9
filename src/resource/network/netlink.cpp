#include "resource/network/netlink.hpp"

#include <arpa/inet.h>
#include <linux/pkt_sched.h>
#include <netlink/errno.h>
#include <sys/socket.h>

#include "kata/core/error.hpp"

namespace kata::resource::network::detail {

Socket open_route_socket() {
  Socket socket(nl_socket_alloc());
  if (!socket) fail(Errc::resource_exhausted, "allocate a netlink socket");
  if (const int rc = nl_connect(socket.get(), NETLINK_ROUTE); rc < 0) fail_nl(rc, "connect to rtnetlink");
  return socket;
}

Link find_link(nl_sock* socket, int ifindex) {
  rtnl_link* link = nullptr;
  const int rc = rtnl_link_get_kernel(socket, ifindex, nullptr, &link);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return Link();
  if (rc < 0) fail_nl(rc, "look up link " + std::to_string(ifindex));
  return Link(link);
}

Qdisc ingress_qdisc(int ifindex) {
  Qdisc qdisc(rtnl_qdisc_alloc());
  if (!qdisc) fail(Errc::resource_exhausted, "allocate a qdisc");
  rtnl_tc_set_ifindex(TC_CAST(qdisc.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(qdisc.get()), TC_H_INGRESS);
  rtnl_tc_set_handle(TC_CAST(qdisc.get()), ingress_handle);
  if (const int rc = rtnl_tc_set_kind(TC_CAST(qdisc.get()), "ingress"); rc < 0) fail_nl(rc, "qdisc kind ingress");
  return qdisc;
}

void remove_ingress_qdisc(nl_sock* socket, int ifindex, const std::string& link) {
  nl_cache* cache = nullptr;
  if (const int rc = rtnl_qdisc_alloc_cache(socket, &cache); rc < 0) fail_nl(rc, "list qdiscs");
  const Cache qdiscs(cache);
  const Qdisc existing(rtnl_qdisc_get_by_parent(qdiscs.get(), ifindex, TC_H_INGRESS));
  if (!existing) return;
  const Qdisc qdisc = ingress_qdisc(ifindex);
  if (const int rc = rtnl_qdisc_delete(socket, qdisc.get()); rc < 0 && rc != -NLE_OBJ_NOTFOUND && rc != -NLE_NODEV) {
    fail_nl(rc, "remove the ingress qdisc of " + link);
  }
}

}  // namespace kata::resource::network::detail
