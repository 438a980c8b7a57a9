// The network resource of a sandbox (upstream's NetworkWithNetns, runtime-rs-facts §8): the pod's
// network namespace, as containerd/CRI hands it over in the OCI spec (linux.namespaces, type
// network, path), given to the VM.
//
//   PodNetwork::scan      opens the namespace and finds its endpoints (endpoint.hpp); changes
//                         nothing on the host
//   attach(network, vm)   connects each endpoint to a tap (network_pair.hpp) and gives the tap to
//                         the VM as a virtio-net NIC with the endpoint's MAC: cold-plugged when
//                         the VM has not started, hotplugged into a running one
//   configure_guest       tells the agent the guest side: UpdateInterface per endpoint (retried
//                         while the guest is still probing the NIC), AddARPNeighbors,
//                         UpdateRoutes
//   teardown / destructor removes every tap, qdisc and filter attach made
//
// Internetworking models ([runtime] internetworking_model): "tcfilter" (the default) as above;
// "none" scans nothing and attaches nothing (the VM gets no NIC from the namespace). The other
// names the configuration schema accepts, "macvtap" and "l3forwarding", are refused with
// not_supported when there is a namespace to connect (upstream silently treats macvtap as none).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kata/agent.pb.h"
#include "kata/config/schema.hpp"
#include "kata/core/asio.hpp"
#include "kata/hypervisor/hypervisor.hpp"
#include "kata/persist/state.hpp"
#include "kata/resource/network/endpoint.hpp"
#include "kata/resource/network/netns.hpp"
#include "kata/resource/network/network_pair.hpp"

namespace kata::resource::network {

struct NetworkOptions {
  std::string sandbox_id;
  /// The pod's namespace; empty: the VM gets no network from a namespace.
  std::filesystem::path netns;
  /// [runtime] internetworking_model; empty means tcfilter.
  std::string model = "tcfilter";
  /// [hypervisor.X] network_queues: tap descriptors (and virtio-net queue pairs) per NIC.
  std::uint32_t queues = 1;
};

/// The options of a sandbox whose namespace is `netns`, from its configuration.
[[nodiscard]] NetworkOptions network_options(const config::Config& config, std::string sandbox_id,
                                             std::filesystem::path netns);

/// How long configure_guest waits for the guest to see a NIC: UpdateInterface is retried on
/// not_found this many times, this far apart (upstream: 10 x 100 ms).
struct GuestRetry {
  int attempts = 10;
  std::chrono::milliseconds interval{100};
};

class PodNetwork {
 public:
  /// No namespace: nothing to attach or configure.
  PodNetwork() = default;

  /// Opens options.netns and scans it (nothing is scanned for an empty path or model "none").
  /// Errors, each naming the path: not_supported for the models above and for unsupported links
  /// (scan_endpoints' error, naming the link and its type); invalid_argument for an unknown model
  /// or a path that is not a network namespace; the open(2) error of the path. Nothing is left
  /// behind: the scan creates nothing.
  [[nodiscard]] static PodNetwork scan(NetworkOptions options);

  PodNetwork(PodNetwork&&) noexcept = default;
  PodNetwork& operator=(PodNetwork&& other) noexcept;
  PodNetwork(const PodNetwork&) = delete;
  PodNetwork& operator=(const PodNetwork&) = delete;
  /// teardown().
  ~PodNetwork();

  [[nodiscard]] const std::vector<Endpoint>& endpoints() const noexcept { return endpoints_; }
  [[nodiscard]] const std::filesystem::path& netns_path() const noexcept { return options_.netns; }

  /// Connects endpoint `index` to its tap and returns the NIC for the VM (the tap descriptors
  /// inside; the hypervisor takes them). Errors: NetworkPair::create's; not_supported for a
  /// physical endpoint (PCI passthrough of host NICs is not implemented: the driver binding of
  /// the host device is left untouched); failed_precondition when it is already connected.
  [[nodiscard]] hypervisor::NetworkDevice connect(std::size_t index);
  /// Records where the NIC of endpoint `index` appeared in the guest (UpdateInterface's
  /// devicePath).
  void set_guest_pci_path(std::size_t index, std::string path);
  /// Removes the plumbing of endpoint `index` (NetworkPair::teardown), if connected.
  void disconnect(std::size_t index) noexcept;

  /// What the agent is told, in endpoint order: one Interface each (name and MAC of the
  /// endpoint link, its addresses and MTU, IFF_NOARP, the guest PCI path when known); every
  /// route; the permanent neighbours.
  [[nodiscard]] std::vector<types::Interface> guest_interfaces() const;
  [[nodiscard]] std::vector<types::Route> guest_routes() const;
  [[nodiscard]] std::vector<types::ARPNeighbor> guest_neighbors() const;

  /// Upstream's persisted endpoint records (state.json resource.endpoint), one per connected
  /// endpoint: veth/ipvlan/macvlan/vlan {if_name, network_qos false}, tap {if_name}.
  [[nodiscard]] std::vector<persist::EndpointState> save() const;

  /// Links this sandbox changed, for `shim delete` after a dead shim (persist LinkRecord): each
  /// tap and each endpoint link carrying our ingress qdisc.
  [[nodiscard]] std::vector<std::string> plumbed_links() const;

  /// Disconnects every endpoint, last first. Idempotent, never throws.
  void teardown() noexcept;

 private:
  NetworkOptions options_;
  std::shared_ptr<const NetworkNamespace> netns_;
  std::vector<Endpoint> endpoints_;
  std::vector<std::optional<NetworkPair>> pairs_;
  std::vector<std::string> guest_pci_paths_;
};

/// Removes what a sandbox's network left in `netns` after its shim died (the links recorded by
/// plumbed_links()): taps named tap<N>_kata are deleted, other links lose their ingress qdisc.
/// A namespace that no longer exists means there is nothing left. Best effort; never throws
/// (failures are logged).
void remove_leftovers(const std::filesystem::path& netns, const std::vector<std::string>& links) noexcept;

/// Connects every endpoint of `network` and adds its NIC to `vm` (H: a Hypervisor). Before
/// start_vm the NICs are cold-plugged; on a running VM they are hotplugged.
/// Errors: connect()'s and add_device's, wrapped with "attach network <tap>". On error the NICs
/// this call added are removed again (best effort: a hypervisor that cannot hot-unplug keeps
/// the NIC, but its tap is deleted) and every endpoint is disconnected.
template <hypervisor::Hypervisor H>
Task<void> attach(PodNetwork& network, H& vm);

/// Configures the guest side through `agent` (any type with KataAgent's update_interface,
/// add_arp_neighbors and update_routes). Call after the agent answers and before
/// CreateSandbox. Errors: the agent's, wrapped with "configure guest interface <name>",
/// "add guest ARP neighbours" or "update guest routes".
template <class Agent>
Task<void> configure_guest(const PodNetwork& network, Agent& agent, GuestRetry retry = {});

}  // namespace kata::resource::network

#include "kata/resource/network/impl/network.hpp"
