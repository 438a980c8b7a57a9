// The agent's ttRPC services: grpc.AgentService and grpc.Health, on top of the system layer
// (container processes, cgroups, storages, netlink, hotplug).
//
// Threading: every handler runs on the executor given to make_agent_services (one io_context
// thread), which owns the registry of containers and processes. Work that blocks (spawning and
// starting a container, mounting, freezing, onlining CPUs) runs on `blocking`, a thread pool, so
// a long poll (WaitProcess, ReadStdout, GetOOMEvent) or a slow spawn never holds up other calls.
// Process exits arrive from the Reaper thread and are posted to the executor.
//
// Errors reach the host as ttRPC statuses: not_found for an unknown container or exec id (or a
// signal to a process that has exited), already_exists for a duplicate id, invalid_argument for a
// bad spec or request, not_supported (Unimplemented) for RPCs this agent does not serve, each
// with a message naming what was wrong. A failed call leaves every other container untouched.
#pragma once

#include <filesystem>
#include <memory>

#include <boost/asio/thread_pool.hpp>

#include "kata/agent.ttrpc.pb.h"
#include "kata/core/asio.hpp"
#include "kata/health.ttrpc.pb.h"
#include "kata/ttrpc/server.hpp"

namespace kata::agent_guest {

struct AgentServiceOptions {
  /// The cgroup v2 mount; containers get <cgroup_root>/kata/<container id>.
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  /// CreateSandbox's dns goes here.
  std::filesystem::path resolv_conf = "/etc/resolv.conf";
  /// Whether the agent is the guest's init (GetGuestDetails.agent_details.init_daemon).
  bool init_daemon = false;
};

struct AgentServices {
  std::shared_ptr<grpc::AgentService> agent;
  std::shared_ptr<grpc::Health> health;
};

/// Creates the services. `blocking` must outlive every call the services serve.
[[nodiscard]] AgentServices make_agent_services(Executor executor, asio::thread_pool& blocking,
                                                AgentServiceOptions options = {});

/// Registers both services on `server` (throws already_exists if one is registered already).
void register_agent_services(ttrpc::Server& server, const AgentServices& services);

}  // namespace kata::agent_guest
