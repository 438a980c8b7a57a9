// The guest network configuration the runtime pushes before CreateSandbox: UpdateInterface,
// UpdateRoutes, AddARPNeighbors, ListInterfaces, ListRoutes (types.proto Interface, Route,
// ARPNeighbor), over rtnetlink with libnl-route-3.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kata/agent/network_model.hpp"

struct nl_sock;

namespace kata::agent_guest {

using agent::IpAddress;

struct NetworkInterface {
  std::string name;             ///< wanted name ("eth0"); the link is renamed to it
  std::string hw_address;       ///< "02:42:ac:11:00:02"; identifies the link
  std::uint64_t mtu = 0;        ///< 0 keeps the current MTU
  std::vector<IpAddress> addresses;
  bool up = false;              ///< reported by list_interfaces
};

using agent::NetworkRoute;

struct ArpNeighbor {
  std::string ip_address;
  std::string device;
  std::string ll_address;       ///< MAC
  int state = 0;                ///< NUD_*; 0 means NUD_PERMANENT
  int flags = 0;                ///< NTF_*
};

/// One NETLINK_ROUTE socket, bound to the network namespace of the thread that opened it.
class Netlink {
 public:
  /// Throws kata::Error if the socket cannot be opened.
  static Netlink open();

  /// Finds the link by hardware address (the only identity the host and guest share), renames it,
  /// sets its MTU, replaces its addresses with the given ones and sets it up. Throws
  /// Errc::not_found naming the address if no link has it. Returns the resulting state.
  NetworkInterface update_interface(const NetworkInterface& wanted);

  [[nodiscard]] std::vector<NetworkInterface> list_interfaces();

  /// Replaces the main table's routes on every device named in `routes` with `routes`; on-link
  /// routes go first so each gateway is reachable when its route is added.
  void update_routes(const std::vector<NetworkRoute>& routes);

  [[nodiscard]] std::vector<NetworkRoute> list_routes();

  /// Adds (or replaces) static neighbour entries.
  void add_arp_neighbors(const std::vector<ArpNeighbor>& neighbors);

 private:
  struct SocketDeleter {
    void operator()(nl_sock* socket) const noexcept;
  };
  explicit Netlink(std::unique_ptr<nl_sock, SocketDeleter> socket) : socket_(std::move(socket)) {}

  std::unique_ptr<nl_sock, SocketDeleter> socket_;
};

}  // namespace kata::agent_guest
