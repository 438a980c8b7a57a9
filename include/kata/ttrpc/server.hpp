// ttRPC server: services registered by name, served on listeners or on single connections.
//
// Each connection has one reader coroutine; every request runs its handler in a coroutine of its
// own, so a slow call never blocks others on the same connection. Responses are written in the
// order handlers finish, never interleaved.
//
// What a client sees (the same codes and messages as containerd/ttrpc's Go server):
//   - unknown service: Unimplemented "service <name>"; unknown method: Unimplemented "method <name>";
//   - a handler exception: the status kata::code_of(e) with the text kata::describe(e);
//   - Request.timeout_nano > 0: when it passes before the handler finished, DeadlineExceeded is
//     answered at once, the handler's CallContext reports cancelled(), and its result is
//     discarded when it eventually returns;
//   - a response larger than max_message_size: ResourceExhausted instead (connection kept);
//   - even or reused stream ids, unparsable requests: InvalidArgument on that stream id;
//   - a frame announcing more than max_message_size: the connection is closed.
//
// Thread-safety: a Server, its connections and its handlers run on the executor the Server was
// created with (single-threaded io_context or strand). Handlers may co_await anything.
//
// Lifetime: the Server owns its listeners and connections. Service implementations are kept
// alive (shared) by every call that uses them, so a handler still running when the Server is
// destroyed never touches freed state; its result is dropped.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kata/core/asio.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/ttrpc/client.hpp"
#include "kata/ttrpc/metadata.hpp"

namespace kata::ttrpc {

namespace detail {
class ServerState;
class ServerConnection;
struct ServerCall;
}  // namespace detail

/// What a handler knows about its call. Valid until the handler's task completes.
class CallContext {
 public:
  [[nodiscard]] std::string_view service() const noexcept { return service_; }
  [[nodiscard]] std::string_view method() const noexcept { return method_; }
  [[nodiscard]] const Metadata& metadata() const noexcept { return metadata_; }
  /// From Request.timeout_nano; Clock::time_point::max() when the client set none.
  [[nodiscard]] Clock::time_point deadline() const noexcept { return deadline_; }
  /// True once the deadline passed (the client already got DeadlineExceeded) or the connection
  /// closed: whatever the handler returns now is discarded, so it may stop early.
  [[nodiscard]] bool cancelled() const noexcept;

 private:
  friend struct detail::ServerCall;
  CallContext() = default;

  std::string_view service_;
  std::string_view method_;
  Metadata metadata_;
  Clock::time_point deadline_ = Clock::time_point::max();
  const bool* cancelled_ = nullptr;
};

/// The server end of a streaming RPC, passed to a StreamHandler.
class ServerStream {
 public:
  /// The next message from the client; std::nullopt once the client closed its side.
  [[nodiscard]] Task<std::optional<std::string>> recv();
  /// Sends one message (a Data frame). Only for server-streaming methods; otherwise throws
  /// failed_precondition. Throws unavailable when the connection is gone.
  [[nodiscard]] Task<void> send(std::string payload);

 private:
  friend struct detail::ServerCall;
  explicit ServerStream(detail::ServerCall& call) noexcept : call_(&call) {}
  detail::ServerCall* call_;
};

/// A unary method: receives the request payload, returns the response payload. `request` and
/// `context` stay valid until the returned task completes.
using UnaryHandler = std::function<Task<std::string>(std::string_view request, const CallContext& context)>;

/// A streaming method. For server-streaming methods the returned message (if any) is the last
/// Data frame; for client-streaming-only methods it is the Response payload.
using StreamHandler =
    std::function<Task<std::optional<std::string>>(ServerStream& stream, const CallContext& context)>;

/// A service: its full name ("package.Service") and its methods.
class ServiceDefinition {
 public:
  explicit ServiceDefinition(std::string full_name) : name_(std::move(full_name)) {}

  /// Adds a method; throws already_exists when `method` is already defined.
  ServiceDefinition& add_unary(std::string method, UnaryHandler handler);
  ServiceDefinition& add_stream(std::string method, StreamDesc desc, StreamHandler handler);

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  /// One method as the server dispatches it: exactly one of the handlers is set.
  struct Method {
    UnaryHandler unary;
    StreamHandler stream;
    StreamDesc desc;
  };

 private:
  friend class detail::ServerState;
  std::string name_;
  std::map<std::string, Method, std::less<>> methods_;
};

class Server {
 public:
  explicit Server(Executor executor);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  /// close()s.
  ~Server();

  [[nodiscard]] Executor get_executor() const noexcept;

  /// Registers a service. Throws already_exists for a duplicate name. Services added while
  /// serving are visible to requests read afterwards.
  void add_service(ServiceDefinition service);

  /// Binds `path` (see listen_unix in transport.hpp) and accepts connections on it.
  void listen_unix(const std::filesystem::path& path);

  /// Accepts connections on an already listening stream socket (unix or vsock), e.g. the one a
  /// shim inherits from its parent. Takes ownership.
  void serve_listener(UniqueFd listening_fd);

  /// Serves one already connected TransportFd (e.g. the agent's virtio-serial port).
  void serve_connection(UniqueFd connected_fd);

  /// Graceful shutdown: stops accepting and reading new requests, lets in-flight calls finish
  /// and their responses be written, then closes. Calls still running after `drain_timeout` are
  /// abandoned (connections closed, results dropped). Completes when everything is closed.
  [[nodiscard]] Task<void> shutdown(Clock::duration drain_timeout);

  /// Immediate close of listeners and connections. Idempotent.
  void close() noexcept;

  /// Introspection: open connections and calls whose handler has not returned yet.
  [[nodiscard]] std::size_t connection_count() const noexcept;
  [[nodiscard]] std::size_t active_calls() const noexcept;

 private:
  std::shared_ptr<detail::ServerState> state_;
};

/// Server-side objects alive in this process (connections and handler calls), for leak checks.
[[nodiscard]] std::size_t live_server_objects() noexcept;

}  // namespace kata::ttrpc
