// ttRPC client: many concurrent calls multiplexed over one connection.
//
// One reader coroutine per connection reads frames and hands each response to the call waiting
// on its stream id; frames from concurrent callers are appended to one output buffer and written
// in order, so frames never interleave (and calls issued together share a write). A call waits
// on its own timer, which doubles as its deadline: when it expires the call fails with
// deadline_exceeded and its stream id is forgotten, so a late response is dropped.
//
// Errors: every failure is a kata::Error whose code is the gRPC status code (kata::Errc values
// equal gRPC codes):
//   - the server's status (code and message as sent; codes outside gRPC's range become unknown);
//   - deadline_exceeded: the call's deadline passed (also sent to the server as timeout_nano);
//   - cancelled: the call's CancellationSignal fired;
//   - unavailable "ttrpc connection closed[: reason]": the connection dropped or close() was
//     called; every pending call fails at once, later calls fail immediately;
//   - resource_exhausted: the request exceeds max_message_size (the connection stays usable).
//
// Thread-safety: a Client and everything it returns are used from the executor it was created
// with (a single-threaded io_context, or a strand). Calls may be issued concurrently from many
// coroutines on that executor.
//
// Lifetime: destroying (or closing) a Client fails its pending calls; the reader coroutine and
// every per-call record are released as soon as the executor runs them to completion, so nothing
// outlives the connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kata/core/asio.hpp"
#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/ttrpc/metadata.hpp"
#include "kata/ttrpc/transport.hpp"

namespace kata::ttrpc {

namespace detail {
class ClientConnection;
struct ClientCall;
}  // namespace detail

using Clock = std::chrono::steady_clock;

/// Lets a caller abandon a call it started. One call (or stream) uses a signal at a time; the
/// signal must outlive that call. ttRPC has no cancel frame: the server is not told, its late
/// response is dropped.
class CancellationSignal {
 public:
  CancellationSignal() = default;
  CancellationSignal(const CancellationSignal&) = delete;
  CancellationSignal& operator=(const CancellationSignal&) = delete;

  /// Fails the call currently attached with Errc::cancelled; calls started later with this
  /// signal fail at once until reset().
  void cancel() noexcept;
  [[nodiscard]] bool cancelled() const noexcept { return cancelled_; }
  void reset() noexcept { cancelled_ = false; }

 private:
  friend class detail::ClientConnection;
  friend struct detail::ClientCall;
  bool cancelled_ = false;
  detail::ClientCall* attached_ = nullptr;
};

/// Per-call options.
struct CallOptions {
  /// Clock::time_point::max() means no deadline (timeout_nano 0 on the wire).
  Clock::time_point deadline = Clock::time_point::max();
  /// Sent as ttrpc.Request.metadata.
  Metadata metadata;
  /// Optional; see CancellationSignal.
  CancellationSignal* cancellation = nullptr;

  [[nodiscard]] static CallOptions with_timeout(Clock::duration timeout) {
    CallOptions options;
    options.deadline = Clock::now() + timeout;
    return options;
  }
};

/// Shape of a streaming RPC (proto `stream` keywords).
struct StreamDesc {
  bool client_streaming = false;
  bool server_streaming = false;
};

/// The client end of a streaming RPC. Move-only; destroying it forgets the stream (later frames
/// for it are dropped).
class ClientStream {
 public:
  ClientStream(ClientStream&&) noexcept;
  ClientStream& operator=(ClientStream&&) noexcept;
  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;
  ~ClientStream();

  /// Sends one message (a Data frame). Only for client-streaming RPCs, before close_send();
  /// otherwise throws failed_precondition. Completes once the frame is queued for writing.
  [[nodiscard]] Task<void> send(std::string payload);

  /// Tells the server no more messages follow (Data with remote_closed|no_data).
  [[nodiscard]] Task<void> close_send();

  /// The next message from the server; std::nullopt once the server finished the stream
  /// successfully. Throws kata::Error with the server's status, deadline_exceeded, cancelled or
  /// unavailable as described for Client.
  [[nodiscard]] Task<std::optional<std::string>> recv();

 private:
  friend class Client;
  ClientStream(std::shared_ptr<detail::ClientConnection> connection,
               std::unique_ptr<detail::ClientCall> call, StreamDesc desc);

  std::shared_ptr<detail::ClientConnection> connection_;
  std::unique_ptr<detail::ClientCall> call_;
  StreamDesc desc_;
  bool local_closed_ = false;
};

class Client {
 public:
  /// Starts a client over a connected TransportFd (see transport.hpp).
  Client(Executor executor, UniqueFd connected_fd);
  explicit Client(Transport transport);

  /// Connects to a unix socket and starts a client. Throws kata::Error from connect_unix.
  [[nodiscard]] static Task<Client> connect_unix(Executor executor, std::filesystem::path path);

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  /// Calls close().
  ~Client();

  [[nodiscard]] Executor get_executor() const noexcept;

  /// One unary call: sends Request{service, method, payload, timeout_nano, metadata} and
  /// completes with the response payload, or throws kata::Error (see the file comment).
  /// `service` and `method` must stay valid until the call completes, as they do when the call
  /// is co_awaited directly (generated stubs pass string literals); `payload` is consumed.
  [[nodiscard]] Task<std::string> call(std::string_view service, std::string_view method,
                                       std::string payload, CallOptions options = {});

  /// Opens a streaming call. `first_message` travels in the Request (servers deliver it as the
  /// first received message); client-streaming RPCs usually pass std::nullopt and use send().
  [[nodiscard]] Task<ClientStream> open_stream(std::string_view service, std::string_view method,
                                               StreamDesc desc,
                                               std::optional<std::string> first_message,
                                               CallOptions options = {});

  /// Closes the connection; every pending call fails with unavailable. Idempotent.
  void close() noexcept;

  /// False once the connection dropped or close() was called.
  [[nodiscard]] bool is_open() const noexcept;

  /// Number of calls and streams still holding a stream id (introspection for leak checks).
  [[nodiscard]] std::size_t pending_calls() const noexcept;

 private:
  std::shared_ptr<detail::ClientConnection> connection_;
};

/// Number of client connection states alive in this process (reader coroutines included);
/// a leak check: it returns to its previous value once closed clients have been run down.
[[nodiscard]] std::size_t live_client_connections() noexcept;

}  // namespace kata::ttrpc
