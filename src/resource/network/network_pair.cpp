#include "kata/resource/network/network_pair.hpp"

#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/tc.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "kata/core/error.hpp"
#include "kata/log/log.hpp"
#include "resource/network/netlink.hpp"

namespace kata::resource::network {
namespace {

using detail::fail_nl;
using Action = std::unique_ptr<rtnl_act, netlink::Releaser<rtnl_act, rtnl_act_put>>;

log::Logger logger() { return log::Logger("network"); }

/// Whether a link named `name` exists in the socket's namespace.
bool link_exists(nl_sock* socket, const std::string& name) {
  rtnl_link* link = nullptr;
  const int rc = rtnl_link_get_kernel(socket, 0, name.c_str(), &link);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return false;
  if (rc < 0) fail_nl(rc, "look up link " + name);
  rtnl_link_put(link);
  return true;
}

UniqueFd open_tap_queue(const std::string& name, bool multi_queue) {
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) fail_errno(errno, "open /dev/net/tun");
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  request.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0));
  if (::ioctl(fd.get(), TUNSETIFF, &request) != 0) fail_errno(errno, "create tap {}", name);
  return fd;
}

/// Adds an ingress qdisc to `ifindex`; false when the link already has one.
bool add_ingress_qdisc(nl_sock* socket, int ifindex, const std::string& link) {
  const detail::Qdisc qdisc = detail::ingress_qdisc(ifindex);
  // A link that was just created can still be busy being registered (upstream retries too).
  for (int attempt = 1;; ++attempt) {
    const int rc = rtnl_qdisc_add(socket, qdisc.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (rc == 0) return true;
    if (rc == -NLE_EXIST) return false;
    if (rc != -NLE_BUSY || attempt == 5) fail_nl(rc, "add ingress qdisc to " + link);
    std::this_thread::sleep_for(std::chrono::milliseconds(10 * attempt));
  }
}

/// `tc filter add dev <from> parent ffff: protocol all u32 match u8 0 0 action mirred egress
/// redirect dev <to>`.
void add_redirect(nl_sock* socket, int from, int to, const std::string& what) {
  detail::Classifier filter(rtnl_cls_alloc());
  Action mirred(rtnl_act_alloc());
  if (!filter || !mirred) fail(Errc::resource_exhausted, "allocate a filter");
  rtnl_tc_set_ifindex(TC_CAST(filter.get()), from);
  rtnl_tc_set_parent(TC_CAST(filter.get()), detail::ingress_handle);
  if (const int rc = rtnl_tc_set_kind(TC_CAST(filter.get()), "u32"); rc < 0) fail_nl(rc, "filter kind u32");
  rtnl_cls_set_protocol(filter.get(), ETH_P_ALL);
  // One key with mask 0 matches every frame.
  if (const int rc = rtnl_u32_add_key_uint8(filter.get(), 0, 0, 0, 0); rc < 0) fail_nl(rc, "u32 key");
  if (const int rc = rtnl_u32_set_cls_terminal(filter.get()); rc < 0) fail_nl(rc, "u32 terminal flag");

  if (const int rc = rtnl_tc_set_kind(TC_CAST(mirred.get()), "mirred"); rc < 0) fail_nl(rc, "action kind mirred");
  rtnl_mirred_set_action(mirred.get(), TCA_EGRESS_REDIR);
  rtnl_mirred_set_policy(mirred.get(), TC_ACT_STOLEN);
  rtnl_mirred_set_ifindex(mirred.get(), static_cast<std::uint32_t>(to));
  if (const int rc = rtnl_u32_add_action(filter.get(), mirred.get()); rc < 0) fail_nl(rc, "u32 action");  // takes its own reference

  if (const int rc = rtnl_cls_add(socket, filter.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0) fail_nl(rc, "add filter " + what);
}

/// Sets the tap's MTU and brings it up.
void set_up(nl_sock* socket, int ifindex, std::uint32_t mtu, const std::string& name) {
  const detail::Link current = detail::find_link(socket, ifindex);
  if (!current) fail(Errc::not_found, "tap {} vanished", name);
  detail::Link change(rtnl_link_alloc());
  if (!change) fail(Errc::resource_exhausted, "allocate a link");
  if (mtu != 0) rtnl_link_set_mtu(change.get(), mtu);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (const int rc = rtnl_link_change(socket, current.get(), change.get(), 0); rc < 0) {
    fail_nl(rc, fmt::format("set MTU {} and bring {} up", mtu, name));
  }
}

}  // namespace

std::string tap_name(std::uint32_t index) { return fmt::format("tap{}_kata", index); }

NetworkPair NetworkPair::create(std::shared_ptr<const NetworkNamespace> netns, const Endpoint& endpoint,
                                std::uint32_t queues) {
  NetworkPair pair;
  pair.netns_ = std::move(netns);
  pair.link_ = endpoint.name;
  pair.link_ifindex_ = endpoint.ifindex;
  pair.tap_ = tap_name(endpoint.index);
  queues = std::max(queues, 1U);
  with_context([&] { return fmt::format("connect {} to {}", pair.link_, pair.tap_); }, [&] {
    pair.netns_->run([&] {
      const detail::Socket socket = detail::open_route_socket();
      nl_sock* sock = socket.get();
      try {
        const detail::Link link = detail::find_link(sock, pair.link_ifindex_);
        if (!link || pair.link_ != rtnl_link_get_name(link.get())) {
          fail(Errc::not_found, "link {} (index {}) no longer exists", pair.link_, pair.link_ifindex_);
        }
        // TUNSETIFF would attach to an existing tap of that name, which is not ours to take.
        if (link_exists(sock, pair.tap_)) fail(Errc::already_exists, "a link named {} already exists", pair.tap_);
        for (std::uint32_t q = 0; q < queues; ++q) pair.tap_fds_.push_back(open_tap_queue(pair.tap_, queues > 1));
        rtnl_link* tap = nullptr;
        if (const int rc = rtnl_link_get_kernel(sock, 0, pair.tap_.c_str(), &tap); rc < 0) fail_nl(rc, "look up " + pair.tap_);
        pair.tap_ifindex_ = rtnl_link_get_ifindex(tap);
        rtnl_link_put(tap);
        set_up(sock, pair.tap_ifindex_, endpoint.mtu, pair.tap_);

        (void)add_ingress_qdisc(sock, pair.tap_ifindex_, pair.tap_);  // a new link has none
        if (!add_ingress_qdisc(sock, pair.link_ifindex_, pair.link_)) {
          fail(Errc::already_exists, "{} already has an ingress qdisc (not created by this sandbox)", pair.link_);
        }
        pair.owns_link_qdisc_ = true;
        add_redirect(sock, pair.tap_ifindex_, pair.link_ifindex_, fmt::format("{} -> {}", pair.tap_, pair.link_));
        add_redirect(sock, pair.link_ifindex_, pair.tap_ifindex_, fmt::format("{} -> {}", pair.link_, pair.tap_));
      } catch (...) {
        // Undo in this thread, inside the namespace, before the error leaves.
        try {
          if (pair.owns_link_qdisc_) detail::remove_ingress_qdisc(sock, pair.link_ifindex_, pair.link_);
          pair.owns_link_qdisc_ = false;
          if (pair.tap_ifindex_ != 0) {
            const detail::Link tap = detail::find_link(sock, pair.tap_ifindex_);
            if (tap && pair.tap_ == rtnl_link_get_name(tap.get())) {
              if (const int rc = rtnl_link_delete(sock, tap.get()); rc < 0 && rc != -NLE_NODEV) fail_nl(rc, "delete " + pair.tap_);
            }
          }
        } catch (const std::exception& e) {
          logger().warn("roll back {} -> {}: {}", pair.link_, pair.tap_, describe(e));
        }
        pair.tap_ifindex_ = 0;
        pair.tap_fds_.clear();
        throw;
      }
    });
  });
  logger().info("connected {} to {} in {} ({} queue{})", pair.link_, pair.tap_, pair.netns_->path().string(), queues,
                queues > 1 ? "s" : "");
  return pair;
}

NetworkPair::NetworkPair(NetworkPair&& other) noexcept
    : netns_(std::move(other.netns_)),
      link_(std::move(other.link_)),
      link_ifindex_(std::exchange(other.link_ifindex_, 0)),
      tap_(std::move(other.tap_)),
      tap_ifindex_(std::exchange(other.tap_ifindex_, 0)),
      owns_link_qdisc_(std::exchange(other.owns_link_qdisc_, false)),
      tap_fds_(std::move(other.tap_fds_)) {}

NetworkPair& NetworkPair::operator=(NetworkPair&& other) noexcept {
  if (this != &other) {
    teardown();
    netns_ = std::move(other.netns_);
    link_ = std::move(other.link_);
    link_ifindex_ = std::exchange(other.link_ifindex_, 0);
    tap_ = std::move(other.tap_);
    tap_ifindex_ = std::exchange(other.tap_ifindex_, 0);
    owns_link_qdisc_ = std::exchange(other.owns_link_qdisc_, false);
    tap_fds_ = std::move(other.tap_fds_);
  }
  return *this;
}

NetworkPair::~NetworkPair() { teardown(); }

void NetworkPair::teardown() noexcept {
  if (!netns_ || (!owns_link_qdisc_ && tap_ifindex_ == 0)) {
    tap_fds_.clear();
    return;
  }
  try {
    netns_->run([&] {
      const detail::Socket socket = detail::open_route_socket();
      std::exception_ptr first_failure;
      // The endpoint link may be gone already (CNI deleted it): nothing left on it then.
      try {
        const detail::Link link = detail::find_link(socket.get(), link_ifindex_);
        if (owns_link_qdisc_ && link && link_ == rtnl_link_get_name(link.get())) {
          detail::remove_ingress_qdisc(socket.get(), link_ifindex_, link_);
        }
      } catch (...) {
        first_failure = std::current_exception();
      }
      // The tap is gone once the VMM and we closed it; delete it explicitly if it is not.
      try {
        const detail::Link tap = detail::find_link(socket.get(), tap_ifindex_);
        if (tap && tap_ == rtnl_link_get_name(tap.get())) {
          if (const int rc = rtnl_link_delete(socket.get(), tap.get()); rc < 0 && rc != -NLE_NODEV && rc != -NLE_OBJ_NOTFOUND) {
            fail_nl(rc, "delete " + tap_);
          }
        }
      } catch (...) {
        if (!first_failure) first_failure = std::current_exception();
      }
      if (first_failure) std::rethrow_exception(first_failure);
    });
  } catch (const std::exception& e) {
    logger().warn("disconnect {} from {} in {}: {}", link_, tap_, netns_->path().string(), describe(e));
  }
  owns_link_qdisc_ = false;
  tap_ifindex_ = 0;
  tap_fds_.clear();
}

}  // namespace kata::resource::network
