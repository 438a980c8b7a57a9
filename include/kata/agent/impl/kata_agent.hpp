// Template bodies of kata_agent.hpp.
#pragma once

#include <fmt/format.h>

#include "kata/core/error.hpp"

namespace kata::agent {

template <AgentTransport T>
Task<KataAgent> KataAgent::connect(Executor executor, const hypervisor::AgentAddress& address, AgentTimeouts timeouts,
                                   std::chrono::steady_clock::time_point deadline) {
  const std::string url = hypervisor::to_url(address);
  DialOptions dial{.deadline = deadline};
  UniqueFd stream = co_await T::connect(executor, address, dial);
  KataAgent agent(ttrpc::Client(executor, std::move(stream)), timeouts, url);
  // Over virtio-serial the host's bytes wait in QEMU until the guest opens its port, so one
  // Check bounded by the boot deadline is the readiness probe; over (hybrid) vsock the dial above
  // already needed a listening agent.
  grpc::CheckRequest probe;
  ttrpc::CallOptions options;
  options.deadline = deadline;
  try {
    co_await agent.client_->call(health_service, "Check", probe.SerializeAsString(), std::move(options));
  } catch (const Error& e) {
    if (e.code() == Errc::deadline_exceeded) {
      fail(Errc::deadline_exceeded, "agent at {} did not answer Health.Check before the deadline", url);
    }
    rethrow_with_context(fmt::format("agent at {}: Health.Check", url));
  }
  co_return std::move(agent);
}

template <class Response, class Request>
Task<Response> KataAgent::invoke(std::string_view service_name, std::string_view method, Request request,
                                 Deadline deadline) {
  ttrpc::CallOptions options;
  switch (deadline) {
    case Deadline::request: options.deadline = ttrpc::Clock::now() + timeouts_.request; break;
    case Deadline::health: options.deadline = ttrpc::Clock::now() + timeouts_.health; break;
    case Deadline::none: break;
  }
  std::string reply;
  try {
    reply = co_await client_->call(service_name, method, request.SerializeAsString(), std::move(options));
  } catch (...) {
    rethrow_with_context(fmt::format("agent {}", method));
  }
  Response response;
  if (!response.ParseFromString(reply)) {
    fail(Errc::data_loss, "agent {}: malformed {} reply ({} bytes)", method, response.GetTypeName(), reply.size());
  }
  co_return response;
}

}  // namespace kata::agent
