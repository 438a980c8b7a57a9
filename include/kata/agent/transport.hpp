// How the shim reaches the guest agent: the AgentTransport named requirement and its models.
//
// A transport only *dials*: it turns an AgentAddress into a connected byte stream (a descriptor)
// on which the ttRPC client then runs. Which transports a variant can use is a compile-time list
// (AnyTransport<...>), so a Firecracker shim carries no vsock code and a QEMU shim no hybrid-vsock
// handshake it can never need.
//
// ## AgentTransport
//
// A type `T` satisfies AgentTransport if, given `address` (const hypervisor::AgentAddress&), `ex`
// (Executor) and `options` (const DialOptions&):
//
// | expression | type | semantics |
// |---|---|---|
// | `T::name` | convertible to `std::string_view` | For logs and errors ("virtio-serial"). |
// | `T::accepts(address)` | `bool` | Whether this transport can dial this kind of address. |
// | `T::connect(ex, address, options)` | `Task<UniqueFd>` | Completes with a connected stream descriptor (O_CLOEXEC, non-blocking) ready for ttRPC. Retries refused or not-yet-existing endpoints every `options.retry_interval` until `options.deadline`, and always makes at least one attempt (upstream could make zero, kata #13667). Errors: `invalid_argument` if `!accepts(address)`; otherwise `deadline_exceeded` "connect to agent at <url>: no answer within <n> ms: <last error>"; `unavailable` for a handshake the peer refused. Never blocks the executor. |
#pragma once

#include <chrono>
#include <concepts>
#include <optional>
#include <string_view>

#include "kata/core/asio.hpp"
#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/hypervisor/vm.hpp"

namespace kata::agent {

struct DialOptions {
  /// Give up after this point; at least one attempt is made even if it already passed.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  /// Pause between attempts ([agent.kata] dial_timeout_ms, clamped to [10 ms, 500 ms] as upstream).
  std::chrono::milliseconds retry_interval{10};
};

template <class T>
concept AgentTransport = requires(const hypervisor::AgentAddress& address, Executor ex, const DialOptions& options) {
  { T::name } -> std::convertible_to<std::string_view>;
  { T::accepts(address) } -> std::same_as<bool>;
  { T::connect(ex, address, options) } -> std::same_as<Task<UniqueFd>>;
};

/// virtio-serial port behind a QEMU chardev unix socket (our lab: no vhost-vsock). QEMU holds
/// bytes sent before the guest opens its port, so a connected socket is usable at once; whether
/// the agent answers is the agent client's readiness check.
struct SerialPortTransport {
  static constexpr std::string_view name = "virtio-serial";
  static bool accepts(const hypervisor::AgentAddress& address);
  static Task<UniqueFd> connect(Executor executor, const hypervisor::AgentAddress& address, const DialOptions& options);
};

/// AF_VSOCK to (guest cid, port): QEMU with vhost-vsock.
struct VsockTransport {
  static constexpr std::string_view name = "vsock";
  static bool accepts(const hypervisor::AgentAddress& address);
  static Task<UniqueFd> connect(Executor executor, const hypervisor::AgentAddress& address, const DialOptions& options);
};

/// Hybrid vsock: a unix socket where "connect <port>\n" must be answered by a line containing
/// "OK" (Cloud Hypervisor, Firecracker, Dragonball). Upstream sends lowercase "connect".
struct HybridVsockTransport {
  static constexpr std::string_view name = "hybrid-vsock";
  static bool accepts(const hypervisor::AgentAddress& address);
  static Task<UniqueFd> connect(Executor executor, const hypervisor::AgentAddress& address, const DialOptions& options);
};

/// A plain unix socket (remote hypervisor / peer pods).
struct RemoteTransport {
  static constexpr std::string_view name = "remote";
  static bool accepts(const hypervisor::AgentAddress& address);
  static Task<UniqueFd> connect(Executor executor, const hypervisor::AgentAddress& address, const DialOptions& options);
};

/// The first of `Transports` that accepts the address dials it. Itself an AgentTransport.
template <AgentTransport... Transports>
struct AnyTransport {
  static constexpr std::string_view name = "any";

  static bool accepts(const hypervisor::AgentAddress& address) { return (Transports::accepts(address) || ...); }

  /// Not a coroutine itself: it picks the transport and returns that transport's operation.
  static Task<UniqueFd> connect(Executor executor, const hypervisor::AgentAddress& address, const DialOptions& options) {
    std::optional<Task<UniqueFd>> chosen;
    // A fold keeps the choice static: only the listed transports are instantiated.
    ((!chosen && Transports::accepts(address) ? (chosen.emplace(Transports::connect(executor, address, options)), 0) : 0),
     ...);
    if (!chosen) fail(Errc::invalid_argument, "no agent transport of this variant can dial {}", hypervisor::to_url(address));
    return std::move(*chosen);
  }
};

static_assert(AgentTransport<SerialPortTransport>);
static_assert(AgentTransport<VsockTransport>);
static_assert(AgentTransport<HybridVsockTransport>);
static_assert(AgentTransport<RemoteTransport>);

}  // namespace kata::agent
