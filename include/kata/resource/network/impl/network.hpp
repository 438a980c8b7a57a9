// Template bodies of network.hpp.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kata/core/error.hpp"
#include "kata/log/log.hpp"

namespace kata::resource::network {

template <hypervisor::Hypervisor H>
Task<void> attach(PodNetwork& network, H& vm) {
  std::vector<std::string> added;
  std::exception_ptr failure;
  std::string current;
  try {
    for (std::size_t i = 0; i < network.endpoints().size(); ++i) {
      current = tap_name(network.endpoints()[i].index);
      hypervisor::NetworkDevice device = with_context(fmt::format("attach network {}", current), [&] {
        return network.connect(i);
      });
      const std::string id = device.id;
      hypervisor::Device nic(std::move(device));
      hypervisor::DeviceAttachment attachment;
      try {
        attachment = co_await vm.add_device(std::move(nic));
      } catch (...) {
        rethrow_with_context(fmt::format("attach network {}: add NIC to the VM", current));
      }
      added.push_back(id);
      network.set_guest_pci_path(i, std::move(attachment.guest_pci_path));
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) co_return;

  log::Logger log("network");
  for (auto it = added.rbegin(); it != added.rend(); ++it) {
    try {
      co_await vm.remove_device(*it);
    } catch (const std::exception& e) {
      log.warn("roll back NIC {}: {}", *it, describe(e));
    }
  }
  network.teardown();
  std::rethrow_exception(failure);
}

template <class Agent>
Task<void> configure_guest(const PodNetwork& network, Agent& agent, GuestRetry retry) {
  const auto executor = co_await asio::this_coro::executor;
  for (const types::Interface& interface : network.guest_interfaces()) {
    grpc::UpdateInterfaceRequest request;
    *request.mutable_interface() = interface;
    for (int attempt = 1;; ++attempt) {
      std::exception_ptr failure;
      try {
        (void)co_await agent.update_interface(request);
      } catch (...) {
        failure = std::current_exception();
      }
      if (!failure) break;
      // The guest may still be probing the NIC (a hotplugged one in particular).
      if (code_of(failure) != Errc::not_found || attempt >= retry.attempts) {
        try {
          std::rethrow_exception(failure);
        } catch (...) {
          rethrow_with_context(fmt::format("configure guest interface {} ({})", interface.name(), interface.hwaddr()));
        }
      }
      asio::steady_timer pause(executor, retry.interval);
      co_await pause.async_wait(asio::use_awaitable);
    }
  }
  const std::vector<types::ARPNeighbor> neighbors = network.guest_neighbors();
  if (!neighbors.empty()) {
    grpc::AddARPNeighborsRequest request;
    for (const auto& neighbor : neighbors) *request.mutable_neighbors()->add_arpneighbors() = neighbor;
    try {
      co_await agent.add_arp_neighbors(request);
    } catch (...) {
      rethrow_with_context("add guest ARP neighbours");
    }
  }
  const std::vector<types::Route> routes = network.guest_routes();
  if (!routes.empty()) {
    grpc::UpdateRoutesRequest request;
    for (const auto& route : routes) *request.mutable_routes()->add_routes() = route;
    try {
      (void)co_await agent.update_routes(request);
    } catch (...) {
      rethrow_with_context("update guest routes");
    }
  }
}

}  // namespace kata::resource::network
