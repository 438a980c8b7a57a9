#include "kata/core/error.hpp"

#include <cstring>

namespace kata {

std::string_view to_string(Errc code) noexcept {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::cancelled: return "cancelled";
    case Errc::unknown: return "unknown";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::deadline_exceeded: return "deadline_exceeded";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::permission_denied: return "permission_denied";
    case Errc::resource_exhausted: return "resource_exhausted";
    case Errc::failed_precondition: return "failed_precondition";
    case Errc::aborted: return "aborted";
    case Errc::out_of_range: return "out_of_range";
    case Errc::not_supported: return "not_supported";
    case Errc::internal: return "internal";
    case Errc::unavailable: return "unavailable";
    case Errc::data_loss: return "data_loss";
    case Errc::unauthenticated: return "unauthenticated";
  }
  return "unknown";
}

Errc errc_from_errno(int err) noexcept {
  switch (err) {
    case 0: return Errc::ok;
    case ENOENT:
    case ESRCH:
    case ENODEV:
    case ENXIO: return Errc::not_found;
    case EEXIST: return Errc::already_exists;
    case EINVAL:
    case E2BIG:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR: return Errc::invalid_argument;
    case EPERM:
    case EACCES:
    case EROFS: return Errc::permission_denied;
    case ETIMEDOUT: return Errc::deadline_exceeded;
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EAGAIN: return Errc::resource_exhausted;
    case ENOTSUP:
    case ENOSYS: return Errc::not_supported;
    case ECANCELED:
    case EINTR: return Errc::cancelled;
    case EBUSY: return Errc::failed_precondition;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ESHUTDOWN: return Errc::unavailable;
    default: return Errc::unknown;
  }
}

void throw_errno(int err, std::string what) {
  what += ": ";
  what += std::strerror(err);
  throw Error(errc_from_errno(err), std::move(what));
}

namespace {

void append_layer(std::string& out, std::string_view message) {
  if (message.empty()) return;
  if (!out.empty()) out += ": ";
  out += message;
}

// std::system_error::what() from libstdc++ already reads "<what>: <strerror>", which is the shape
// we want for a root cause.
void describe_into(std::string& out, const std::exception& error) {
  append_layer(out, error.what());
  try {
    std::rethrow_if_nested(error);
  } catch (const std::exception& inner) {
    describe_into(out, inner);
  } catch (...) {
    append_layer(out, "unknown error");
  }
}

Errc innermost_code(const std::exception& error, Errc so_far) noexcept {
  if (const auto* own = dynamic_cast<const Error*>(&error)) {
    so_far = own->code();
  } else if (const auto* sys = dynamic_cast<const std::system_error*>(&error)) {
    so_far = sys->code().category() == std::generic_category() || sys->code().category() == std::system_category()
                 ? errc_from_errno(sys->code().value())
                 : Errc::unknown;
  } else if (dynamic_cast<const std::invalid_argument*>(&error) != nullptr) {
    so_far = Errc::invalid_argument;
  } else if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr) {
    so_far = Errc::resource_exhausted;
  }
  try {
    std::rethrow_if_nested(error);
  } catch (const std::exception& inner) {
    return innermost_code(inner, so_far);
  } catch (...) {
  }
  return so_far;
}

}  // namespace

std::string describe(const std::exception& error) {
  std::string out;
  describe_into(out, error);
  return out;
}

std::string describe(const std::exception_ptr& error) {
  if (!error) return {};
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return describe(e);
  } catch (...) {
    return "unknown error";
  }
}

Errc code_of(const std::exception& error) noexcept { return innermost_code(error, Errc::unknown); }

Errc code_of(const std::exception_ptr& error) noexcept {
  if (!error) return Errc::ok;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return code_of(e);
  } catch (...) {
    return Errc::unknown;
  }
}

void rethrow_with_context(std::string context) {
  const Errc code = code_of(std::current_exception());
  std::throw_with_nested(Error(code, std::move(context)));
}

}  // namespace kata
