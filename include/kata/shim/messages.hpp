// Translation between containerd's protobuf messages (task API, events, runtime options) and the
// plain types of the runtime seam (kata/runtime/task_runtime.hpp). Compiled once, so the
// TaskService template only forwards.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "containerd/events/task.pb.h"
#include "containerd/services/events/ttrpc/v1/events.pb.h"
#include "containerd/task/v2/shim.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "kata/runtime/task_runtime.hpp"

namespace kata::shim {

using SystemTime = std::chrono::system_clock::time_point;

/// Type URL of runtimeoptions.v1.Options as containerd sends it (bare, no
/// "types.googleapis.com/" prefix; a prefixed form is accepted too).
inline constexpr std::string_view runtime_options_type_url = "runtimeoptions.v1.Options";
/// Type URL of the Any in StatsResponse.stats.
inline constexpr std::string_view cgroups_metrics_type_url = "io.containerd.cgroups.v1.Metrics";

/// Writes `time` into `timestamp`. An absent time is written as Go's zero time.Time
/// (0001-01-01T00:00:00Z), which is what containerd's Go shims send for "not exited" and what
/// containerd turns back into a zero time; 1970-01-01 would be shown as a real exit time.
void set_timestamp(google::protobuf::Timestamp& timestamp, std::optional<SystemTime> time);

/// Reads a Timestamp; Go's zero time (or anything before 1970) gives std::nullopt.
[[nodiscard]] std::optional<SystemTime> from_timestamp(const google::protobuf::Timestamp& timestamp);

/// config_path of a runtimeoptions.v1.Options Any. std::nullopt when `options` is empty or of
/// another type (e.g. runc's options given to the wrong runtime: ignored, as upstream does).
/// Throws kata::Error(invalid_argument) when it claims to be runtimeoptions.v1.Options but does
/// not parse.
[[nodiscard]] std::optional<std::string> config_path_from_options(const google::protobuf::Any& options);

/// The same for raw bytes of a serialized Any (what `start` reads on stdin); empty input gives
/// std::nullopt. Throws kata::Error(invalid_argument) when the bytes are not an Any.
[[nodiscard]] std::optional<std::string> config_path_from_any_bytes(std::string_view bytes);

/// Checks and converts a Create request. Throws kata::Error(invalid_argument) for an empty id or
/// bundle.
[[nodiscard]] runtime::CreateContainerRequest to_create_request(const containerd::task::v2::CreateTaskRequest& request);

/// Checks and converts an Exec request. Throws kata::Error(invalid_argument) for an empty
/// container or exec id, or a missing or empty process spec.
[[nodiscard]] runtime::ExecProcessRequest to_exec_request(const containerd::task::v2::ExecProcessRequest& request);

/// The process a request names; throws kata::Error(invalid_argument) "<rpc>: id must not be
/// empty" when the container id is empty.
[[nodiscard]] runtime::ProcessId process_id(std::string_view rpc, const std::string& id, const std::string& exec_id);

[[nodiscard]] containerd::task::v2::StateResponse to_state_response(const runtime::ProcessState& state);

/// Envelope{timestamp = now, namespace, topic, event = Any{type_url = event's full name,
/// value = serialized event}} wrapped in a ForwardRequest.
[[nodiscard]] containerd::services::events::ttrpc::v1::ForwardRequest make_forward_request(
    std::string_view topic, std::string_view namespace_name, const google::protobuf::MessageLite& event);

/// Events, with the fields containerd's runc shim fills.
[[nodiscard]] containerd::events::TaskCreate task_create_event(const containerd::task::v2::CreateTaskRequest& request,
                                                               pid_t pid);
[[nodiscard]] containerd::events::TaskStart task_start_event(const runtime::ProcessId& process, pid_t pid);
[[nodiscard]] containerd::events::TaskExecAdded task_exec_added_event(const runtime::ProcessId& process);
[[nodiscard]] containerd::events::TaskExecStarted task_exec_started_event(const runtime::ProcessId& process, pid_t pid);
/// id is the exec id, or the container id for the init process.
[[nodiscard]] containerd::events::TaskExit task_exit_event(const runtime::ProcessId& process,
                                                           const runtime::ExitInfo& exit);
[[nodiscard]] containerd::events::TaskDelete task_delete_event(const std::string& container_id,
                                                               const runtime::ExitInfo& exit);
[[nodiscard]] containerd::events::TaskOOM task_oom_event(const std::string& container_id);
[[nodiscard]] containerd::events::TaskPaused task_paused_event(const std::string& container_id);
[[nodiscard]] containerd::events::TaskResumed task_resumed_event(const std::string& container_id);

/// DeleteResponse{pid, exit_status, exited_at}.
[[nodiscard]] containerd::task::v2::DeleteResponse to_delete_response(const runtime::ExitInfo& exit);

}  // namespace kata::shim
