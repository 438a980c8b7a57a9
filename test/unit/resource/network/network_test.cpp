// The network resource against the real kernel: a private namespace with veth pairs (and the other
// link kinds this kernel has), scanned over netlink, connected to taps with tc mirred, and
// checked with iproute2 from inside the namespace, frames included.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "kata/resource/network/network.hpp"
#include "mocks/fake_hypervisor.hpp"
#include "support/async_test.hpp"
#include "unit/resource/network/netns_fixture.hpp"

namespace kata::resource::network {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using test::ScratchNetns;

std::string error_text(const std::function<void()>& operation, Errc* code = nullptr) {
  try {
    operation();
  } catch (const std::exception& e) {
    if (code != nullptr) *code = code_of(e);
    return describe(e);
  }
  return "(no error)";
}

/// eth0 (10.77.0.2/24, MTU 1400, MAC 02:00:00:00:00:02, routes and neighbours) whose peer0 stays
/// in the namespace without an address.
void add_veth(const ScratchNetns& ns, const std::string& name = "eth0", const std::string& peer = "peer0",
              int subnet = 77) {
  ns.sh(fmt::format(
      "ip link add {0} type veth peer name {1} && ip link set {0} mtu 1400 address 02:00:00:00:{2:02x}:02 && "
      "ip link set {1} mtu 1400 && ip addr add 10.{2}.0.2/24 dev {0} && ip link set {0} up && ip link set {1} up",
      name, peer, subnet));
}

hypervisor::VmContext fake_context() {
  hypervisor::VmContext context;
  context.sandbox_id = "net-test";
  context.state_dir = "/nonexistent";
  return context;
}

// ---------------------------------------------------------------------------------------------
// Classification (no kernel needed)

TEST(ClassifyLink, FollowsUpstreamRules) {
  EXPECT_EQ(classify_link("eth0", "veth", ARPHRD_ETHER, ""), EndpointKind::veth);
  EXPECT_EQ(classify_link("sf0", "", ARPHRD_ETHER, ""), EndpointKind::veth);  // kind-less device
  EXPECT_EQ(classify_link("eth0.5", "vlan", ARPHRD_ETHER, ""), EndpointKind::vlan);
  EXPECT_EQ(classify_link("ipv0", "ipvlan", ARPHRD_ETHER, ""), EndpointKind::ipvlan);
  EXPECT_EQ(classify_link("mv0", "macvlan", ARPHRD_ETHER, ""), EndpointKind::macvlan);
  EXPECT_EQ(classify_link("tapx", "tun", ARPHRD_ETHER, "tap"), EndpointKind::tap);
  EXPECT_EQ(classify_link("ens3", "", ARPHRD_ETHER, "0000:00:03.0"), EndpointKind::physical);
  EXPECT_EQ(classify_link("ens3", "veth", ARPHRD_ETHER, "0000:00:03.0"), EndpointKind::physical);
}

TEST(ClassifyLink, RefusesOtherKindsNamingLinkAndType) {
  Errc code{};
  const std::string bridge = error_text([] { (void)classify_link("br0", "bridge", ARPHRD_ETHER, ""); }, &code);
  EXPECT_EQ(code, Errc::not_supported);
  EXPECT_THAT(bridge, HasSubstr("link 'br0' has type 'bridge', which is not supported"));
  EXPECT_THAT(bridge, HasSubstr("veth, ipvlan, macvlan, vlan, tap, physical"));
  EXPECT_THAT(error_text([] { (void)classify_link("tun0", "tun", ARPHRD_NONE, "tun"); }),
              HasSubstr("link 'tun0' is a layer-3 tun device"));
}

// ---------------------------------------------------------------------------------------------
// Namespace handles

TEST(NetworkNamespaceOpen, RefusesWhatIsNotANetworkNamespace) {
  Errc code{};
  EXPECT_THAT(error_text([] { (void)NetworkNamespace::open("/nonexistent/netns"); }, &code),
              HasSubstr("open network namespace /nonexistent/netns"));
  EXPECT_EQ(code, Errc::not_found);
  EXPECT_THAT(error_text([] { (void)NetworkNamespace::open("/proc/self/ns/uts"); }, &code),
              HasSubstr("is not a network namespace (it is another kind of namespace)"));
  EXPECT_EQ(code, Errc::invalid_argument);
  EXPECT_THAT(error_text([] { (void)NetworkNamespace::open("/etc/hostname"); }, &code), HasSubstr("is not a network namespace"));
  EXPECT_EQ(code, Errc::invalid_argument);
}

TEST(NetworkNamespaceRun, RunsInsideAndLeavesTheCallerOutside) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  const NetworkNamespace netns = NetworkNamespace::open(ns.path());
  EXPECT_NE(netns.run([] { return if_nametoindex("peer0"); }), 0U);
  EXPECT_EQ(if_nametoindex("peer0"), 0U);  // this thread never moved
  EXPECT_THROW(netns.run([]() -> int { fail(Errc::aborted, "inside"); }), Error);
}

// ---------------------------------------------------------------------------------------------
// Scan

TEST(ScanEndpoints, FindsVethWithAddressesRoutesAndPermanentNeighbours) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  ns.sh("ip route add default via 10.77.0.1 dev eth0 && ip route add 10.78.0.0/16 via 10.77.0.1 dev eth0 && "
        "ip neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent && "
        "ip neigh add 10.77.0.8 lladdr 02:00:00:00:00:08 dev eth0 nud reachable");
  const auto endpoints = scan_endpoints(NetworkNamespace::open(ns.path()));

  ASSERT_EQ(endpoints.size(), 1U) << "lo and the address-less peer0 are skipped";
  const Endpoint& e = endpoints[0];
  EXPECT_EQ(e.name, "eth0");
  EXPECT_EQ(e.kind, EndpointKind::veth);
  EXPECT_EQ(e.link_kind, "veth");
  EXPECT_EQ(e.index, 0U);
  EXPECT_EQ(e.mac, "02:00:00:00:4d:02");
  EXPECT_EQ(e.mtu, 1400U);
  EXPECT_FALSE(e.noarp);
  EXPECT_EQ(e.ifindex, static_cast<int>(NetworkNamespace::open(ns.path()).run([] { return if_nametoindex("eth0"); })));
  ASSERT_EQ(e.addresses.size(), 1U) << "the IPv6 link-local address stays out";
  EXPECT_EQ(e.addresses[0], (IpAddress{AF_INET, "10.77.0.2", 24}));

  // The kernel's own 10.77.0.0/24 prefix route is not sent; the two added ones are.
  std::vector<std::string> routes;
  for (const auto& r : e.routes) routes.push_back(fmt::format("{}|{}|{}|{}", r.destination, r.gateway, r.device, r.family));
  EXPECT_THAT(routes, ::testing::UnorderedElementsAre(fmt::format("|10.77.0.1|eth0|{}", AF_INET),
                                                      fmt::format("10.78.0.0/16|10.77.0.1|eth0|{}", AF_INET)));
  ASSERT_EQ(e.neighbors.size(), 1U) << "only NUD_PERMANENT neighbours";
  EXPECT_EQ(e.neighbors[0].ip_address, "10.77.0.9");
  EXPECT_EQ(e.neighbors[0].mac, "02:00:00:00:00:09");
  EXPECT_EQ(e.neighbors[0].device, "eth0");
}

TEST(ScanEndpoints, ClassifiesTheOtherKindsThisKernelHas) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  std::vector<std::pair<std::string, EndpointKind>> expected{{"eth0", EndpointKind::veth}};
  ns.sh("ip tuntap add tapx mode tap && ip addr add 10.80.0.2/24 dev tapx");
  expected.emplace_back("tapx", EndpointKind::tap);
  if (ns.try_sh("ip link add mv0 link peer0 type macvlan mode bridge && ip addr add 10.81.0.2/24 dev mv0")) {
    expected.emplace_back("mv0", EndpointKind::macvlan);
  }
  if (ns.try_sh("ip link add ipv0 link peer0 type ipvlan mode l2 && ip addr add 10.82.0.2/24 dev ipv0")) {
    expected.emplace_back("ipv0", EndpointKind::ipvlan);
  }
  if (ns.try_sh("ip link add link peer0 name peer0.5 type vlan id 5 && ip addr add 10.83.0.2/24 dev peer0.5")) {
    expected.emplace_back("peer0.5", EndpointKind::vlan);
  }
  const auto endpoints = scan_endpoints(NetworkNamespace::open(ns.path()));
  ASSERT_EQ(endpoints.size(), expected.size());
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    const auto it = std::find_if(expected.begin(), expected.end(), [&](const auto& x) { return x.first == endpoints[i].name; });
    ASSERT_NE(it, expected.end()) << endpoints[i].name;
    EXPECT_EQ(endpoints[i].kind, it->second) << endpoints[i].name;
    EXPECT_EQ(endpoints[i].index, i) << "indexes follow the dump order";
  }
}

TEST(ScanEndpoints, UnsupportedLinkIsNamedAndNothingChanges) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  ns.sh("ip link add br0 type bridge && ip addr add 10.79.0.1/24 dev br0");
  const std::string before = ns.snapshot();
  NetworkOptions options;
  options.netns = ns.path();
  Errc code{};
  const std::string error = error_text([&] { (void)PodNetwork::scan(options); }, &code);
  EXPECT_EQ(code, Errc::not_supported);
  EXPECT_THAT(error, HasSubstr(fmt::format("scan network namespace {}: link 'br0' has type 'bridge', which is not supported",
                                           ns.path().string())));
  EXPECT_THAT(error, Not(HasSubstr("network namespace " + ns.path().string() + ": scan"))) << "the path is named once";
  EXPECT_EQ(ns.snapshot(), before);
}

TEST(ScanEndpoints, Layer3TunIsRefused) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  ns.sh("ip tuntap add tun0 mode tun && ip addr add 10.84.0.2/24 dev tun0");
  EXPECT_THAT(error_text([&] { (void)scan_endpoints(NetworkNamespace::open(ns.path())); }),
              HasSubstr("link 'tun0' is a layer-3 tun device"));
}

// ---------------------------------------------------------------------------------------------
// Models

TEST(PodNetworkScan, ModelsAndEmptyPath) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  NetworkOptions options;
  EXPECT_TRUE(PodNetwork::scan(options).endpoints().empty()) << "no namespace, no network";
  options.netns = ns.path();
  EXPECT_EQ(PodNetwork::scan(options).endpoints().size(), 1U);
  options.model = "";
  EXPECT_EQ(PodNetwork::scan(options).endpoints().size(), 1U) << "empty model means tcfilter";
  options.model = "none";
  EXPECT_TRUE(PodNetwork::scan(options).endpoints().empty());
  for (const char* model : {"macvtap", "l3forwarding"}) {
    options.model = model;
    Errc code{};
    EXPECT_THAT(error_text([&] { (void)PodNetwork::scan(options); }, &code),
                HasSubstr(fmt::format("internetworking_model = \"{}\" is not implemented", model)));
    EXPECT_EQ(code, Errc::not_supported);
  }
  options.model = "bogus";
  Errc code{};
  EXPECT_THAT(error_text([&] { (void)PodNetwork::scan(options); }, &code), HasSubstr("\"bogus\" is unknown"));
  EXPECT_EQ(code, Errc::invalid_argument);
}

TEST(NetworkOptionsFromConfig, ReadsModelAndQueues) {
  config::Config config;
  config.runtime.hypervisor_name = "qemu";
  config.hypervisor["qemu"].network.network_queues = 4;
  config.runtime.internetworking_model = "none";
  const NetworkOptions options = network_options(config, "sb", "/var/run/netns/x");
  EXPECT_EQ(options.model, "none");
  EXPECT_EQ(options.queues, 4U);
  EXPECT_EQ(options.netns, "/var/run/netns/x");
  config.runtime.internetworking_model.clear();
  config.hypervisor["qemu"].network.network_queues = 0;
  EXPECT_EQ(network_options(config, "sb", "").model, "tcfilter");
  EXPECT_EQ(network_options(config, "sb", "").queues, 1U);
}

// ---------------------------------------------------------------------------------------------
// tcfilter: tap + mirred

TEST(NetworkPair, CreatesTapAndMirredBothWaysAndTeardownRemovesAll) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  const std::string before = ns.snapshot();
  auto netns = std::make_shared<const NetworkNamespace>(NetworkNamespace::open(ns.path()));
  const auto endpoints = scan_endpoints(*netns);
  ASSERT_EQ(endpoints.size(), 1U);
  {
    NetworkPair pair = NetworkPair::create(netns, endpoints[0], 2);
    EXPECT_EQ(pair.tap(), "tap0_kata");
    const std::string tap = ns.sh("ip -d link show tap0_kata");
    EXPECT_THAT(tap, HasSubstr("mtu 1400"));
    EXPECT_THAT(tap, HasSubstr("UP"));
    EXPECT_THAT(tap, HasSubstr("tun type tap"));
    EXPECT_THAT(tap, HasSubstr("multi_queue"));
    EXPECT_THAT(ns.sh("tc qdisc show dev eth0"), HasSubstr("qdisc ingress ffff:"));
    EXPECT_THAT(ns.sh("tc qdisc show dev tap0_kata"), HasSubstr("qdisc ingress ffff:"));
    EXPECT_THAT(ns.sh("tc filter show dev eth0 ingress"), HasSubstr("Egress Redirect to device tap0_kata"));
    EXPECT_THAT(ns.sh("tc filter show dev tap0_kata ingress"), HasSubstr("Egress Redirect to device eth0"));
    auto fds = pair.take_tap_fds();
    EXPECT_EQ(fds.size(), 2U);
    EXPECT_TRUE(pair.take_tap_fds().empty());
    pair.teardown();
    EXPECT_EQ(ns.snapshot(), before) << "teardown removes the tap, both qdiscs and both filters, "
                                        "even while a descriptor of the tap is still open";
    pair.teardown();  // idempotent
  }
  {
    NetworkPair pair = NetworkPair::create(netns, endpoints[0], 1);
    EXPECT_THAT(ns.sh("ip -d link show tap0_kata"), Not(HasSubstr("multi_queue")));
  }  // the destructor tears down
  EXPECT_EQ(ns.snapshot(), before);
}

/// A raw frame with a local experimental EtherType and a marker payload.
std::vector<unsigned char> test_frame(const std::string& marker) {
  // Sized once (Ethernet's 60-byte minimum, zero padded): GCC 12 misreads a growing insert.
  std::vector<unsigned char> frame(std::max<std::size_t>(14 + marker.size(), 60), 0);
  std::fill_n(frame.begin(), 6, 0xff);  // broadcast destination
  const unsigned char source[6] = {0x02, 0, 0, 0, 0x11, 0x22};
  std::memcpy(frame.data() + 6, source, 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  std::memcpy(frame.data() + 14, marker.data(), marker.size());
  return frame;
}

bool contains(const std::vector<unsigned char>& data, const std::string& marker) {
  return std::search(data.begin(), data.end(), marker.begin(), marker.end()) != data.end();
}

/// Reads frames from `fd` (a tap or a packet socket) until one contains `marker` or two seconds
/// pass.
bool receive_marker(int fd, bool packet_socket, const std::string& marker) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    std::vector<unsigned char> buffer(2048);
    sockaddr_ll from{};
    socklen_t from_size = sizeof from;
    const ssize_t got = packet_socket ? ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_size)
                                      : ::read(fd, buffer.data(), buffer.size());
    if (got <= 0) continue;
    // A packet socket also shows what its link sends; only received frames count.
    if (packet_socket && from.sll_pkttype == PACKET_OUTGOING) continue;
    buffer.resize(static_cast<std::size_t>(got));
    if (contains(buffer, marker)) return true;
  }
  return false;
}

TEST(NetworkPair, FramesFlowBetweenTapAndVethPeer) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  auto netns = std::make_shared<const NetworkNamespace>(NetworkNamespace::open(ns.path()));
  NetworkPair pair = NetworkPair::create(netns, scan_endpoints(*netns)[0], 1);
  auto fds = pair.take_tap_fds();
  ASSERT_EQ(fds.size(), 1U);
  const int tap = fds[0].get();
  ASSERT_EQ(::fcntl(tap, F_SETFL, O_NONBLOCK), 0);

  // The far end of the veth: what the CNI bridge would see.
  int peer_index = 0;
  UniqueFd peer = netns->run([&] {
    peer_index = static_cast<int>(if_nametoindex("peer0"));
    UniqueFd s(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL)));
    if (!s) fail_errno(errno, "packet socket");
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = peer_index;
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) fail_errno(errno, "bind");
    return s;
  });

  // Guest -> network: what QEMU writes into the tap (a virtio-net header first) leaves eth0.
  std::vector<unsigned char> from_guest(10, 0);  // struct virtio_net_hdr, all zero
  const auto frame = test_frame("kata-guest-to-network");
  from_guest.insert(from_guest.end(), frame.begin(), frame.end());
  ASSERT_EQ(::write(tap, from_guest.data(), from_guest.size()), static_cast<ssize_t>(from_guest.size()));
  EXPECT_TRUE(receive_marker(peer.get(), true, "kata-guest-to-network"));

  // Network -> guest: a frame arriving on eth0 is readable from the tap.
  const auto reply = test_frame("kata-network-to-guest");
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = peer_index;
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);
  ASSERT_EQ(::sendto(peer.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
            static_cast<ssize_t>(reply.size()));
  EXPECT_TRUE(receive_marker(tap, false, "kata-network-to-guest"));
}

TEST(NetworkPair, ForeignIngressQdiscIsLeftAloneAndNothingElseRemains) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  ns.sh("tc qdisc add dev eth0 ingress");
  const std::string before = ns.snapshot();
  auto netns = std::make_shared<const NetworkNamespace>(NetworkNamespace::open(ns.path()));
  Errc code{};
  const std::string error = error_text([&] { (void)NetworkPair::create(netns, scan_endpoints(*netns)[0], 1); }, &code);
  EXPECT_EQ(code, Errc::already_exists);
  EXPECT_THAT(error, HasSubstr("connect eth0 to tap0_kata: eth0 already has an ingress qdisc"));
  EXPECT_EQ(ns.snapshot(), before) << "the foreign qdisc stays, the tap is gone";
}

// ---------------------------------------------------------------------------------------------
// attach / configure_guest

TEST(Attach, ColdPlugsOneNicPerEndpointAndTeardownLeavesNothing) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  add_veth(ns, "eth1", "peer1", 78);
  const std::string before = ns.snapshot();
  asio::io_context io;
  testing::FakeHypervisor vm(io.get_executor(), fake_context());
  NetworkOptions options;
  options.netns = ns.path();
  {
    PodNetwork network = PodNetwork::scan(options);
    ASSERT_EQ(network.endpoints().size(), 2U);
    testing::run_until_done(io, attach(network, vm));
    EXPECT_THAT(vm.cold_plugged, ::testing::ElementsAre("tap0_kata", "tap1_kata"));
    ASSERT_EQ(vm.network_devices.size(), 2U);
    EXPECT_EQ(vm.network_devices[0].guest_mac, "02:00:00:00:4d:02") << "the guest NIC gets the veth's MAC";
    EXPECT_EQ(vm.network_devices[1].guest_mac, "02:00:00:00:4e:02");
    EXPECT_EQ(vm.network_devices[0].tap_fds.size(), 1U);
    EXPECT_THAT(network.plumbed_links(), ::testing::ElementsAre("tap0_kata", "eth0", "tap1_kata", "eth1"));
    const auto saved = network.save();
    ASSERT_EQ(saved.size(), 2U);
    ASSERT_TRUE(saved[1].veth_endpoint.has_value());
    EXPECT_EQ(saved[1].veth_endpoint->if_name, "eth1");
    const auto interfaces = network.guest_interfaces();
    ASSERT_EQ(interfaces.size(), 2U);
    EXPECT_EQ(interfaces[0].devicepath(), "02/01") << "the hypervisor's guest PCI path";
    EXPECT_THAT(ns.sh("tc filter show dev eth1 ingress"), HasSubstr("Egress Redirect to device tap1_kata"));
  }  // PodNetwork's destructor tears down while the "VMM" still holds the taps
  EXPECT_EQ(ns.snapshot(), before);
}

TEST(Attach, FailureOfALaterEndpointRollsBackTheEarlierOnes) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  add_veth(ns, "eth1", "peer1", 78);
  ns.sh("ip tuntap add tap1_kata mode tap");  // someone else's, without an address: not scanned
  const std::string before = ns.snapshot();
  asio::io_context io;
  testing::FakeHypervisor vm(io.get_executor(), fake_context());
  NetworkOptions options;
  options.netns = ns.path();
  PodNetwork network = PodNetwork::scan(options);
  ASSERT_EQ(network.endpoints().size(), 2U);
  Errc code{};
  const std::string error = error_text([&] { testing::run_until_done(io, attach(network, vm)); }, &code);
  EXPECT_EQ(code, Errc::already_exists);
  EXPECT_THAT(error, HasSubstr("attach network tap1_kata: connect eth1 to tap1_kata: a link named tap1_kata already exists"));
  EXPECT_TRUE(vm.cold_plugged.empty()) << "the first NIC was taken back out of the VM";
  EXPECT_TRUE(vm.network_devices.empty());
  EXPECT_TRUE(network.plumbed_links().empty());
  EXPECT_EQ(ns.snapshot(), before) << "tap0_kata and its qdiscs are gone; the foreign tap1_kata is untouched";
}

TEST(Attach, HotplugRefusedByTheHypervisorLeavesNothing) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  const std::string before = ns.snapshot();
  asio::io_context io;
  testing::FakeHypervisor vm(io.get_executor(), fake_context());
  testing::run_until_done(io, vm.start_vm(std::chrono::seconds(1)));  // the fake has no network_hotplug
  NetworkOptions options;
  options.netns = ns.path();
  PodNetwork network = PodNetwork::scan(options);
  Errc code{};
  EXPECT_THAT(error_text([&] { testing::run_until_done(io, attach(network, vm)); }, &code),
              HasSubstr("attach network tap0_kata: add NIC to the VM: hotplug of this device kind is not supported"));
  EXPECT_EQ(code, Errc::not_supported);
  EXPECT_EQ(ns.snapshot(), before);
}

TEST(RemoveLeftovers, CleansWhatADeadShimLeft) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  const std::string before = ns.snapshot();
  auto netns = std::make_shared<const NetworkNamespace>(NetworkNamespace::open(ns.path()));
  NetworkPair pair = NetworkPair::create(netns, scan_endpoints(*netns)[0], 1);
  auto vmm_fds = pair.take_tap_fds();  // a VMM that still runs keeps the tap alive
  remove_leftovers(ns.path(), {"tap0_kata", "eth0"});
  EXPECT_EQ(ns.snapshot(), before);
  remove_leftovers("/nonexistent/netns", {"tap0_kata"});  // a namespace that is gone: nothing to do
}

/// An agent that records what it is asked and fails UpdateInterface with not_found first.
struct RecordingAgent {
  int not_found_answers = 0;
  std::vector<grpc::UpdateInterfaceRequest> interfaces;
  std::vector<grpc::AddARPNeighborsRequest> neighbors;
  std::vector<grpc::UpdateRoutesRequest> routes;
  int update_interface_calls = 0;

  Task<types::Interface> update_interface(const grpc::UpdateInterfaceRequest& request) {
    ++update_interface_calls;
    if (not_found_answers > 0) {
      --not_found_answers;
      fail(Errc::not_found, "agent UpdateInterface: no link has hardware address '{}'", request.interface().hwaddr());
    }
    interfaces.push_back(request);
    co_return request.interface();
  }
  Task<void> add_arp_neighbors(const grpc::AddARPNeighborsRequest& request) {
    neighbors.push_back(request);
    co_return;
  }
  Task<grpc::Routes> update_routes(const grpc::UpdateRoutesRequest& request) {
    routes.push_back(request);
    co_return request.routes();
  }
};

TEST(ConfigureGuest, SendsInterfacesNeighboursAndRoutesRetryingWhileTheNicIsProbed) {
  KATA_REQUIRE_NETWORK_TESTS();
  ScratchNetns ns;
  add_veth(ns);
  ns.sh("ip route add default via 10.77.0.1 dev eth0 && ip neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent");
  NetworkOptions options;
  options.netns = ns.path();
  const PodNetwork network = PodNetwork::scan(options);
  asio::io_context io;
  RecordingAgent agent;
  agent.not_found_answers = 2;
  testing::run_until_done(io, configure_guest(network, agent, GuestRetry{5, std::chrono::milliseconds(1)}));
  EXPECT_EQ(agent.update_interface_calls, 3);
  ASSERT_EQ(agent.interfaces.size(), 1U);
  const types::Interface& interface = agent.interfaces[0].interface();
  EXPECT_EQ(interface.name(), "eth0");
  EXPECT_EQ(interface.device(), "eth0");
  EXPECT_EQ(interface.hwaddr(), "02:00:00:00:4d:02");
  EXPECT_EQ(interface.mtu(), 1400U);
  ASSERT_EQ(interface.ipaddresses_size(), 1);
  EXPECT_EQ(interface.ipaddresses(0).address(), "10.77.0.2");
  EXPECT_EQ(interface.ipaddresses(0).mask(), "24");
  EXPECT_EQ(interface.ipaddresses(0).family(), types::v4);
  ASSERT_EQ(agent.neighbors.size(), 1U);
  ASSERT_EQ(agent.neighbors[0].neighbors().arpneighbors_size(), 1);
  EXPECT_EQ(agent.neighbors[0].neighbors().arpneighbors(0).toipaddress().address(), "10.77.0.9");
  EXPECT_EQ(agent.neighbors[0].neighbors().arpneighbors(0).lladdr(), "02:00:00:00:00:09");
  ASSERT_EQ(agent.routes.size(), 1U);
  ASSERT_EQ(agent.routes[0].routes().routes_size(), 1);
  EXPECT_EQ(agent.routes[0].routes().routes(0).dest(), "");
  EXPECT_EQ(agent.routes[0].routes().routes(0).gateway(), "10.77.0.1");
  EXPECT_EQ(agent.routes[0].routes().routes(0).device(), "eth0");

  RecordingAgent stubborn;
  stubborn.not_found_answers = 100;
  Errc code{};
  EXPECT_THAT(error_text([&] {
                testing::run_until_done(io, configure_guest(network, stubborn, GuestRetry{3, std::chrono::milliseconds(1)}));
              }, &code),
              HasSubstr("configure guest interface eth0 (02:00:00:00:4d:02): agent UpdateInterface: no link"));
  EXPECT_EQ(code, Errc::not_found);
  EXPECT_EQ(stubborn.update_interface_calls, 3);
  EXPECT_TRUE(stubborn.routes.empty());
}

}  // namespace
}  // namespace kata::resource::network
