#include "kata/ttrpc/client.hpp"

#include <atomic>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "client_connection.hpp"

namespace kata::ttrpc {

namespace {

std::atomic<std::size_t> live_connections{0};

Errc code_from_status(std::int32_t code) noexcept {
  if (code <= 0 || code > static_cast<std::int32_t>(Errc::unauthenticated)) return Errc::unknown;
  return static_cast<Errc>(code);
}

}  // namespace

std::size_t live_client_connections() noexcept { return live_connections.load(); }

void CancellationSignal::cancel() noexcept {
  cancelled_ = true;
  if (attached_ != nullptr) {
    attached_->cancelled = true;
    attached_->wake.cancel();
  }
}

namespace detail {

ClientCall::~ClientCall() {
  if (connection != nullptr) connection->unregister(*this);
  if (signal != nullptr && signal->attached_ == this) signal->attached_ = nullptr;
}

ClientConnection::ClientConnection(Transport transport) : ConnectionBase(std::move(transport)) {
  ++live_connections;
}

ClientConnection::~ClientConnection() { --live_connections; }

void ClientConnection::throw_closed() const {
  if (close_reason_.empty()) fail(Errc::unavailable, "ttrpc connection closed");
  fail(Errc::unavailable, "ttrpc connection closed: {}", close_reason_);
}

void ClientConnection::start_call(ClientCall& call, const RequestFields& request, std::uint8_t flags,
                                  Clock::time_point deadline, CancellationSignal* signal, std::string* owned_payload) {
  if (closed_) throw_closed();
  if (signal != nullptr && signal->cancelled()) fail(Errc::cancelled, "ttrpc call cancelled");
  RequestFields fields = request;
  if (deadline != Clock::time_point::max()) {
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
    if (left.count() <= 0) fail(Errc::deadline_exceeded, "ttrpc call deadline exceeded");
    fields.timeout_nano = left.count();
  }
  const std::size_t size = request_size(fields);
  if (size > max_message_size) {
    fail(Errc::resource_exhausted, "ttrpc request of {} bytes exceeds the {}-byte message limit", size,
         max_message_size);
  }
  if (next_stream_id_ > std::numeric_limits<std::uint32_t>::max() - 2) {
    fail(Errc::resource_exhausted, "ttrpc stream ids exhausted on this connection; reconnect");
  }
  call.stream_id = next_stream_id_;
  next_stream_id_ += 2;
  calls_.emplace(call.stream_id, &call);
  call.connection = this;
  call.wake.expires_at(deadline);
  if (signal != nullptr) {
    signal->attached_ = &call;
    call.signal = signal;
  }
  if (owned_payload != nullptr && fields.payload.size() >= large_payload) {
    append_request_frame_head(outbox(), call.stream_id, flags, fields, size);
    append_owned(std::move(*owned_payload));
  } else {
    append_request_frame(outbox(), call.stream_id, flags, fields, size);
  }
  frames_appended();
}

Task<void> ClientConnection::wait(ClientCall& call) {
  for (;;) {
    if (call.failure) {
      Error failure = std::move(*call.failure);
      call.failure.reset();
      unregister(call);
      throw failure;
    }
    if (call.cancelled) {
      unregister(call);
      fail(Errc::cancelled, "ttrpc call cancelled");
    }
    if (call.finished || call.inbox_head < call.inbox.size()) co_return;
    boost::system::error_code error;
    co_await call.wake.async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, error));
    const bool expired = !error;
    if (expired && !call.failure && !call.cancelled && !call.finished && call.inbox_head == call.inbox.size()) {
      unregister(call);
      fail(Errc::deadline_exceeded, "ttrpc call deadline exceeded");
    }
  }
}

void ClientConnection::send_data(ClientCall& call, std::uint8_t flags, std::string_view payload) {
  if (closed_) throw_closed();
  if (payload.size() > max_message_size) {
    fail(Errc::resource_exhausted, "ttrpc stream message of {} bytes exceeds the {}-byte message limit",
         payload.size(), max_message_size);
  }
  append_frame(outbox(), call.stream_id, MessageType::data, flags, payload);
  frames_appended();
}

void ClientConnection::unregister(ClientCall& call) noexcept {
  if (call.connection == this) {
    calls_.erase(call.stream_id);
    call.connection = nullptr;
  }
  if (call.signal != nullptr) {
    if (call.signal->attached_ == &call) call.signal->attached_ = nullptr;
    call.signal = nullptr;
  }
}

void ClientConnection::close(std::string reason) noexcept {
  if (closed_) return;
  closed_ = true;
  close_reason_ = std::move(reason);
  transport_.close();
  const std::string message =
      close_reason_.empty() ? std::string("ttrpc connection closed") : "ttrpc connection closed: " + close_reason_;
  for (auto& [id, call] : calls_) {
    call->failure.emplace(Errc::unavailable, message);
    call->connection = nullptr;
    call->wake.cancel();
  }
  calls_.clear();
}

void ClientConnection::on_frame(const FrameHeader& header, std::string_view data) {
  deliver(header, data, nullptr);
}

std::optional<std::size_t> ClientConnection::large_frame_split(const FrameHeader& header,
                                                               std::string_view available) {
  // A response's payload is read into the string the caller gets back; Data frames are the
  // message itself already.
  if (header.type != MessageType::response) return 0;
  return response_payload_offset(available, header.length);
}

void ClientConnection::on_large_frame(const FrameHeader& header, std::string_view prefix, std::string body) {
  deliver(header, prefix, &body);
  if (!body.empty()) recycle_large_buffer(std::move(body));
}

void ClientConnection::deliver(const FrameHeader& header, std::string_view data, std::string* owned) {
  const auto it = calls_.find(header.stream_id);
  // Nobody waits for this stream any more (deadline, cancellation): a late answer is dropped.
  if (it == calls_.end()) return;
  ClientCall& call = *it->second;
  bool stream_done = false;
  switch (header.type) {
    case MessageType::response: {
      stream_done = true;
      // With an owned body and no prefix, the body is the whole Response; with a prefix, the
      // body is the contents of the payload field that ends the prefix.
      const bool whole_in_body = owned != nullptr && data.empty();
      ResponseView response;
      const bool valid = whole_in_body ? decode_response(*owned, response)
                                       : decode_response(data, response, owned != nullptr ? owned->size() : 0);
      if (!valid) {
        call.failure.emplace(Errc::internal, fmt::format("ttrpc: malformed response on stream {}", header.stream_id));
        break;
      }
      if (response.code != 0) {
        call.failure.emplace(code_from_status(response.code), std::string(response.message));
        break;
      }
      std::string payload = response.payload_is_tail ? std::exchange(*owned, std::string()) : std::string(response.payload);
      if (call.streaming) {
        call.inbox.push_back(std::move(payload));
      } else {
        call.response = std::move(payload);
      }
      break;
    }
    case MessageType::data:
      if (!call.streaming) {
        stream_done = true;
        call.failure.emplace(Errc::internal,
                             fmt::format("ttrpc: data frame received on unary stream {}", header.stream_id));
        break;
      }
      if ((header.flags & flags::no_data) == 0) {
        if (owned != nullptr) {
          // Data frames are not split: the body is the whole message.
          call.inbox.push_back(std::exchange(*owned, std::string()));
        } else {
          call.inbox.emplace_back(data);
        }
      }
      stream_done = (header.flags & flags::remote_closed) != 0;
      break;
    default:
      return;  // request frames and unknown types are not for a client; ignore like Go does
  }
  if (stream_done) {
    call.finished = true;
    calls_.erase(it);
    call.connection = nullptr;
  }
  call.wake.cancel();
}

void ClientConnection::on_read_end(std::string reason, bool aborted) {
  close(aborted ? std::string() : std::move(reason));
}

void ClientConnection::on_write_failed(std::string reason) { close(std::move(reason)); }

}  // namespace detail

// --- ClientStream ----------------------------------------------------------------------------

ClientStream::ClientStream(std::shared_ptr<detail::ClientConnection> connection,
                           std::unique_ptr<detail::ClientCall> call, StreamDesc desc)
    : connection_(std::move(connection)), call_(std::move(call)), desc_(desc) {}

ClientStream::ClientStream(ClientStream&&) noexcept = default;

ClientStream& ClientStream::operator=(ClientStream&& other) noexcept {
  if (this != &other) {
    call_.reset();  // unregisters from its connection while that connection is still held
    connection_ = std::move(other.connection_);
    call_ = std::move(other.call_);
    desc_ = other.desc_;
    local_closed_ = other.local_closed_;
  }
  return *this;
}

ClientStream::~ClientStream() { call_.reset(); }

Task<void> ClientStream::send(std::string payload) {
  if (!desc_.client_streaming) fail(Errc::failed_precondition, "ttrpc stream: send on a stream that is not client-streaming");
  if (local_closed_) fail(Errc::failed_precondition, "ttrpc stream: send after close_send");
  if (call_->failure) throw *call_->failure;
  if (call_->connection == nullptr) fail(Errc::failed_precondition, "ttrpc stream: the server already finished the stream");
  connection_->send_data(*call_, 0, payload);
  co_return;
}

Task<void> ClientStream::close_send() {
  if (!desc_.client_streaming) fail(Errc::failed_precondition, "ttrpc stream: close_send on a stream that is not client-streaming");
  if (local_closed_) co_return;
  if (call_->connection != nullptr) connection_->send_data(*call_, flags::remote_closed | flags::no_data, {});
  local_closed_ = true;
}

Task<std::optional<std::string>> ClientStream::recv() {
  co_await connection_->wait(*call_);
  auto& call = *call_;
  if (call.inbox_head < call.inbox.size()) {
    std::string message = std::move(call.inbox[call.inbox_head++]);
    if (call.inbox_head == call.inbox.size()) {
      call.inbox.clear();
      call.inbox_head = 0;
    }
    co_return message;
  }
  co_return std::nullopt;
}

// --- Client ----------------------------------------------------------------------------------

Client::Client(Executor executor, UniqueFd connected_fd) : Client(Transport(std::move(executor), std::move(connected_fd))) {}

Client::Client(Transport transport)
    : connection_(std::make_shared<detail::ClientConnection>(std::move(transport))) {
  connection_->start();
}

Task<Client> Client::connect_unix(Executor executor, std::filesystem::path path) {
  UniqueFd fd = co_await ttrpc::connect_unix(executor, path);
  co_return Client(executor, std::move(fd));
}

Client::Client(Client&&) noexcept = default;

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    close();
    connection_ = std::move(other.connection_);
  }
  return *this;
}

Client::~Client() { close(); }

Executor Client::get_executor() const noexcept { return connection_->executor(); }

Task<std::string> Client::call(std::string_view service, std::string_view method, std::string payload,
                               CallOptions options) {
  std::shared_ptr<detail::ClientConnection> connection = connection_;
  if (!connection) fail(Errc::unavailable, "ttrpc connection closed");
  detail::ClientCall call(connection->executor(), false, {});
  connection->start_call(call, {service, method, payload, 0, &options.metadata}, 0, options.deadline,
                         options.cancellation, &payload);
  co_await connection->wait(call);
  co_return std::move(call.response);
}

Task<ClientStream> Client::open_stream(std::string_view service, std::string_view method, StreamDesc desc,
                                       std::optional<std::string> first_message, CallOptions options) {
  std::shared_ptr<detail::ClientConnection> connection = connection_;
  if (!connection) fail(Errc::unavailable, "ttrpc connection closed");
  auto call = std::make_unique<detail::ClientCall>(connection->executor(), true, desc);
  const std::uint8_t request_flags = desc.client_streaming ? flags::remote_open : flags::remote_closed;
  const std::string_view payload = first_message ? std::string_view(*first_message) : std::string_view();
  connection->start_call(*call, {service, method, payload, 0, &options.metadata}, request_flags, options.deadline,
                         options.cancellation);
  co_return ClientStream(std::move(connection), std::move(call), desc);
}

void Client::close() noexcept {
  if (connection_) connection_->close({});
}

bool Client::is_open() const noexcept { return connection_ && !connection_->closed(); }

std::size_t Client::pending_calls() const noexcept { return connection_ ? connection_->pending() : 0; }

}  // namespace kata::ttrpc
