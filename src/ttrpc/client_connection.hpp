// Private: the state shared by a Client, its calls and its reader coroutine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "connection.hpp"
#include "kata/core/error.hpp"
#include "kata/ttrpc/client.hpp"
#include "wire.hpp"

namespace kata::ttrpc::detail {

/// One call or stream as the client sees it. Unary calls keep it in their coroutine frame;
/// streams on the heap (owned by ClientStream). Registered in the connection's map while it holds
/// a stream id; its destructor unregisters it, whatever path destroyed it.
struct ClientCall {
  ClientCall(Executor executor, bool is_stream, StreamDesc stream_desc)
      : wake(executor, Clock::time_point::max()), streaming(is_stream), desc(stream_desc) {}
  ClientCall(const ClientCall&) = delete;
  ClientCall& operator=(const ClientCall&) = delete;
  ~ClientCall();

  asio::steady_timer wake;            ///< the deadline; cancel() wakes the waiting coroutine
  ClientConnection* connection = nullptr;  ///< non-null while registered
  CancellationSignal* signal = nullptr;
  std::uint32_t stream_id = 0;
  bool streaming;
  StreamDesc desc;
  bool finished = false;              ///< the server finished the stream (or answered)
  bool cancelled = false;
  std::optional<Error> failure;
  std::string response;               ///< unary
  std::vector<std::string> inbox;     ///< streams: received, not yet taken
  std::size_t inbox_head = 0;
};

class ClientConnection final : public ConnectionBase {
 public:
  explicit ClientConnection(Transport transport);
  ~ClientConnection() override;

  void start() { start_reading(); }

  /// Assigns a stream id, registers `call` and queues its Request frame. Throws unavailable
  /// (closed), cancelled (signal already fired), deadline_exceeded (deadline already passed),
  /// resource_exhausted (too large, or stream ids used up).
  /// A large `owned_payload` (the bytes request.payload views) is moved into the write queue
  /// instead of being copied.
  void start_call(ClientCall& call, const RequestFields& request, std::uint8_t flags,
                  Clock::time_point deadline, CancellationSignal* signal, std::string* owned_payload = nullptr);

  /// Suspends until `call` has something for its owner: finished, a failure, a message in its
  /// inbox (streams), cancellation or its deadline. Throws the corresponding kata::Error, after
  /// which the call is unregistered.
  Task<void> wait(ClientCall& call);

  /// Queues a Data frame on a registered stream.
  void send_data(ClientCall& call, std::uint8_t flags, std::string_view payload);

  void unregister(ClientCall& call) noexcept;
  void close(std::string reason) noexcept;
  [[nodiscard]] std::size_t pending() const noexcept { return calls_.size(); }

 private:
  void on_frame(const FrameHeader& header, std::string_view data) override;
  std::optional<std::size_t> large_frame_split(const FrameHeader& header, std::string_view available) override;
  void on_large_frame(const FrameHeader& header, std::string_view prefix, std::string body) override;
  /// Delivers a frame's message to its call. `data` is the frame's data, or with `owned` set the
  /// prefix whose final payload field's contents are `*owned` (or, with an empty prefix, the
  /// whole data, in `*owned`). Returns `owned` when nobody took it.
  void deliver(const FrameHeader& header, std::string_view data, std::string* owned);
  void on_read_end(std::string reason, bool aborted) override;
  void on_write_failed(std::string reason) override;
  [[noreturn]] void throw_closed() const;

  std::unordered_map<std::uint32_t, ClientCall*> calls_;
  std::uint32_t next_stream_id_ = 1;
  std::string close_reason_;
};

}  // namespace kata::ttrpc::detail
