// The host side of the guest agent: grpc.AgentService and grpc.Health over one ttRPC connection.
//
// This layer owns the *policy* upstream's KataAgent has: which RPC gets which deadline (every call
// gets [agent.kata] create_container_timeout, except the long polls WaitProcess, ReadStdout,
// ReadStderr, WriteStdin and GetOOMEvent, which have none), how readiness is established after
// boot, and the context every error carries ("agent CreateContainer c1: ...").
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "kata/agent.pb.h"
#include "kata/agent/transport.hpp"
#include "kata/config/schema.hpp"
#include "kata/core/asio.hpp"
#include "kata/health.pb.h"
#include "kata/ttrpc/client.hpp"

namespace kata::agent {

/// Deadlines for agent calls, from [agent.kata].
struct AgentTimeouts {
  /// create_container_timeout (seconds in the TOML): every RPC without a long-poll nature.
  std::chrono::milliseconds request{30'000};
  /// health_check_request_timeout_ms.
  std::chrono::milliseconds health{90'000};

  [[nodiscard]] static AgentTimeouts from(const config::AgentConfig& config);
};

class KataAgent {
 public:
  static constexpr std::string_view service = "grpc.AgentService";
  static constexpr std::string_view health_service = "grpc.Health";

  /// Dials `address` with transport T and waits until the agent answers Health.Check, all before
  /// `deadline`. Errors: the transport's (deadline_exceeded naming the address), or
  /// deadline_exceeded "agent at <url> did not answer Health.Check before the deadline".
  template <AgentTransport T>
  static Task<KataAgent> connect(Executor executor, const hypervisor::AgentAddress& address, AgentTimeouts timeouts,
                                 std::chrono::steady_clock::time_point deadline);

  KataAgent(ttrpc::Client client, AgentTimeouts timeouts, std::string url);

  KataAgent(KataAgent&&) noexcept = default;
  KataAgent& operator=(KataAgent&&) noexcept = default;

  // Sandbox
  Task<void> create_sandbox(const grpc::CreateSandboxRequest& request);
  Task<void> destroy_sandbox();
  Task<grpc::GuestDetailsResponse> get_guest_details(const grpc::GuestDetailsRequest& request);
  Task<void> online_cpu_mem(const grpc::OnlineCPUMemRequest& request);
  Task<grpc::OOMEvent> get_oom_event();  ///< long poll: no deadline
  Task<void> set_guest_date_time(const grpc::SetGuestDateTimeRequest& request);

  // Containers
  Task<void> create_container(const grpc::CreateContainerRequest& request);
  Task<void> start_container(const grpc::StartContainerRequest& request);
  Task<void> remove_container(const grpc::RemoveContainerRequest& request);
  Task<void> pause_container(const grpc::PauseContainerRequest& request);
  Task<void> resume_container(const grpc::ResumeContainerRequest& request);
  Task<void> update_container(const grpc::UpdateContainerRequest& request);
  Task<grpc::StatsContainerResponse> stats_container(const grpc::StatsContainerRequest& request);

  // Processes
  Task<void> exec_process(const grpc::ExecProcessRequest& request);
  Task<void> signal_process(const grpc::SignalProcessRequest& request);
  Task<grpc::WaitProcessResponse> wait_process(const grpc::WaitProcessRequest& request);      ///< no deadline
  Task<grpc::WriteStreamResponse> write_stdin(const grpc::WriteStreamRequest& request);       ///< no deadline
  Task<grpc::ReadStreamResponse> read_stdout(const grpc::ReadStreamRequest& request);         ///< no deadline
  Task<grpc::ReadStreamResponse> read_stderr(const grpc::ReadStreamRequest& request);         ///< no deadline
  Task<void> close_stdin(const grpc::CloseStdinRequest& request);
  Task<void> tty_win_resize(const grpc::TtyWinResizeRequest& request);

  // Network
  Task<types::Interface> update_interface(const grpc::UpdateInterfaceRequest& request);
  Task<grpc::Routes> update_routes(const grpc::UpdateRoutesRequest& request);
  Task<void> add_arp_neighbors(const grpc::AddARPNeighborsRequest& request);

  // Health
  Task<grpc::HealthCheckResponse> check();
  Task<grpc::VersionCheckResponse> version();

  /// Fails every pending call with unavailable (long polls included) and closes the connection.
  void close() noexcept;
  [[nodiscard]] bool is_connected() const noexcept;
  [[nodiscard]] const std::string& url() const noexcept { return url_; }

 private:
  enum class Deadline { request, none, health };

  template <class Response, class Request>
  // The request is taken by value: the coroutine starts lazily, after a temporary argument is gone.
  Task<Response> invoke(std::string_view service_name, std::string_view method, Request request, Deadline deadline);

  std::unique_ptr<ttrpc::Client> client_;  // stable address across moves of KataAgent
  AgentTimeouts timeouts_;
  std::string url_;
};

}  // namespace kata::agent

#include "kata/agent/impl/kata_agent.hpp"
