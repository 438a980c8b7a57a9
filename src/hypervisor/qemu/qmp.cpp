#include "kata/hypervisor/qemu/qmp.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <list>

#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "kata/core/async_mutex.hpp"
#include "kata/core/error.hpp"

namespace kata::hypervisor::qemu {
namespace detail {

struct QmpSubscriptionState {
  std::string name;
  std::deque<QmpEvent> queue;
  asio::steady_timer* waiter = nullptr;
  bool closed = false;
};

/// The one exchange awaiting its reply (a request, or the greeting when id is empty).
struct QmpPending {
  std::optional<std::uint64_t> id;
  asio::steady_timer* timer;
  std::optional<nlohmann::json> message;
  bool closed = false;
};

/// Shared by the client and its reader coroutine, so the reader may finish after the client is gone.
struct QmpState {
  explicit QmpState(QmpClient::Socket s) : socket(std::move(s)), exchange_lock(socket.get_executor()) {}

  QmpClient::Socket socket;
  AsyncMutex exchange_lock;
  std::string input;
  bool open = true;
  bool reader_started = false;
  std::string close_reason = "QMP connection is closed";
  /// What commands fail with after the end: unavailable, or data_loss when QEMU broke the protocol.
  Errc close_code = Errc::unavailable;
  std::uint64_t next_id = 1;
  QmpPending* pending = nullptr;
  std::list<std::weak_ptr<QmpSubscriptionState>> subscribers;

  void shut_down(std::string reason, Errc code = Errc::unavailable) noexcept {
    if (!open) return;
    open = false;
    close_reason = std::move(reason);
    close_code = code;
    boost::system::error_code ignored;
    socket.shutdown(QmpClient::Socket::shutdown_both, ignored);
    socket.close(ignored);
    if (pending != nullptr) {
      pending->closed = true;
      pending->timer->cancel();
    }
    for (auto& weak : subscribers) {
      if (auto subscriber = weak.lock()) {
        subscriber->closed = true;
        if (subscriber->waiter != nullptr) subscriber->waiter->cancel();
      }
    }
  }

  void deliver_event(nlohmann::json& message) {
    QmpEvent event{message.value("event", std::string()), message.contains("data") ? message["data"] : nlohmann::json()};
    for (auto it = subscribers.begin(); it != subscribers.end();) {
      auto subscriber = it->lock();
      if (!subscriber) {
        it = subscribers.erase(it);
        continue;
      }
      if (subscriber->name.empty() || subscriber->name == event.name) {
        subscriber->queue.push_back(event);
        if (subscriber->waiter != nullptr) subscriber->waiter->cancel();
      }
      ++it;
    }
  }

  void dispatch(nlohmann::json message) {
    if (!message.is_object()) throw Error(Errc::data_loss, "QMP message is not a JSON object: " + message.dump());
    if (message.contains("event")) {
      deliver_event(message);
      return;
    }
    const bool greeting = message.contains("QMP");
    const bool reply = message.contains("return") || message.contains("error");
    if (!greeting && !reply) throw Error(Errc::data_loss, "unexpected QMP message: " + message.dump());
    if (pending == nullptr) return;  // the late reply of a request that timed out
    if (greeting != !pending->id.has_value()) return;
    if (reply && (!message.contains("id") || message["id"] != *pending->id)) return;
    pending->message = std::move(message);
    pending->timer->cancel();
  }
};

namespace {

Task<void> read_loop(std::shared_ptr<QmpState> state) {
  std::string reason = "QEMU closed the QMP connection";
  Errc code = Errc::unavailable;
  try {
    while (state->open) {
      boost::system::error_code error;
      const std::size_t length = co_await asio::async_read_until(
          state->socket, asio::dynamic_buffer(state->input), '\n', asio::redirect_error(asio::use_awaitable, error));
      if (error) {
        if (error != asio::error::eof && error != asio::error::operation_aborted) {
          reason = "QMP connection failed: " + error.message();
        }
        break;
      }
      const std::string line = state->input.substr(0, length);
      state->input.erase(0, length);
      auto message = nlohmann::json::parse(line, nullptr, false);
      if (message.is_discarded()) throw Error(Errc::data_loss, "QMP sent invalid JSON: " + line);
      state->dispatch(std::move(message));
    }
  } catch (const Error& error) {
    reason = error.what();
    code = error.code();
  } catch (const std::exception& error) {
    reason = error.what();
  }
  state->shut_down(std::move(reason), code);
}

Errc code_for_class(std::string_view error_class) {
  if (error_class == "CommandNotFound") return Errc::not_supported;
  if (error_class == "DeviceNotFound") return Errc::not_found;
  return Errc::failed_precondition;
}

// sendmsg with the descriptor on the first byte; the remainder (if the socket buffer was short)
// goes without it, as SCM_RIGHTS must be attached exactly once.
Task<void> send_with_fd(QmpClient::Socket& socket, const std::string& data, int fd) {
  std::size_t sent = 0;
  bool fd_sent = false;
  while (sent < data.size()) {
    msghdr message{};
    iovec vector{const_cast<char*>(data.data() + sent), data.size() - sent};
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (!fd_sent) {
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(header), &fd, sizeof(int));
    }
    const ssize_t n = ::sendmsg(socket.native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) fail_errno(errno, "send to QMP socket");
      co_await socket.async_wait(QmpClient::Socket::wait_write, asio::use_awaitable);
      continue;
    }
    fd_sent = true;
    sent += static_cast<std::size_t>(n);
  }
}

/// Waits until the pending exchange has its message, the connection closed, or `deadline`.
Task<void> await_pending(QmpPending& pending, asio::steady_timer& timer, std::chrono::steady_clock::time_point deadline) {
  while (!pending.message && !pending.closed && std::chrono::steady_clock::now() < deadline) {
    timer.expires_at(deadline);
    boost::system::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

}  // namespace
}  // namespace detail

QmpSubscription::QmpSubscription(Executor executor, std::shared_ptr<detail::QmpSubscriptionState> state)
    : executor_(std::move(executor)), state_(std::move(state)) {}

Task<std::optional<QmpEvent>> QmpSubscription::next(std::chrono::steady_clock::time_point deadline) {
  auto state = state_;
  asio::steady_timer timer(executor_);
  while (state->queue.empty() && !state->closed && std::chrono::steady_clock::now() < deadline) {
    timer.expires_at(deadline);
    state->waiter = &timer;
    boost::system::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    state->waiter = nullptr;
  }
  if (!state->queue.empty()) {
    QmpEvent event = std::move(state->queue.front());
    state->queue.pop_front();
    co_return event;
  }
  if (state->closed) fail(Errc::unavailable, "wait for QMP event {}: QMP connection is closed", state->name);
  co_return std::nullopt;
}

QmpClient::QmpClient(Socket socket)
    : executor_(socket.get_executor()), state_(std::make_shared<detail::QmpState>(std::move(socket))) {}

QmpClient::~QmpClient() { close(); }

void QmpClient::close() noexcept { state_->shut_down("QMP connection was closed by the shim"); }

bool QmpClient::is_open() const noexcept { return state_->open; }

QmpSubscription QmpClient::subscribe(std::string name) {
  auto subscriber = std::make_shared<detail::QmpSubscriptionState>();
  subscriber->name = std::move(name);
  subscriber->closed = !state_->open;
  state_->subscribers.push_back(subscriber);
  return QmpSubscription(executor_, std::move(subscriber));
}

Task<nlohmann::json> QmpClient::handshake(std::chrono::milliseconds timeout) {
  auto state = state_;
  if (state->reader_started) fail(Errc::failed_precondition, "QMP handshake: already done");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json info;
  {
    auto lock = co_await state->exchange_lock.lock();
    if (!state->open) fail(state->close_code, "QMP handshake: {}", state->close_reason);
    asio::steady_timer timer(executor_);
    detail::QmpPending greeting{std::nullopt, &timer};
    state->pending = &greeting;
    struct Unregister {
      detail::QmpState& state;
      ~Unregister() { state.pending = nullptr; }
    } unregister{*state};
    state->reader_started = true;
    asio::co_spawn(executor_, detail::read_loop(state), asio::detached);
    co_await detail::await_pending(greeting, timer, deadline);
    if (!greeting.message) {
      if (greeting.closed) fail(state->close_code, "QMP handshake: {} before the greeting", state->close_reason);
      state->shut_down("no QMP greeting in time");
      fail(Errc::deadline_exceeded, "QMP handshake: no greeting within {} ms", timeout.count());
    }
    info = std::move((*greeting.message)["QMP"]);
  }
  const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  co_await execute("qmp_capabilities", nlohmann::json::object(), std::max(remaining, std::chrono::milliseconds(1)));
  co_return info;
}

Task<nlohmann::json> QmpClient::execute(std::string command, nlohmann::json arguments, std::chrono::milliseconds timeout) {
  return exchange(std::move(command), std::move(arguments), -1, timeout);
}

Task<nlohmann::json> QmpClient::execute_with_fd(std::string command, nlohmann::json arguments, int fd,
                                                std::chrono::milliseconds timeout) {
  return exchange(std::move(command), std::move(arguments), fd, timeout);
}

Task<nlohmann::json> QmpClient::exchange(std::string command, nlohmann::json arguments, int fd,
                                         std::chrono::milliseconds timeout) {
  auto state = state_;
  auto lock = co_await state->exchange_lock.lock();
  if (!state->open) fail(state->close_code, "QMP {}: {}", command, state->close_reason);
  if (!state->reader_started) fail(Errc::failed_precondition, "QMP {}: handshake has not been done", command);
  const auto deadline = std::chrono::steady_clock::now() + timeout;

  asio::steady_timer timer(executor_);
  detail::QmpPending pending{state->next_id++, &timer};
  state->pending = &pending;
  struct Unregister {
    detail::QmpState& state;
    ~Unregister() { state.pending = nullptr; }
  } unregister{*state};

  nlohmann::json request = {{"execute", command}, {"id", *pending.id}};
  if (!arguments.is_null() && !arguments.empty()) request["arguments"] = std::move(arguments);
  const std::string line = request.dump() + "\n";
  try {
    if (fd >= 0) {
      co_await detail::send_with_fd(state->socket, line, fd);
    } else {
      co_await asio::async_write(state->socket, asio::buffer(line), asio::use_awaitable);
    }
  } catch (const std::exception& error) {
    state->shut_down(std::string("QMP write failed: ") + error.what());
  }
  co_await detail::await_pending(pending, timer, deadline);
  if (!pending.message) {
    if (pending.closed || !state->open) fail(state->close_code, "QMP {}: {}", command, state->close_reason);
    fail(Errc::deadline_exceeded, "QMP {}: no reply within {} ms", command, timeout.count());
  }
  nlohmann::json& reply = *pending.message;
  if (reply.contains("error")) {
    const auto& error = reply["error"];
    const std::string error_class = error.value("class", std::string("GenericError"));
    const std::string desc = error.value("desc", std::string("(no description)"));
    fail(detail::code_for_class(error_class), "QMP {}: {} ({})", command, desc, error_class);
  }
  co_return std::move(reply["return"]);
}

}  // namespace kata::hypervisor::qemu
