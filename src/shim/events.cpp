#include "kata/shim/events.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>

#include <boost/asio/dispatch.hpp>

#include "containerd/services/events/ttrpc/v1/events.pb.h"
#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"
#include "kata/shim/messages.hpp"
#include "kata/ttrpc/client.hpp"

namespace kata::shim {
namespace detail {

struct QueuedEvent {
  std::string topic;
  std::string payload;  // a serialized ForwardRequest
  int rejected = 0;
};

struct PublisherState {
  PublisherState(Executor executor_in, EventPublisherOptions options_in, log::Logger logger_in)
      : executor(executor_in),
        options(std::move(options_in)),
        logger(std::move(logger_in)),
        wake(executor_in),
        finished(executor_in) {}

  Executor executor;
  EventPublisherOptions options;
  log::Logger logger;
  std::deque<QueuedEvent> queue;
  asio::steady_timer wake;  // the sender sleeps on it: idle, or backing off
  bool idle = false;        // the sender waits for a new event (not backing off)
  bool closing = false;     // close() started: no new events
  bool stopped = false;     // the sender must return now
  bool sender_running = false;
  std::optional<ttrpc::Client> client;
  AsyncEvent finished;
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;

  void enqueue(std::string topic, std::string payload);
  void notify() {
    if (idle) wake.cancel();
  }
};

namespace {

constexpr std::string_view forward_method = "Forward";

std::string socket_path(std::string_view address) {
  constexpr std::string_view scheme = "unix://";
  if (address.starts_with(scheme)) address.remove_prefix(scheme.size());
  return std::string(address);
}

Task<void> sleep_on(asio::steady_timer& timer, asio::steady_timer::time_point until) {
  timer.expires_at(until);
  boost::system::error_code ignored;  // cancellation is the wake-up
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable_t<Executor>{}, ignored));
}

bool is_transport_failure(Errc code) { return code == Errc::unavailable || code == Errc::deadline_exceeded; }

// Forwards the queue head until the queue is empty and close() was called, or stop.
Task<void> run_sender(std::shared_ptr<PublisherState> state) {
  auto& s = *state;
  const auto path = socket_path(s.options.ttrpc_address);
  auto backoff = s.options.initial_backoff;
  int failures = 0;
  while (!s.stopped) {
    if (s.queue.empty()) {
      if (s.closing) break;
      s.idle = true;
      co_await sleep_on(s.wake, asio::steady_timer::time_point::max());
      s.idle = false;
      continue;
    }
    std::exception_ptr failure;
    bool connecting = false;
    try {
      if (!s.client || !s.client->is_open()) {
        connecting = true;
        s.client.emplace(co_await ttrpc::Client::connect_unix(s.executor, path));
        connecting = false;
      }
      auto options = ttrpc::CallOptions::with_timeout(s.options.forward_timeout);
      options.metadata.push_back({std::string(namespace_metadata_key), s.options.namespace_name});
      std::string payload = s.queue.front().payload;
      co_await s.client->call(events_service_name, forward_method, std::move(payload), std::move(options));
    } catch (...) {
      failure = std::current_exception();
    }
    if (s.stopped) break;
    if (!failure) {
      if (failures > 0) s.logger.info("event delivery to {} resumed after {} failed attempts", path, failures);
      failures = 0;
      backoff = s.options.initial_backoff;
      s.logger.debug("forwarded event {}", s.queue.front().topic);
      s.queue.pop_front();
      ++s.delivered;
      continue;
    }
    const Errc code = code_of(failure);
    auto& head = s.queue.front();
    if (!connecting && !is_transport_failure(code) && ++head.rejected >= s.options.max_rejected_attempts) {
      s.logger.error("dropping event {}: containerd rejected it {} times: {}", head.topic, head.rejected,
                     describe(failure));
      s.queue.pop_front();
      ++s.dropped;
      failures = 0;
      backoff = s.options.initial_backoff;
      continue;
    }
    if (failures++ == 0) {
      s.logger.warn("forwarding event {} to {} failed, retrying: {}", head.topic, path, describe(failure));
    } else {
      s.logger.debug("forwarding event {} failed again ({} attempts): {}", head.topic, failures, describe(failure));
    }
    if (s.client) {
      s.client->close();
      s.client.reset();
    }
    co_await sleep_on(s.wake, asio::steady_timer::clock_type::now() + backoff);
    backoff = std::min(backoff * 2, s.options.max_backoff);
  }
  if (s.client) {
    s.client->close();
    s.client.reset();
  }
  s.sender_running = false;
  s.finished.set();
}

}  // namespace

void PublisherState::enqueue(std::string topic, std::string payload) {
  if (closing) {
    ++dropped;
    logger.warn("event {} published after shutdown started; dropped", topic);
    return;
  }
  if (options.ttrpc_address.empty()) {
    logger.info("event {} (no TTRPC_ADDRESS: not forwarded)", topic);
    return;
  }
  if (queue.size() >= options.queue_capacity) {
    ++dropped;
    logger.error("event queue full ({} events waiting for containerd): dropping {}", queue.size(), topic);
    return;
  }
  queue.push_back(QueuedEvent{std::move(topic), std::move(payload)});
  notify();
}

}  // namespace detail

EventPublisher::EventPublisher(Executor executor, EventPublisherOptions options, log::Logger logger)
    : state_(std::make_shared<detail::PublisherState>(executor, std::move(options), std::move(logger))) {
  if (!state_->options.ttrpc_address.empty()) {
    state_->sender_running = true;
    asio::co_spawn(executor, detail::run_sender(state_), asio::detached);
  }
}

EventPublisher::~EventPublisher() {
  auto& s = *state_;
  if (!s.queue.empty()) {
    s.logger.error("{} events were never delivered to containerd", s.queue.size());
    s.dropped += s.queue.size();
    s.queue.clear();
  }
  s.closing = true;
  s.stopped = true;
  s.wake.cancel();
  if (s.client) s.client->close();
}

void EventPublisher::publish(std::string_view topic, const google::protobuf::MessageLite& event) noexcept {
  try {
    std::string payload = make_forward_request(topic, state_->options.namespace_name, event).SerializeAsString();
    asio::dispatch(state_->executor,
                   [state = state_, topic = std::string(topic), payload = std::move(payload)]() mutable {
                     state->enqueue(std::move(topic), std::move(payload));
                   });
  } catch (const std::exception& error) {
    state_->logger.error("publishing event {} failed: {}", topic, describe(error));
  }
}

Task<void> EventPublisher::close(std::chrono::steady_clock::duration drain_timeout) {
  auto state = state_;
  auto& s = *state;
  s.closing = true;
  if (s.sender_running) {
    s.notify();
    if (!co_await s.finished.wait_for(drain_timeout)) {
      s.stopped = true;
      s.wake.cancel();
      if (s.client) s.client->close();
      co_await s.finished.wait();
    }
  }
  if (!s.queue.empty()) {
    s.logger.error("{} events could not be delivered to containerd before exit", s.queue.size());
    s.dropped += s.queue.size();
    s.queue.clear();
  }
}

std::size_t EventPublisher::queued() const noexcept { return state_->queue.size(); }
std::uint64_t EventPublisher::delivered() const noexcept { return state_->delivered; }
std::uint64_t EventPublisher::dropped() const noexcept { return state_->dropped; }

}  // namespace kata::shim
