// Errors with a context chain.
//
// Every failure a user can see reads like a path from the operation they asked for down to the
// root cause:
//
//     start sandbox abc: launch qemu: exec /usr/bin/qemu-system-x86_64: No such file or directory
//
// The chain is a stack of nested exceptions (std::throw_with_nested); each layer adds one short
// phrase saying what it was doing. The *code* of the chain is the innermost kata::Error's code (or
// the errno mapping of an innermost std::system_error), because that is what callers branch on
// (NotFound vs AlreadyExists), and it is what goes onto the wire as a ttRPC status.
#pragma once

#include <cerrno>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace kata {

/// Error codes. The numeric values are gRPC's status codes, which ttRPC reuses on the wire, so
/// an Errc converts to a ttRPC Status without a table.
enum class Errc : int {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  /// The operation is not supported by this backend (gRPC UNIMPLEMENTED).
  not_supported = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

/// Canonical lower-case name of a code ("not_found"), for logs and messages.
std::string_view to_string(Errc code) noexcept;

/// Maps an errno value to the closest Errc (ENOENT -> not_found, EEXIST -> already_exists, ...).
Errc errc_from_errno(int err) noexcept;

/// An error raised by this project. what() is the message of this layer only; the full chain of
/// a nested exception is produced by describe().
class Error : public std::runtime_error {
 public:
  Error(Errc code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}

  [[nodiscard]] Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

/// Throws Error(code, formatted message).
template <class... Args>
[[noreturn]] void fail(Errc code, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(code, fmt::format(format, std::forward<Args>(args)...));
}

/// Throws for a failed system call: the message is "<formatted what>: <strerror(err)>" and the
/// code is errc_from_errno(err). The innermost layer of a chain is usually one of these.
[[noreturn]] void throw_errno(int err, std::string what);

template <class... Args>
[[noreturn]] void fail_errno(int err, fmt::format_string<Args...> format, Args&&... args) {
  throw_errno(err, fmt::format(format, std::forward<Args>(args)...));
}

/// "outer: middle: root cause" for an exception and everything nested in it.
[[nodiscard]] std::string describe(const std::exception_ptr& error);
[[nodiscard]] std::string describe(const std::exception& error);

/// The code of the innermost kata::Error (or mapped std::system_error) in the chain;
/// Errc::unknown for foreign exceptions.
[[nodiscard]] Errc code_of(const std::exception_ptr& error) noexcept;
[[nodiscard]] Errc code_of(const std::exception& error) noexcept;

/// Wraps the exception currently being handled in a new layer of context. Must be called from
/// inside a catch block.
[[noreturn]] void rethrow_with_context(std::string context);

/// Runs `operation`; if it throws, the exception is wrapped with `context` (evaluated lazily if it
/// is invocable, so building the phrase costs nothing on success).
template <class Context, class Operation>
decltype(auto) with_context(Context&& context, Operation&& operation) {
  try {
    return std::forward<Operation>(operation)();
  } catch (...) {
    if constexpr (std::is_invocable_v<Context>) {
      rethrow_with_context(std::string(context()));
    } else {
      rethrow_with_context(std::string(std::forward<Context>(context)));
    }
  }
}

}  // namespace kata

template <>
struct fmt::formatter<kata::Errc> : fmt::formatter<std::string_view> {
  auto format(kata::Errc code, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(kata::to_string(code), ctx);
  }
};
