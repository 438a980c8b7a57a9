#include "kata/ttrpc/server.hpp"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <list>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/socket_base.hpp>
#include <fmt/format.h>

#include "connection.hpp"
#include "kata/core/error.hpp"
#include "wire.hpp"

namespace kata::ttrpc {

namespace {

std::atomic<std::size_t> live_objects{0};

using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol, Executor>;

}  // namespace

std::size_t live_server_objects() noexcept { return live_objects.load(); }

bool CallContext::cancelled() const noexcept { return cancelled_ != nullptr && *cancelled_; }

ServiceDefinition& ServiceDefinition::add_unary(std::string method, UnaryHandler handler) {
  if (!handler) fail(Errc::invalid_argument, "ttrpc service {}: method {} has no handler", name_, method);
  const auto [it, inserted] = methods_.try_emplace(std::move(method), Method{std::move(handler), {}, {}});
  if (!inserted) fail(Errc::already_exists, "ttrpc service {}: method {} registered twice", name_, it->first);
  return *this;
}

ServiceDefinition& ServiceDefinition::add_stream(std::string method, StreamDesc desc, StreamHandler handler) {
  if (!handler) fail(Errc::invalid_argument, "ttrpc service {}: method {} has no handler", name_, method);
  const auto [it, inserted] = methods_.try_emplace(std::move(method), Method{{}, std::move(handler), desc});
  if (!inserted) fail(Errc::already_exists, "ttrpc service {}: method {} registered twice", name_, it->first);
  return *this;
}

namespace detail {

class ServerConnection;

class ServerState : public std::enable_shared_from_this<ServerState> {
 public:
  explicit ServerState(Executor ex) : executor(std::move(ex)) {}

  using Method = ServiceDefinition::Method;

  /// The method, or the Unimplemented message Go's server gives.
  const Method* find(std::string_view service, std::string_view method, std::string& error) const {
    const auto s = services.find(service);
    if (s == services.end()) {
      error = fmt::format("service {}", service);
      return nullptr;
    }
    const auto m = s->second.methods_.find(method);
    if (m == s->second.methods_.end()) {
      error = fmt::format("method {}", method);
      return nullptr;
    }
    return &m->second;
  }

  void add_listener(UniqueFd fd);
  void add_connection(UniqueFd fd);
  void close_listeners() noexcept;
  void connection_closed(ServerConnection* connection) noexcept;

  Executor executor;
  // std::map: nodes never move, so a Method found for a running call stays valid while more
  // services are added.
  std::map<std::string, ServiceDefinition, std::less<>> services;
  std::list<Acceptor> acceptors;
  std::set<ServerConnection*> connections;
  std::size_t active_calls = 0;
  bool closing = false;
  asio::steady_timer* drain_waiter = nullptr;

 private:
  Task<void> accept_loop(std::shared_ptr<ServerState> self, std::list<Acceptor>::iterator acceptor);
};

/// One request being handled. Shared by the handler coroutine and the deadline timer.
struct ServerCall {
  /// `frame` is the Request's encoding (already validated); the call keeps it so that the
  /// payload, service and method the handler sees are views into it, never copies.
  ServerCall(ServerConnection& owner, std::uint32_t id, std::string frame, const ServiceDefinition::Method& m)
      : connection(&owner), stream_id(id), request_bytes(std::move(frame)), method(&m) {
    ++live_objects;
    RequestView request;
    static_cast<void>(decode_request(request_bytes, request));
    payload = request.payload;
    context.service_ = request.service;
    context.method_ = request.method;
    context.cancelled_ = &cancelled;
    if (request.timeout_nano > 0) {
      context.deadline_ = Clock::now() + std::chrono::nanoseconds(request.timeout_nano);
    }
    context.metadata_ = std::move(request.metadata);
  }
  ServerCall(const ServerCall&) = delete;
  ServerCall& operator=(const ServerCall&) = delete;
  ~ServerCall() { --live_objects; }

  [[nodiscard]] bool streaming() const noexcept { return static_cast<bool>(method->stream); }
  ServerStream make_stream() noexcept { return ServerStream(*this); }

  ServerConnection* connection;
  std::uint32_t stream_id;
  std::string request_bytes;
  std::string_view payload;  ///< into request_bytes
  const ServiceDefinition::Method* method;
  CallContext context;
  bool cancelled = false;   ///< what context.cancelled() reports
  bool answered = false;    ///< a Response (or final Data) went out; later results are dropped
  bool connection_lost = false;
  std::optional<asio::steady_timer> deadline_timer;
  // Streaming only.
  bool remote_closed = false;
  std::vector<std::string> inbox;
  std::size_t inbox_head = 0;
  std::optional<asio::steady_timer> wake;
  // The connection's list of running calls.
  ServerCall* previous = nullptr;
  ServerCall* next = nullptr;
};

class ServerConnection final : public ConnectionBase {
 public:
  ServerConnection(std::shared_ptr<ServerState> server, Transport transport)
      : ConnectionBase(std::move(transport)), server_(std::move(server)) {
    ++live_objects;
  }
  ~ServerConnection() override {
    server_->connections.erase(this);
    --live_objects;
  }

  void start() { start_reading(); }

  void begin_drain() noexcept {
    if (closed_ || draining_) return;
    draining_ = true;
    stop_reading();
  }

  void close() noexcept {
    if (closed_) return;
    closed_ = true;
    transport_.close();
    for (ServerCall* call = calls_; call != nullptr; call = call->next) {
      call->cancelled = true;
      call->answered = true;
      call->connection_lost = true;
      if (call->deadline_timer) call->deadline_timer->cancel();
      if (call->wake) call->wake->cancel();
    }
    server_->connection_closed(this);
  }

  /// A large `owned_payload` (the bytes `payload` views) is moved into the write queue.
  void send_response(std::uint32_t stream_id, Errc code, std::string_view message, std::string_view payload,
                     std::string* owned_payload = nullptr) {
    if (closed_) return;
    std::size_t size = response_size(code, message, payload);
    std::string too_large;
    if (size > max_message_size) {
      too_large = fmt::format("ttrpc response of {} bytes exceeds the {}-byte message limit", size, max_message_size);
      code = Errc::resource_exhausted;
      message = too_large;
      payload = {};
      size = response_size(code, message, payload);
    }
    if (owned_payload != nullptr && payload.size() >= large_payload) {
      append_response_frame_head(outbox(), stream_id, code, message, payload.size(), size);
      append_owned(std::move(*owned_payload));
    } else {
      append_response_frame(outbox(), stream_id, code, message, payload, size);
    }
    frames_appended();
  }

  void send_data(std::uint32_t stream_id, std::uint8_t frame_flags, std::string_view payload) {
    if (closed_) fail(Errc::unavailable, "ttrpc connection closed");
    if (payload.size() > max_message_size) {
      fail(Errc::resource_exhausted, "ttrpc stream message of {} bytes exceeds the {}-byte message limit",
           payload.size(), max_message_size);
    }
    append_frame(outbox(), stream_id, MessageType::data, frame_flags, payload);
    frames_appended();
  }

 private:
  void on_frame(const FrameHeader& header, std::string_view data) override { handle_frame(header, data, nullptr); }
  void on_large_frame(const FrameHeader& header, std::string_view /*prefix*/, std::string body) override {
    // The default split: the prefix is empty and the body is all of the frame's data.
    handle_frame(header, body, &body);
    if (!body.empty()) recycle_large_buffer(std::move(body));
  }
  /// `owned`, when set, holds the bytes `data` views; whoever keeps them takes them.
  void handle_frame(const FrameHeader& header, std::string_view data, std::string* owned);
  void on_read_end(std::string reason, bool aborted) override;
  void on_write_failed(std::string /*reason*/) override { close(); }
  void on_write_idle() override { maybe_finish_drain(); }

  void start_call(std::uint32_t stream_id, std::uint8_t frame_flags, std::string_view data, std::string* owned);
  Task<void> run_call(std::shared_ptr<ServerConnection> self, std::shared_ptr<ServerCall> call);
  void call_finished(ServerCall& call) noexcept;
  void maybe_finish_drain() noexcept {
    if (draining_ && !reading_ && calls_ == nullptr && write_idle() && !closed_) close();
  }

  std::shared_ptr<ServerState> server_;
  std::unordered_map<std::uint32_t, ServerCall*> streams_;  ///< streaming calls that take Data
  ServerCall* calls_ = nullptr;                              ///< every call whose handler runs
  std::uint32_t last_stream_id_ = 0;
  bool reading_ = true;
  bool draining_ = false;
};

void ServerConnection::handle_frame(const FrameHeader& header, std::string_view data, std::string* owned) {
  if (header.stream_id % 2 != 1) {
    send_response(header.stream_id, Errc::invalid_argument, "StreamID must be odd for client initiated streams", {});
    return;
  }
  switch (header.type) {
    case MessageType::request:
      start_call(header.stream_id, header.flags, data, owned);
      return;
    case MessageType::data: {
      const auto it = streams_.find(header.stream_id);
      if (it == streams_.end()) {
        send_response(header.stream_id, Errc::invalid_argument, "StreamID is no longer active", {});
        return;
      }
      ServerCall& call = *it->second;
      if (call.remote_closed) return;  // the client broke its own promise; nothing can use this
      if ((header.flags & flags::no_data) == 0) {
        if (owned != nullptr) {
          call.inbox.push_back(std::exchange(*owned, std::string()));
        } else {
          call.inbox.emplace_back(data);
        }
      }
      if ((header.flags & flags::remote_closed) != 0) call.remote_closed = true;
      call.wake->cancel();
      return;
    }
    default:
      return;  // responses are not for a server; unknown types are ignored for compatibility
  }
}

void ServerConnection::start_call(std::uint32_t stream_id, std::uint8_t frame_flags, std::string_view data,
                                  std::string* owned) {
  if (stream_id <= last_stream_id_) {
    send_response(stream_id, Errc::invalid_argument, "StreamID cannot be re-used and must increment", {});
    return;
  }
  last_stream_id_ = stream_id;
  RequestView request;
  if (!decode_request(data, request)) {
    send_response(stream_id, Errc::invalid_argument, "unmarshal request error: malformed ttrpc.Request", {});
    return;
  }
  std::string unknown;
  const ServiceDefinition::Method* method = server_->find(request.service, request.method, unknown);
  if (method == nullptr) {
    send_response(stream_id, Errc::not_supported, unknown, {});
    return;
  }
  std::string frame = owned != nullptr ? std::exchange(*owned, std::string()) : std::string(data);
  auto call = std::make_shared<ServerCall>(*this, stream_id, std::move(frame), *method);
  if (call->streaming()) {
    call->wake.emplace(executor(), Clock::time_point::max());
    // Go's server delivers the Request payload as the first message unless the method is
    // client-streaming and the payload is empty (an empty first message would be invented).
    if (!call->payload.empty() || !method->desc.client_streaming) call->inbox.emplace_back(call->payload);
    if (!method->desc.client_streaming || (frame_flags & flags::remote_closed) != 0) call->remote_closed = true;
    streams_.emplace(stream_id, call.get());
  }
  call->next = calls_;
  if (calls_ != nullptr) calls_->previous = call.get();
  calls_ = call.get();
  ++server_->active_calls;
  asio::co_spawn(executor(), run_call(std::static_pointer_cast<ServerConnection>(shared_from_this()), std::move(call)),
                 asio::detached);
}

Task<void> ServerConnection::run_call(std::shared_ptr<ServerConnection> self, std::shared_ptr<ServerCall> call) {
  ServerCall& c = *call;
  if (c.context.deadline() != Clock::time_point::max()) {
    c.deadline_timer.emplace(executor(), c.context.deadline());
    c.deadline_timer->async_wait([call, self](boost::system::error_code error) {
      if (error || call->answered) return;
      call->answered = true;
      call->cancelled = true;
      self->send_response(call->stream_id, Errc::deadline_exceeded, "deadline exceeded", {});
      if (call->wake) call->wake->cancel();
    });
  }
  Errc code = Errc::ok;
  std::string message;
  std::string payload;
  std::optional<std::string> last_message;
  try {
    if (c.streaming()) {
      ServerStream stream = c.make_stream();
      last_message = co_await c.method->stream(stream, c.context);
    } else {
      payload = co_await c.method->unary(c.payload, c.context);
    }
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    code = code_of(error);
    if (code == Errc::ok) code = Errc::unknown;
    message = describe(error);
  }
  if (c.deadline_timer) c.deadline_timer->cancel();
  if (!c.answered && !closed_) {
    c.answered = true;
    if (!c.streaming()) {
      send_response(c.stream_id, code, message, payload, &payload);
    } else if (code != Errc::ok || !c.method->desc.server_streaming) {
      send_response(c.stream_id, code, message, last_message.value_or(std::string()));
    } else if (last_message && last_message->size() > max_message_size) {
      send_response(c.stream_id, Errc::resource_exhausted,
                    fmt::format("ttrpc stream message of {} bytes exceeds the {}-byte message limit",
                                last_message->size(), max_message_size),
                    {});
    } else {
      send_data(c.stream_id, last_message ? flags::remote_closed : flags::remote_closed | flags::no_data,
                last_message.value_or(std::string()));
    }
  }
  call_finished(c);
}

void ServerConnection::call_finished(ServerCall& call) noexcept {
  if (call.previous != nullptr) call.previous->next = call.next;
  if (call.next != nullptr) call.next->previous = call.previous;
  if (calls_ == &call) calls_ = call.next;
  call.previous = call.next = nullptr;
  if (call.streaming()) streams_.erase(call.stream_id);
  // The handler is done with the request: its buffer can take the next large frame.
  if (call.request_bytes.capacity() > ReadBuffer::capacity) {
    call.payload = {};
    recycle_large_buffer(std::exchange(call.request_bytes, std::string()));
  }
  --server_->active_calls;
  maybe_finish_drain();
}

void ServerConnection::on_read_end(std::string /*reason*/, bool aborted) {
  reading_ = false;
  // A drain stops the reader on purpose: answer what is in flight, then close. Anything else
  // (peer gone, garbage, oversized frame) makes the stream unusable: close now, and running
  // handlers' results are dropped.
  if (aborted && draining_ && !closed_) {
    maybe_finish_drain();
    return;
  }
  close();
}

void ServerState::add_listener(UniqueFd fd) {
  if (closing) fail(Errc::failed_precondition, "ttrpc server is shut down");
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    fail_errno(errno, "ttrpc server: listener fd {}", fd.get());
  }
  int listening = 0;
  socklen_t listening_length = sizeof(listening);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &listening_length) != 0 || listening == 0) {
    fail(Errc::invalid_argument, "ttrpc server: fd {} is not a listening socket", fd.get());
  }
  acceptors.emplace_back(executor);
  const auto it = std::prev(acceptors.end());
  boost::system::error_code error;
  it->assign(asio::generic::stream_protocol(address.ss_family, SOCK_STREAM), fd.get(), error);
  if (error) {
    acceptors.erase(it);
    fail(Errc::internal, "ttrpc server: listener fd {}: {}", fd.get(), error.message());
  }
  static_cast<void>(fd.release());
  it->non_blocking(true, error);
  asio::co_spawn(executor, accept_loop(shared_from_this(), it), asio::detached);
}

// The first parameter keeps the state alive while the coroutine runs.
Task<void> ServerState::accept_loop(std::shared_ptr<ServerState> /*self*/, std::list<Acceptor>::iterator acceptor) {
  asio::steady_timer backoff(executor);
  while (!closing && acceptor->is_open()) {
    boost::system::error_code error;
    co_await acceptor->async_wait(asio::socket_base::wait_read,
                                  asio::redirect_error(asio::use_awaitable_t<Executor>{}, error));
    if (error || closing || !acceptor->is_open()) break;
    // accept4 rather than Asio's accept: connections must be CLOEXEC so that a VMM or any other
    // child we spawn never inherits them.
    const int fd = ::accept4(acceptor->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: retry later instead of spinning on a listener that stays readable.
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, error));
        continue;
      }
      break;
    }
    try {
      add_connection(UniqueFd(fd));
    } catch (const std::exception&) {
      // The descriptor was closed by its owner; one bad connection never stops the listener.
    }
  }
  boost::system::error_code ignored;
  acceptor->close(ignored);
  acceptors.erase(acceptor);
}

void ServerState::add_connection(UniqueFd fd) {
  if (closing) fail(Errc::failed_precondition, "ttrpc server is shut down");
  auto connection = std::make_shared<ServerConnection>(shared_from_this(), Transport(executor, std::move(fd)));
  connections.insert(connection.get());
  connection->start();
}

void ServerState::close_listeners() noexcept {
  for (auto& acceptor : acceptors) {
    boost::system::error_code ignored;
    acceptor.cancel(ignored);
  }
}

void ServerState::connection_closed(ServerConnection* connection) noexcept {
  connections.erase(connection);
  if (drain_waiter != nullptr && connections.empty()) drain_waiter->cancel();
}

}  // namespace detail

// --- ServerStream ----------------------------------------------------------------------------

Task<std::optional<std::string>> ServerStream::recv() {
  detail::ServerCall& call = *call_;
  for (;;) {
    if (call.inbox_head < call.inbox.size()) {
      std::string message = std::move(call.inbox[call.inbox_head++]);
      if (call.inbox_head == call.inbox.size()) {
        call.inbox.clear();
        call.inbox_head = 0;
      }
      co_return message;
    }
    if (call.connection_lost) fail(Errc::unavailable, "ttrpc connection closed");
    if (call.cancelled) fail(Errc::deadline_exceeded, "deadline exceeded");
    if (call.remote_closed) co_return std::nullopt;
    boost::system::error_code ignored;
    co_await call.wake->async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, ignored));
  }
}

Task<void> ServerStream::send(std::string payload) {
  detail::ServerCall& call = *call_;
  if (!call.method->desc.server_streaming) {
    fail(Errc::failed_precondition, "ttrpc stream: send on a method that is not server-streaming");
  }
  if (call.connection_lost) fail(Errc::unavailable, "ttrpc connection closed");
  if (call.answered) fail(Errc::deadline_exceeded, "deadline exceeded");
  call.connection->send_data(call.stream_id, 0, payload);
  co_return;
}

// --- Server ----------------------------------------------------------------------------------

Server::Server(Executor executor) : state_(std::make_shared<detail::ServerState>(std::move(executor))) {}

Server::~Server() { close(); }

Executor Server::get_executor() const noexcept { return state_->executor; }

void Server::add_service(ServiceDefinition service) {
  std::string name = service.name();
  const auto [it, inserted] = state_->services.try_emplace(std::move(name), std::move(service));
  if (!inserted) fail(Errc::already_exists, "ttrpc service {} registered twice", it->first);
}

void Server::listen_unix(const std::filesystem::path& path) {
  with_context([&] { return fmt::format("ttrpc server on {}", path.native()); },
               [&] { state_->add_listener(ttrpc::listen_unix(path)); });
}

void Server::serve_listener(UniqueFd listening_fd) { state_->add_listener(std::move(listening_fd)); }

void Server::serve_connection(UniqueFd connected_fd) { state_->add_connection(std::move(connected_fd)); }

Task<void> Server::shutdown(Clock::duration drain_timeout) {
  std::shared_ptr<detail::ServerState> state = state_;
  state->closing = true;
  state->close_listeners();
  const std::vector<detail::ServerConnection*> draining(state->connections.begin(), state->connections.end());
  for (auto* connection : draining) connection->begin_drain();
  if (!state->connections.empty()) {
    asio::steady_timer timer(state->executor, drain_timeout);
    state->drain_waiter = &timer;
    boost::system::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, ignored));
    state->drain_waiter = nullptr;
  }
  const std::vector<detail::ServerConnection*> remaining(state->connections.begin(), state->connections.end());
  for (auto* connection : remaining) connection->close();
}

void Server::close() noexcept {
  if (!state_) return;
  state_->closing = true;
  state_->close_listeners();
  const std::vector<detail::ServerConnection*> open(state_->connections.begin(), state_->connections.end());
  for (auto* connection : open) connection->close();
}

std::size_t Server::connection_count() const noexcept { return state_->connections.size(); }

std::size_t Server::active_calls() const noexcept { return state_->active_calls; }

}  // namespace kata::ttrpc
