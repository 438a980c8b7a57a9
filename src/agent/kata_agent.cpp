#include "kata/agent/kata_agent.hpp"

#include "google/protobuf/empty.pb.h"

namespace kata::agent {

AgentTimeouts AgentTimeouts::from(const config::AgentConfig& config) {
  AgentTimeouts timeouts;
  if (config.request_timeout_ms > 0) timeouts.request = std::chrono::milliseconds(config.request_timeout_ms);
  if (config.health_check_request_timeout_ms > 0) {
    timeouts.health = std::chrono::milliseconds(config.health_check_request_timeout_ms);
  }
  return timeouts;
}

KataAgent::KataAgent(ttrpc::Client client, AgentTimeouts timeouts, std::string url)
    : client_(std::make_unique<ttrpc::Client>(std::move(client))), timeouts_(timeouts), url_(std::move(url)) {}

void KataAgent::close() noexcept {
  if (client_) client_->close();
}

bool KataAgent::is_connected() const noexcept { return client_ && client_->is_open(); }

namespace {
using Empty = google::protobuf::Empty;
}

Task<void> KataAgent::create_sandbox(const grpc::CreateSandboxRequest& r) {
  co_await invoke<Empty>(service, "CreateSandbox", r, Deadline::request);
}
Task<void> KataAgent::destroy_sandbox() {
  const grpc::DestroySandboxRequest request;  // named: see the GCC 12 note in docs/architecture.md
  co_await invoke<Empty>(service, "DestroySandbox", request, Deadline::request);
}
Task<grpc::GuestDetailsResponse> KataAgent::get_guest_details(const grpc::GuestDetailsRequest& r) {
  return invoke<grpc::GuestDetailsResponse>(service, "GetGuestDetails", r, Deadline::request);
}
Task<void> KataAgent::online_cpu_mem(const grpc::OnlineCPUMemRequest& r) {
  co_await invoke<Empty>(service, "OnlineCPUMem", r, Deadline::request);
}
Task<grpc::OOMEvent> KataAgent::get_oom_event() {
  return invoke<grpc::OOMEvent>(service, "GetOOMEvent", grpc::GetOOMEventRequest{}, Deadline::none);
}
Task<void> KataAgent::set_guest_date_time(const grpc::SetGuestDateTimeRequest& r) {
  co_await invoke<Empty>(service, "SetGuestDateTime", r, Deadline::request);
}
Task<void> KataAgent::create_container(const grpc::CreateContainerRequest& r) {
  co_await invoke<Empty>(service, "CreateContainer", r, Deadline::request);
}
Task<void> KataAgent::start_container(const grpc::StartContainerRequest& r) {
  co_await invoke<Empty>(service, "StartContainer", r, Deadline::request);
}
Task<void> KataAgent::remove_container(const grpc::RemoveContainerRequest& r) {
  co_await invoke<Empty>(service, "RemoveContainer", r, Deadline::request);
}
Task<void> KataAgent::pause_container(const grpc::PauseContainerRequest& r) {
  co_await invoke<Empty>(service, "PauseContainer", r, Deadline::request);
}
Task<void> KataAgent::resume_container(const grpc::ResumeContainerRequest& r) {
  co_await invoke<Empty>(service, "ResumeContainer", r, Deadline::request);
}
Task<void> KataAgent::update_container(const grpc::UpdateContainerRequest& r) {
  co_await invoke<Empty>(service, "UpdateContainer", r, Deadline::request);
}
Task<grpc::StatsContainerResponse> KataAgent::stats_container(const grpc::StatsContainerRequest& r) {
  return invoke<grpc::StatsContainerResponse>(service, "StatsContainer", r, Deadline::request);
}
Task<void> KataAgent::exec_process(const grpc::ExecProcessRequest& r) {
  co_await invoke<Empty>(service, "ExecProcess", r, Deadline::request);
}
Task<void> KataAgent::signal_process(const grpc::SignalProcessRequest& r) {
  co_await invoke<Empty>(service, "SignalProcess", r, Deadline::request);
}
Task<grpc::WaitProcessResponse> KataAgent::wait_process(const grpc::WaitProcessRequest& r) {
  return invoke<grpc::WaitProcessResponse>(service, "WaitProcess", r, Deadline::none);
}
Task<grpc::WriteStreamResponse> KataAgent::write_stdin(const grpc::WriteStreamRequest& r) {
  return invoke<grpc::WriteStreamResponse>(service, "WriteStdin", r, Deadline::none);
}
Task<grpc::ReadStreamResponse> KataAgent::read_stdout(const grpc::ReadStreamRequest& r) {
  return invoke<grpc::ReadStreamResponse>(service, "ReadStdout", r, Deadline::none);
}
Task<grpc::ReadStreamResponse> KataAgent::read_stderr(const grpc::ReadStreamRequest& r) {
  return invoke<grpc::ReadStreamResponse>(service, "ReadStderr", r, Deadline::none);
}
Task<void> KataAgent::close_stdin(const grpc::CloseStdinRequest& r) {
  co_await invoke<Empty>(service, "CloseStdin", r, Deadline::request);
}
Task<void> KataAgent::tty_win_resize(const grpc::TtyWinResizeRequest& r) {
  co_await invoke<Empty>(service, "TtyWinResize", r, Deadline::request);
}
Task<types::Interface> KataAgent::update_interface(const grpc::UpdateInterfaceRequest& r) {
  return invoke<types::Interface>(service, "UpdateInterface", r, Deadline::request);
}
Task<grpc::Routes> KataAgent::update_routes(const grpc::UpdateRoutesRequest& r) {
  return invoke<grpc::Routes>(service, "UpdateRoutes", r, Deadline::request);
}
Task<void> KataAgent::add_arp_neighbors(const grpc::AddARPNeighborsRequest& r) {
  co_await invoke<Empty>(service, "AddARPNeighbors", r, Deadline::request);
}
Task<grpc::HealthCheckResponse> KataAgent::check() {
  return invoke<grpc::HealthCheckResponse>(health_service, "Check", grpc::CheckRequest{}, Deadline::health);
}
Task<grpc::VersionCheckResponse> KataAgent::version() {
  return invoke<grpc::VersionCheckResponse>(health_service, "Version", grpc::CheckRequest{}, Deadline::health);
}

}  // namespace kata::agent
