#include "kata/resource/network/network.hpp"

#include <net/if.h>
#include <netlink/route/link.h>
#include <sys/socket.h>

#include <algorithm>
#include <regex>

#include "kata/agent/network_conversion.hpp"
#include "kata/core/error.hpp"
#include "kata/log/log.hpp"
#include "resource/network/netlink.hpp"

namespace kata::resource::network {
namespace {

log::Logger logger() { return log::Logger("network"); }

}  // namespace

NetworkOptions network_options(const config::Config& config, std::string sandbox_id, std::filesystem::path netns) {
  NetworkOptions options;
  options.sandbox_id = std::move(sandbox_id);
  options.netns = std::move(netns);
  if (!config.runtime.internetworking_model.empty()) options.model = config.runtime.internetworking_model;
  options.queues = std::max(config.active_hypervisor().network.network_queues, 1U);
  return options;
}

PodNetwork PodNetwork::scan(NetworkOptions options) {
  PodNetwork network;
  if (options.model.empty()) options.model = "tcfilter";
  network.options_ = std::move(options);
  const NetworkOptions& o = network.options_;
  if (o.netns.empty()) return network;
  with_context([&] { return fmt::format("network namespace {}", o.netns.string()); }, [&] {
    if (o.model == "none") {
      logger().info("internetworking_model none: {} is not scanned, the VM gets no NIC from it", o.netns.string());
      return;
    }
    if (o.model == "macvtap" || o.model == "l3forwarding") {
      fail(Errc::not_supported, "[runtime] internetworking_model = \"{}\" is not implemented by this runtime (use tcfilter or none)",
           o.model);
    }
    if (o.model != "tcfilter") {
      fail(Errc::invalid_argument, "[runtime] internetworking_model = \"{}\" is unknown (tcfilter, none)", o.model);
    }
    network.netns_ = std::make_shared<const NetworkNamespace>(NetworkNamespace::open(o.netns));
  });
  if (!network.netns_) return network;
  network.endpoints_ = scan_endpoints(*network.netns_);  // its errors name the namespace
  network.pairs_.resize(network.endpoints_.size());
  network.guest_pci_paths_.resize(network.endpoints_.size());
  for (const Endpoint& e : network.endpoints_) {
    logger().info("endpoint {} ({}, {}), {} address(es), {} route(s), {} neighbour(s)", e.name, to_string(e.kind), e.mac,
                  e.addresses.size(), e.routes.size(), e.neighbors.size());
  }
  return network;
}

PodNetwork& PodNetwork::operator=(PodNetwork&& other) noexcept {
  if (this != &other) {
    teardown();
    options_ = std::move(other.options_);
    netns_ = std::move(other.netns_);
    endpoints_ = std::move(other.endpoints_);
    pairs_ = std::move(other.pairs_);
    guest_pci_paths_ = std::move(other.guest_pci_paths_);
  }
  return *this;
}

PodNetwork::~PodNetwork() { teardown(); }

hypervisor::NetworkDevice PodNetwork::connect(std::size_t index) {
  const Endpoint& endpoint = endpoints_.at(index);
  if (pairs_[index]) fail(Errc::failed_precondition, "endpoint {} is already connected", endpoint.name);
  if (endpoint.kind == EndpointKind::physical) {
    fail(Errc::not_supported,
         "endpoint {} is a physical NIC (PCI {}): passing host NICs through to the VM is not implemented", endpoint.name,
         endpoint.pci_address);
  }
  NetworkPair pair = NetworkPair::create(netns_, endpoint, options_.queues);
  hypervisor::NetworkDevice device;
  device.id = pair.tap();
  device.guest_mac = endpoint.mac;
  device.host_interface = pair.tap();
  device.tap_fds = pair.take_tap_fds();
  pairs_[index].emplace(std::move(pair));
  return device;
}

void PodNetwork::set_guest_pci_path(std::size_t index, std::string path) { guest_pci_paths_.at(index) = std::move(path); }

void PodNetwork::disconnect(std::size_t index) noexcept {
  if (index >= pairs_.size() || !pairs_[index]) return;
  pairs_[index]->teardown();
  pairs_[index].reset();
  guest_pci_paths_[index].clear();
}

void PodNetwork::teardown() noexcept {
  for (std::size_t i = pairs_.size(); i-- > 0;) disconnect(i);
}

std::vector<types::Interface> PodNetwork::guest_interfaces() const {
  std::vector<types::Interface> out;
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    const Endpoint& e = endpoints_[i];
    types::Interface interface;
    interface.set_device(e.name);
    interface.set_name(e.name);
    for (const auto& address : e.addresses) *interface.add_ipaddresses() = to_proto(address);
    interface.set_mtu(e.mtu);
    interface.set_hwaddr(e.mac);
    interface.set_devicepath(guest_pci_paths_[i]);
    interface.set_type(std::string(to_string(e.kind)));
    interface.set_raw_flags(e.noarp ? IFF_NOARP : 0);
    out.push_back(std::move(interface));
  }
  return out;
}

std::vector<types::Route> PodNetwork::guest_routes() const {
  std::vector<types::Route> out;
  for (const Endpoint& e : endpoints_) {
    for (const Route& r : e.routes) {
      out.push_back(to_proto(r));
    }
  }
  return out;
}

std::vector<types::ARPNeighbor> PodNetwork::guest_neighbors() const {
  std::vector<types::ARPNeighbor> out;
  for (const Endpoint& e : endpoints_) {
    for (const Neighbor& n : e.neighbors) {
      types::ARPNeighbor neighbor;
      IpAddress address{n.ip_address.find(':') != std::string::npos ? AF_INET6 : AF_INET, n.ip_address, 0};
      *neighbor.mutable_toipaddress() = to_proto(address);
      neighbor.mutable_toipaddress()->clear_mask();
      neighbor.set_device(n.device);
      neighbor.set_lladdr(n.mac);
      neighbor.set_state(n.state);
      neighbor.set_flags(n.flags);
      out.push_back(std::move(neighbor));
    }
  }
  return out;
}

std::vector<persist::EndpointState> PodNetwork::save() const {
  std::vector<persist::EndpointState> out;
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    if (!pairs_[i]) continue;
    const Endpoint& e = endpoints_[i];
    persist::EndpointState state;
    const persist::LinkEndpointState link{e.name, false};
    switch (e.kind) {
      case EndpointKind::veth: state.veth_endpoint = link; break;
      case EndpointKind::ipvlan: state.ipvlan_endpoint = link; break;
      case EndpointKind::macvlan: state.macvlan_endpoint = link; break;
      case EndpointKind::vlan: state.vlan_endpoint = link; break;
      case EndpointKind::tap: state.tap_endpoint = persist::TapEndpointState{e.name}; break;
      case EndpointKind::physical: continue;  // never connected (connect refuses it)
    }
    out.push_back(std::move(state));
  }
  return out;
}

std::vector<std::string> PodNetwork::plumbed_links() const {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < pairs_.size(); ++i) {
    if (!pairs_[i]) continue;
    out.push_back(pairs_[i]->tap());
    out.push_back(pairs_[i]->link());
  }
  return out;
}

void remove_leftovers(const std::filesystem::path& netns_path, const std::vector<std::string>& links) noexcept {
  if (links.empty()) return;
  try {
    std::optional<NetworkNamespace> netns;
    try {
      netns.emplace(NetworkNamespace::open(netns_path));
    } catch (const Error& e) {
      if (e.code() == Errc::not_found) return;  // the namespace went, and everything in it
      throw;
    }
    static const std::regex tap_pattern("tap[0-9]+_kata");
    netns->run([&] {
      const detail::Socket socket = detail::open_route_socket();
      for (const std::string& name : links) {
        rtnl_link* found = nullptr;
        if (rtnl_link_get_kernel(socket.get(), 0, name.c_str(), &found) < 0) continue;
        const detail::Link link(found);
        const int ifindex = rtnl_link_get_ifindex(link.get());
        if (std::regex_match(name, tap_pattern)) {
          if (const int rc = rtnl_link_delete(socket.get(), link.get()); rc < 0 && rc != -NLE_NODEV) {
            logger().warn("delete {} in {}: {}", name, netns_path.string(), nl_geterror(rc));
          }
          continue;
        }
        try {
          detail::remove_ingress_qdisc(socket.get(), ifindex, name);
        } catch (const std::exception& e) {
          logger().warn("in {}: {}", netns_path.string(), describe(e));
        }
      }
    });
  } catch (const std::exception& e) {
    logger().warn("remove network leftovers in {}: {}", netns_path.string(), describe(e));
  }
}

}  // namespace kata::resource::network
