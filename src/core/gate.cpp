#include "kata/core/gate.hpp"

#include <cassert>

#include "kata/core/error.hpp"

namespace kata {

Gate::Holder& Gate::Holder::operator=(Holder&& other) noexcept {
  if (this != &other) {
    release();
    gate_ = std::exchange(other.gate_, nullptr);
  }
  return *this;
}

void Gate::Holder::release() noexcept {
  if (auto* gate = std::exchange(gate_, nullptr)) gate->leave();
}

Gate::Gate(Executor executor, std::string name)
    : executor_(executor), name_(std::move(name)), drained_(std::move(executor)) {}

Gate::~Gate() { assert(in_flight_ == 0 && "Gate destroyed with work still inside; close() it first"); }

std::optional<Gate::Holder> Gate::try_enter() noexcept {
  if (closed_) return std::nullopt;
  ++in_flight_;
  return Holder(this);
}

Gate::Holder Gate::enter() {
  if (closed_) fail(Errc::unavailable, "{} is shutting down", name_);
  ++in_flight_;
  return Holder(this);
}

void Gate::leave() noexcept {
  assert(in_flight_ > 0);
  if (--in_flight_ == 0 && closed_) drained_.set();
}

Task<void> Gate::close() {
  closed_ = true;
  if (in_flight_ == 0) drained_.set();
  co_await drained_.wait();
}

void Gate::spawn(Task<void> work, std::function<void(std::exception_ptr)> on_error) {
  auto holder = enter();
  asio::co_spawn(
      executor_,
      [held = std::move(holder), work = std::move(work)]() mutable -> Task<void> { co_await std::move(work); },
      [on_error = std::move(on_error)](std::exception_ptr error) {
        if (error && on_error) on_error(error);
      });
}

}  // namespace kata
