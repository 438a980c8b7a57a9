#include "kata/shim/messages.hpp"

#include "kata/core/error.hpp"
#include "runtimeoptions/v1/api.pb.h"

namespace kata::shim {
namespace {

// time.Time{} in Go is 0001-01-01T00:00:00Z: this many seconds before the Unix epoch.
constexpr std::int64_t go_zero_time_seconds = -62135596800;

runtime::Stdio stdio_of(const std::string& in, const std::string& out, const std::string& err, bool terminal) {
  return runtime::Stdio{.stdin_path = in, .stdout_path = out, .stderr_path = err, .terminal = terminal};
}

void set_now(google::protobuf::Timestamp& timestamp) { set_timestamp(timestamp, std::chrono::system_clock::now()); }

}  // namespace

void set_timestamp(google::protobuf::Timestamp& timestamp, std::optional<SystemTime> time) {
  if (!time) {
    timestamp.set_seconds(go_zero_time_seconds);
    timestamp.set_nanos(0);
    return;
  }
  const auto since_epoch = std::chrono::duration_cast<std::chrono::nanoseconds>(time->time_since_epoch());
  auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  timestamp.set_seconds(seconds.count());
  timestamp.set_nanos(static_cast<std::int32_t>((since_epoch - seconds).count()));
}

std::optional<SystemTime> from_timestamp(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() < 0) return std::nullopt;
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::seconds(timestamp.seconds()) +
                                                                       std::chrono::nanoseconds(timestamp.nanos())));
}

std::optional<std::string> config_path_from_options(const google::protobuf::Any& options) {
  const std::string& type_url = options.type_url();
  if (type_url.empty() && options.value().empty()) return std::nullopt;
  // Accept "runtimeoptions.v1.Options" and "<prefix>/runtimeoptions.v1.Options".
  const std::string_view name = std::string_view(type_url).substr(type_url.rfind('/') + 1);
  if (name != runtime_options_type_url) return std::nullopt;
  runtimeoptions::v1::Options parsed;
  if (!parsed.ParseFromString(options.value())) {
    fail(Errc::invalid_argument, "runtime options of type {} do not parse", type_url);
  }
  return parsed.config_path();
}

std::optional<std::string> config_path_from_any_bytes(std::string_view bytes) {
  if (bytes.empty()) return std::nullopt;
  google::protobuf::Any any;
  if (!any.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    fail(Errc::invalid_argument, "runtime options ({} bytes) are not a protobuf Any", bytes.size());
  }
  return config_path_from_options(any);
}

runtime::CreateContainerRequest to_create_request(const containerd::task::v2::CreateTaskRequest& request) {
  if (request.id().empty()) fail(Errc::invalid_argument, "create: id must not be empty");
  if (request.bundle().empty()) fail(Errc::invalid_argument, "create {}: bundle must not be empty", request.id());
  if (!request.checkpoint().empty()) {
    fail(Errc::not_supported, "create {}: restoring from a checkpoint is not supported by kata", request.id());
  }
  runtime::CreateContainerRequest out;
  out.container_id = request.id();
  out.bundle = request.bundle();
  out.rootfs.reserve(static_cast<std::size_t>(request.rootfs_size()));
  for (const auto& mount : request.rootfs()) {
    out.rootfs.push_back(runtime::RootfsMount{.type = mount.type(),
                                              .source = mount.source(),
                                              .target = mount.target(),
                                              .options = {mount.options().begin(), mount.options().end()}});
  }
  out.stdio = stdio_of(request.stdin(), request.stdout(), request.stderr(), request.terminal());
  if (request.has_options()) {
    out.config_path = with_context([&] { return fmt::format("create {}", request.id()); },
                                   [&] { return config_path_from_options(request.options()); })
                          .value_or("");
  }
  return out;
}

runtime::ExecProcessRequest to_exec_request(const containerd::task::v2::ExecProcessRequest& request) {
  if (request.id().empty()) fail(Errc::invalid_argument, "exec: id must not be empty");
  if (request.exec_id().empty()) fail(Errc::invalid_argument, "exec in {}: exec_id must not be empty", request.id());
  if (!request.has_spec() || request.spec().value().empty()) {
    fail(Errc::invalid_argument, "exec {} in {}: the request carries no process spec", request.exec_id(),
         request.id());
  }
  runtime::ExecProcessRequest out;
  out.process = runtime::ProcessId{.container_id = request.id(), .exec_id = request.exec_id()};
  out.stdio = stdio_of(request.stdin(), request.stdout(), request.stderr(), request.terminal());
  out.process_spec_json = request.spec().value();
  return out;
}

runtime::ProcessId process_id(std::string_view rpc, const std::string& id, const std::string& exec_id) {
  if (id.empty()) fail(Errc::invalid_argument, "{}: id must not be empty", rpc);
  return runtime::ProcessId{.container_id = id, .exec_id = exec_id};
}

containerd::task::v2::StateResponse to_state_response(const runtime::ProcessState& state) {
  containerd::task::v2::StateResponse out;
  out.set_id(state.process.is_init() ? state.process.container_id : state.process.exec_id);
  out.set_bundle(state.bundle.string());
  out.set_pid(static_cast<std::uint32_t>(std::max<pid_t>(state.pid, 0)));
  out.set_status(static_cast<containerd::v1::types::Status>(static_cast<int>(state.status)));
  out.set_stdin(state.stdio.stdin_path);
  out.set_stdout(state.stdio.stdout_path);
  out.set_stderr(state.stdio.stderr_path);
  out.set_terminal(state.stdio.terminal);
  out.set_exit_status(state.exit_status);
  set_timestamp(*out.mutable_exited_at(), state.exited_at);
  out.set_exec_id(state.process.exec_id);
  return out;
}

containerd::services::events::ttrpc::v1::ForwardRequest make_forward_request(
    std::string_view topic, std::string_view namespace_name, const google::protobuf::MessageLite& event) {
  containerd::services::events::ttrpc::v1::ForwardRequest request;
  auto& envelope = *request.mutable_envelope();
  set_now(*envelope.mutable_timestamp());
  envelope.set_namespace_(std::string(namespace_name));
  envelope.set_topic(std::string(topic));
  auto& any = *envelope.mutable_event();
  any.set_type_url(event.GetTypeName());
  any.set_value(event.SerializeAsString());
  return request;
}

containerd::events::TaskCreate task_create_event(const containerd::task::v2::CreateTaskRequest& request, pid_t pid) {
  containerd::events::TaskCreate event;
  event.set_container_id(request.id());
  event.set_bundle(request.bundle());
  *event.mutable_rootfs() = request.rootfs();
  auto& io = *event.mutable_io();
  io.set_stdin(request.stdin());
  io.set_stdout(request.stdout());
  io.set_stderr(request.stderr());
  io.set_terminal(request.terminal());
  event.set_checkpoint(request.checkpoint());
  event.set_pid(static_cast<std::uint32_t>(pid));
  return event;
}

containerd::events::TaskStart task_start_event(const runtime::ProcessId& process, pid_t pid) {
  containerd::events::TaskStart event;
  event.set_container_id(process.container_id);
  event.set_pid(static_cast<std::uint32_t>(pid));
  return event;
}

containerd::events::TaskExecAdded task_exec_added_event(const runtime::ProcessId& process) {
  containerd::events::TaskExecAdded event;
  event.set_container_id(process.container_id);
  event.set_exec_id(process.exec_id);
  return event;
}

containerd::events::TaskExecStarted task_exec_started_event(const runtime::ProcessId& process, pid_t pid) {
  containerd::events::TaskExecStarted event;
  event.set_container_id(process.container_id);
  event.set_exec_id(process.exec_id);
  event.set_pid(static_cast<std::uint32_t>(pid));
  return event;
}

containerd::events::TaskExit task_exit_event(const runtime::ProcessId& process, const runtime::ExitInfo& exit) {
  containerd::events::TaskExit event;
  event.set_container_id(process.container_id);
  event.set_id(process.is_init() ? process.container_id : process.exec_id);
  event.set_pid(static_cast<std::uint32_t>(exit.pid));
  event.set_exit_status(exit.exit_status);
  set_timestamp(*event.mutable_exited_at(), exit.exited_at);
  return event;
}

containerd::events::TaskDelete task_delete_event(const std::string& container_id, const runtime::ExitInfo& exit) {
  containerd::events::TaskDelete event;
  event.set_container_id(container_id);
  event.set_pid(static_cast<std::uint32_t>(exit.pid));
  event.set_exit_status(exit.exit_status);
  set_timestamp(*event.mutable_exited_at(), exit.exited_at);
  return event;
}

containerd::events::TaskOOM task_oom_event(const std::string& container_id) {
  containerd::events::TaskOOM event;
  event.set_container_id(container_id);
  return event;
}

containerd::events::TaskPaused task_paused_event(const std::string& container_id) {
  containerd::events::TaskPaused event;
  event.set_container_id(container_id);
  return event;
}

containerd::events::TaskResumed task_resumed_event(const std::string& container_id) {
  containerd::events::TaskResumed event;
  event.set_container_id(container_id);
  return event;
}

containerd::task::v2::DeleteResponse to_delete_response(const runtime::ExitInfo& exit) {
  containerd::task::v2::DeleteResponse response;
  response.set_pid(static_cast<std::uint32_t>(std::max<pid_t>(exit.pid, 0)));
  response.set_exit_status(exit.exit_status);
  set_timestamp(*response.mutable_exited_at(), exit.exited_at);
  return response;
}

}  // namespace kata::shim
