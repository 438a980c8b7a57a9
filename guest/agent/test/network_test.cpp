#include "kata/agent_guest/network.hpp"

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

// Runs `body` on a thread of its own in a new network namespace (a namespace is per thread), so
// nothing touches the host's network. The fixture links are made with `ip`, forked from that thread.
void in_fresh_netns(const std::function<void()>& body) {
  std::exception_ptr failure;
  std::thread([&] {
    try {
      if (::unshare(CLONE_NEWNET) != 0) throw std::runtime_error("unshare(CLONE_NEWNET) failed");
      body();
    } catch (...) {
      failure = std::current_exception();
    }
  }).join();
  if (failure) std::rethrow_exception(failure);
}

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  ::pclose(pipe);
  return out;
}

struct NetlinkTest : ::testing::Test {
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    if (::access("/usr/sbin/ip", X_OK) != 0 && ::access("/sbin/ip", X_OK) != 0 && ::access("/bin/ip", X_OK) != 0) {
      GTEST_SKIP() << "needs iproute2 for the fixture links";
    }
  }
};

TEST_F(NetlinkTest, ConfiguresAnInterfaceFoundByItsMac) {
  in_fresh_netns([] {
    ASSERT_EQ(std::system("ip link add kv0 address 02:00:00:00:00:01 mtu 1500 type veth peer name kv1"), 0);
    Netlink nl = Netlink::open();
    const NetworkInterface result = nl.update_interface(NetworkInterface{
        "eth0", "02:00:00:00:00:01", 1400, {{AF_INET, "10.88.0.2", 24}, {AF_INET6, "fd00::2", 64}}, false});
    EXPECT_EQ(result.name, "eth0");
    EXPECT_EQ(result.mtu, 1400u);
    EXPECT_TRUE(result.up);
    EXPECT_NE(std::find(result.addresses.begin(), result.addresses.end(), IpAddress{AF_INET, "10.88.0.2", 24}),
              result.addresses.end());
    EXPECT_NE(std::find(result.addresses.begin(), result.addresses.end(), IpAddress{AF_INET6, "fd00::2", 64}),
              result.addresses.end());

    // A second update replaces the addresses instead of adding to them.
    const NetworkInterface again =
        nl.update_interface(NetworkInterface{"eth0", "02:00:00:00:00:01", 0, {{AF_INET, "10.88.0.3", 16}}, false});
    EXPECT_EQ(again.mtu, 1400u);
    std::vector<IpAddress> v4;
    for (const auto& a : again.addresses) {
      if (a.family == AF_INET) v4.push_back(a);
    }
    EXPECT_EQ(v4, (std::vector<IpAddress>{{AF_INET, "10.88.0.3", 16}}));

    const auto listed = nl.list_interfaces();
    EXPECT_TRUE(std::any_of(listed.begin(), listed.end(), [](const auto& i) { return i.name == "eth0" && i.up; }));
    EXPECT_TRUE(std::any_of(listed.begin(), listed.end(), [](const auto& i) { return i.name == "lo"; }));
  });
}

TEST_F(NetlinkTest, UnknownMacIsNotFound) {
  in_fresh_netns([] {
    Netlink nl = Netlink::open();
    try {
      (void)nl.update_interface(NetworkInterface{"eth0", "02:00:00:00:00:99", 0, {}, false});
      FAIL() << "expected a throw";
    } catch (const std::exception& e) {
      EXPECT_EQ(describe(e), "update interface eth0 (02:00:00:00:00:99): no link has hardware address '02:00:00:00:00:99'");
      EXPECT_EQ(code_of(e), Errc::not_found);
    }
  });
}

TEST_F(NetlinkTest, ReplacesRoutesGatewayAfterOnLinkAndAddsNeighbours) {
  in_fresh_netns([] {
    ASSERT_EQ(std::system("ip link add kv0 address 02:00:00:00:00:01 type veth peer name kv1"), 0);
    Netlink nl = Netlink::open();
    (void)nl.update_interface(NetworkInterface{"eth0", "02:00:00:00:00:01", 0, {{AF_INET, "10.88.0.2", 24}}, false});
    // The gateway route comes first in the request; it only works once 10.99/16 is on-link.
    nl.update_routes({NetworkRoute{"", "10.99.0.1", "eth0", "", 0, 0},
                      NetworkRoute{"10.99.0.0/16", "", "eth0", "", RT_SCOPE_LINK, AF_INET}});
    auto routes = nl.list_routes();
    auto has = [&](const std::string& dst, const std::string& gw) {
      return std::any_of(routes.begin(), routes.end(), [&](const NetworkRoute& r) {
        return r.destination == dst && r.gateway == gw && r.device == "eth0";
      });
    };
    EXPECT_TRUE(has("", "10.99.0.1"));
    EXPECT_TRUE(has("10.99.0.0/16", ""));
    EXPECT_TRUE(has("10.88.0.0/24", ""));  // the kernel's prefix route stays

    nl.update_routes({NetworkRoute{"10.77.0.0/16", "", "eth0", "", 0, AF_INET}});
    routes = nl.list_routes();
    EXPECT_FALSE(has("", "10.99.0.1"));
    EXPECT_TRUE(has("10.77.0.0/16", ""));
    EXPECT_TRUE(has("10.88.0.0/24", ""));

    nl.add_arp_neighbors({ArpNeighbor{"10.88.0.1", "eth0", "02:00:00:00:00:02", 0, 0}});
    EXPECT_NE(run("ip neigh show dev eth0").find("10.88.0.1 lladdr 02:00:00:00:00:02 PERMANENT"), std::string::npos)
        << run("ip neigh show dev eth0");
    EXPECT_THROW(nl.update_routes({NetworkRoute{"", "10.88.0.1", "nope0", "", 0, 0}}), Error);
  });
}

}  // namespace
}  // namespace kata::agent_guest
