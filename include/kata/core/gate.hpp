// The lifecycle gate: one per sandbox (and per server), so shutdown drains all background work.
//
// Modelled on Seastar's gate and stdexec's async_scope. Work *enters* the gate and holds it while
// it runs; close() refuses new work and completes when everything that entered has left. A
// sandbox's watchers (VMM exit, OOM events, I/O copies, health checks) all run inside its gate, so
// "shutdown finished" means "no coroutine of this sandbox is still running" — nothing can touch a
// destroyed sandbox, and nothing is left behind hung.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <string>

#include "kata/core/async_event.hpp"

namespace kata {

class Gate {
 public:
  /// Proof of being inside the gate; leaving happens when the holder is destroyed. Movable, so it
  /// can be captured by the coroutine that does the work.
  class Holder {
   public:
    Holder(Holder&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Holder& operator=(Holder&& other) noexcept;
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;
    ~Holder() { release(); }

   private:
    friend class Gate;
    explicit Holder(Gate* gate) noexcept : gate_(gate) {}
    void release() noexcept;
    Gate* gate_;
  };

  /// `name` appears in the error given to work that arrives after close() ("sandbox abc is
  /// shutting down").
  Gate(Executor executor, std::string name);
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  /// The gate must be closed and drained before it is destroyed (asserted in debug builds): an
  /// owner that forgets to close would otherwise leave work running against freed state.
  ~Gate();

  /// Enters unless closed. noexcept, for paths that simply skip work during shutdown.
  [[nodiscard]] std::optional<Holder> try_enter() noexcept;

  /// Enters or throws Error(Errc::unavailable, "<name> is shutting down").
  [[nodiscard]] Holder enter();

  /// Refuses new entries and completes when the in-flight count reaches zero. Safe to call more
  /// than once and from several coroutines; all complete together.
  Task<void> close();

  /// Runs `work` as a detached coroutine inside the gate (entered now, left when it completes).
  /// Throws like enter() if closed. An exception escaping `work` goes to `on_error` (default:
  /// swallowed — callers that care log it); it never terminates the process.
  void spawn(Task<void> work, std::function<void(std::exception_ptr)> on_error = {});

  [[nodiscard]] bool is_closed() const noexcept { return closed_; }
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  void leave() noexcept;

  Executor executor_;
  std::string name_;
  std::size_t in_flight_ = 0;
  bool closed_ = false;
  AsyncEvent drained_;
};

}  // namespace kata
