// The tcfilter internetworking model (upstream's default, runtime-rs-facts §8): a tap next to
// the endpoint's link in the pod namespace, and traffic control moving every frame between them.
//
//   create:   tap<index>_kata (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, multi-queue when queues > 1),
//             MTU copied from the endpoint, link up;
//             an ingress qdisc (ffff:) on the tap and on the endpoint link;
//             on each, a u32 filter matching every frame (protocol all, "match u8 0 0") whose
//             action is mirred egress redirect to the other link.
//   destroy:  the endpoint link's ingress qdisc (its filter goes with it) and the tap (its qdisc
//             and filter go with it).
//
// The tap is not persistent: it exists while a descriptor of it is open. The descriptors go to
// the VMM, so once the VMM has exited the tap is gone even if this process was killed; destroying
// the pair deletes it explicitly as well. The guest NIC is given the endpoint's MAC (the CNI
// network expects that address), the tap keeps its own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kata/core/unique_fd.hpp"
#include "kata/resource/network/endpoint.hpp"
#include "kata/resource/network/netns.hpp"

namespace kata::resource::network {

/// The tap's name for endpoint `index`: "tap<index>_kata".
[[nodiscard]] std::string tap_name(std::uint32_t index);

/// One endpoint connected to its tap. Owns everything create() made; the destructor removes it
/// (teardown()).
class NetworkPair {
 public:
  /// Builds the plumbing above for `endpoint` in `netns`, with `queues` (>= 1) tap descriptors.
  /// Errors: already_exists when a link named like the tap exists, or when the endpoint link
  /// already has an ingress qdisc (someone else's: it is left alone); the netlink or ioctl error
  /// of the failing step, wrapped with "connect <link> to <tap>". On any error everything this
  /// call created is removed before it throws.
  [[nodiscard]] static NetworkPair create(std::shared_ptr<const NetworkNamespace> netns, const Endpoint& endpoint,
                                          std::uint32_t queues);

  NetworkPair(NetworkPair&& other) noexcept;
  NetworkPair& operator=(NetworkPair&& other) noexcept;
  NetworkPair(const NetworkPair&) = delete;
  NetworkPair& operator=(const NetworkPair&) = delete;
  ~NetworkPair();

  [[nodiscard]] const std::string& tap() const noexcept { return tap_; }
  [[nodiscard]] const std::string& link() const noexcept { return link_; }

  /// The tap's descriptors (one per queue), for the VMM; the pair keeps none. Empty after the
  /// first call.
  [[nodiscard]] std::vector<UniqueFd> take_tap_fds() noexcept { return std::move(tap_fds_); }

  /// Removes the endpoint link's ingress qdisc and the tap, if they still exist. Idempotent;
  /// never throws: a failure is logged (and the VMM's exit still takes the tap away).
  void teardown() noexcept;

 private:
  NetworkPair() = default;

  std::shared_ptr<const NetworkNamespace> netns_;
  std::string link_;
  int link_ifindex_ = 0;
  std::string tap_;
  int tap_ifindex_ = 0;
  bool owns_link_qdisc_ = false;
  std::vector<UniqueFd> tap_fds_;
};

}  // namespace kata::resource::network
