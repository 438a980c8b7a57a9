// Task events to containerd: /containerd.services.events.ttrpc.v1.Events/Forward on the socket
// containerd names in TTRPC_ADDRESS.
//
// containerd learns about exits only from events (TaskExit wakes `ctr run`, the CRI's container
// status, ...), so an event must not be lost while containerd restarts, and publishing must never
// hold up an RPC. EventPublisher therefore queues: publish() serializes the envelope at once (its
// timestamp is the moment of the event), appends it to a bounded FIFO and returns; one sender
// coroutine forwards the queue in order. When containerd is unreachable the sender reconnects
// with exponential backoff and retries the same event, so the order seen by containerd is the
// order of publish() calls. Only when the queue is full is a new event dropped (logged as an
// error): containerd resynchronises task state on reconnect, but it cannot be given unbounded
// memory by a shim. Upstream's Go publisher retries each event at most 5 times with no order
// guarantee; ours keeps the order and retries connection failures for as long as the queue has
// room. An event the server itself rejects (a status other than Unavailable/DeadlineExceeded) is
// retried a few times, then dropped, so one bad event cannot wedge the queue.
//
// Every Forward carries the ttRPC metadata `containerd-namespace-ttrpc: <namespace>`, as
// containerd's own shims send it, and the envelope's namespace field.
//
// Without an address (no TTRPC_ADDRESS, e.g. a shim run by hand) events are only logged.
//
// Thread-safety: publish() may be called from any thread (it is dispatched to the executor);
// everything else runs on the executor given at construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kata/core/asio.hpp"
#include "kata/log/log.hpp"

namespace google::protobuf {
class MessageLite;
}

namespace kata::shim {

/// Event topics (containerd runtime/events.go) and the messages published under them.
namespace topic {
inline constexpr std::string_view task_create = "/tasks/create";        ///< containerd.events.TaskCreate
inline constexpr std::string_view task_start = "/tasks/start";          ///< containerd.events.TaskStart
inline constexpr std::string_view task_exit = "/tasks/exit";            ///< containerd.events.TaskExit
inline constexpr std::string_view task_delete = "/tasks/delete";        ///< containerd.events.TaskDelete
inline constexpr std::string_view task_oom = "/tasks/oom";              ///< containerd.events.TaskOOM
inline constexpr std::string_view task_exec_added = "/tasks/exec-added";      ///< containerd.events.TaskExecAdded
inline constexpr std::string_view task_exec_started = "/tasks/exec-started";  ///< containerd.events.TaskExecStarted
inline constexpr std::string_view task_paused = "/tasks/paused";        ///< containerd.events.TaskPaused
inline constexpr std::string_view task_resumed = "/tasks/resumed";      ///< containerd.events.TaskResumed
}  // namespace topic

/// The ttRPC service and metadata key containerd's event sink uses.
inline constexpr std::string_view events_service_name = "containerd.services.events.ttrpc.v1.Events";
inline constexpr std::string_view namespace_metadata_key = "containerd-namespace-ttrpc";

struct EventPublisherOptions {
  /// containerd's ttRPC socket path (TTRPC_ADDRESS, a plain path; a "unix://" prefix is
  /// accepted). Empty: events are only logged.
  std::string ttrpc_address;
  /// The containerd namespace (-namespace), written into every envelope.
  std::string namespace_name;
  /// Events waiting to be delivered, the one being retried included.
  std::size_t queue_capacity = 1024;
  /// Deadline of one Forward call (containerd's own publisher uses 5 s).
  std::chrono::milliseconds forward_timeout{5000};
  /// Backoff between delivery attempts after a failure: doubles from `initial_backoff` up to
  /// `max_backoff`, and starts again after a success.
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
  /// Attempts for an event containerd answered with an error status (not a transport failure).
  int max_rejected_attempts = 5;
};

namespace detail {
struct PublisherState;
}

class EventPublisher {
 public:
  EventPublisher(Executor executor, EventPublisherOptions options, log::Logger logger = log::Logger("events"));
  EventPublisher(const EventPublisher&) = delete;
  EventPublisher& operator=(const EventPublisher&) = delete;
  /// Stops the sender without waiting; events still queued are dropped (and counted in the
  /// log). Call close() first to deliver them.
  ~EventPublisher();

  /// Queues `event` under `topic`; never blocks and never throws. The envelope gets the current
  /// time, the namespace and Any{type_url = event.GetTypeName(), value = serialized event}.
  /// After close() started, events are logged and dropped.
  void publish(std::string_view topic, const google::protobuf::MessageLite& event) noexcept;

  /// Stops accepting events and completes when every queued event was delivered or
  /// `drain_timeout` passed, whichever is first; then the sender has finished and the connection
  /// to containerd is closed. Idempotent.
  [[nodiscard]] Task<void> close(std::chrono::steady_clock::duration drain_timeout);

  /// Events queued and not yet delivered.
  [[nodiscard]] std::size_t queued() const noexcept;
  /// Events delivered / dropped (queue full, rejected, or undelivered at close) so far.
  [[nodiscard]] std::uint64_t delivered() const noexcept;
  [[nodiscard]] std::uint64_t dropped() const noexcept;

 private:
  std::shared_ptr<detail::PublisherState> state_;
};

}  // namespace kata::shim
