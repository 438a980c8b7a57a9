#include "kata/ttrpc/transport.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>

#include "kata/core/error.hpp"
#include "kata/ttrpc/frame.hpp"

namespace kata::ttrpc {

namespace {

using Socket = asio::generic::stream_protocol::socket;
using Descriptor = asio::posix::stream_descriptor;

// The socket family of `fd`, or -1 when it is not a socket.
int socket_family(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (errno == ENOTSOCK) return -1;
    fail_errno(errno, "ttrpc transport: getsockname on fd {}", fd);
  }
  int type = 0;
  socklen_t type_length = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) != 0) {
    fail_errno(errno, "ttrpc transport: getsockopt(SO_TYPE) on fd {}", fd);
  }
  if (type != SOCK_STREAM) fail(Errc::invalid_argument, "ttrpc transport: fd {} is not a stream socket", fd);
  int listening = 0;
  socklen_t listening_length = sizeof(listening);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &listening_length) == 0 && listening != 0) {
    fail(Errc::invalid_argument, "ttrpc transport: fd {} is a listening socket, not a connection", fd);
  }
  return address.ss_family;
}

sockaddr_un unix_address(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string& native = path.native();
  if (native.empty() || native.size() >= sizeof(address.sun_path)) {
    fail(Errc::invalid_argument, "unix socket path {} is empty or longer than {} bytes", native,
         sizeof(address.sun_path) - 1);
  }
  std::memcpy(address.sun_path, native.c_str(), native.size() + 1);
  return address;
}

// A unix socket's send buffer bounds how much of a message crosses per wakeup of the peer: with
// the kernel default (208 KiB) a 1 MiB message takes a dozen write/read/epoll rounds on each
// side, which cost more than the copies themselves (docs/performance.md). The kernel caps the
// request at net.core.wmem_max and only charges memory for bytes actually queued, so this is a
// limit for a peer that stops reading, not an allocation. Failure only costs speed.
void size_send_buffer(int fd) noexcept {
  constexpr int wanted = static_cast<int>(max_message_size / 2);  // the kernel doubles it for bookkeeping
  int current = 0;
  socklen_t length = sizeof(current);
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &current, &length) == 0 && current >= 2 * wanted) return;
  static_cast<void>(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof(wanted)));
}

}  // namespace

struct Transport::Impl {
  std::variant<Socket, Descriptor> stream;

  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), stream);
  }
};

Transport::Transport(Executor executor, UniqueFd fd) {
  if (!fd) fail(Errc::invalid_argument, "ttrpc transport: no file descriptor");
  const int family = socket_family(fd.get());
  if (family >= 0) {
    Socket socket(executor);
    socket.assign(asio::generic::stream_protocol(family, SOCK_STREAM), fd.get());
    static_cast<void>(fd.release());
    socket.non_blocking(true);
    if (family == AF_UNIX) size_send_buffer(socket.native_handle());
    impl_ = std::make_unique<Impl>(Impl{std::variant<Socket, Descriptor>(std::in_place_index<0>, std::move(socket))});
  } else {
    Descriptor descriptor(executor, fd.get());
    static_cast<void>(fd.release());
    descriptor.non_blocking(true);
    impl_ = std::make_unique<Impl>(
        Impl{std::variant<Socket, Descriptor>(std::in_place_index<1>, std::move(descriptor))});
  }
}

Transport::Transport(Transport&&) noexcept = default;
Transport& Transport::operator=(Transport&&) noexcept = default;
Transport::~Transport() = default;

Executor Transport::get_executor() const noexcept {
  return std::visit([](auto& s) -> Executor { return s.get_executor(); }, impl_->stream);
}

Task<std::size_t> Transport::read_some(asio::mutable_buffer buffer) {
  return impl_->visit([&](auto& s) { return s.async_read_some(buffer, asio::use_awaitable_t<Executor>{}); });
}

Task<void> Transport::write_all(asio::const_buffer buffer) {
  return impl_->visit([&](auto& s) -> Task<void> {
    return [](auto& stream, asio::const_buffer data) -> Task<void> {
      co_await asio::async_write(stream, data, asio::use_awaitable_t<Executor>{});
    }(s, buffer);
  });
}

Task<void> Transport::write_all(std::vector<asio::const_buffer> buffers) {
  return impl_->visit([&](auto& s) -> Task<void> {
    return [](auto& stream, std::vector<asio::const_buffer> data) -> Task<void> {
      co_await asio::async_write(stream, data, asio::use_awaitable_t<Executor>{});
    }(s, std::move(buffers));
  });
}

std::size_t Transport::try_write(asio::const_buffer buffer, boost::system::error_code& error) noexcept {
  return impl_->visit([&](auto& s) { return s.write_some(buffer, error); });
}

std::size_t Transport::try_write(const std::vector<asio::const_buffer>& buffers,
                                 boost::system::error_code& error) noexcept {
  return impl_->visit([&](auto& s) { return s.write_some(buffers, error); });
}

void Transport::cancel() noexcept {
  impl_->visit([](auto& s) {
    boost::system::error_code ignored;
    s.cancel(ignored);
  });
}

void Transport::close() noexcept {
  if (!impl_) return;
  impl_->visit([](auto& s) {
    boost::system::error_code ignored;
    s.close(ignored);
  });
}

bool Transport::is_open() const noexcept {
  return impl_ && std::visit([](auto& s) { return s.is_open(); }, impl_->stream);
}

Task<UniqueFd> connect_unix(Executor executor, const std::filesystem::path& path) {
  const sockaddr_un address = unix_address(path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) fail_errno(errno, "connect {}: socket", path.native());
  Socket socket(executor, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fd.release());
  boost::system::error_code error;
  co_await socket.async_connect(
      asio::generic::stream_protocol::endpoint(&address, sizeof(address)),
      asio::redirect_error(asio::use_awaitable_t<Executor>{}, error));
  if (error) fail_errno(error.value(), "connect {}", path.native());
  co_return UniqueFd(socket.release());
}

UniqueFd listen_unix(const std::filesystem::path& path, int backlog) {
  const sockaddr_un address = unix_address(path);
  struct stat existing{};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      fail(Errc::already_exists, "listen {}: the path exists and is not a socket", path.native());
    }
    // A socket file nobody accepts on is what a dead server leaves behind; a live one answers.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
      fail(Errc::already_exists, "listen {}: another server is accepting on this socket", path.native());
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail_errno(errno, "listen {}: remove stale socket", path.native());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) fail_errno(errno, "listen {}: socket", path.native());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    fail_errno(errno, "listen {}: bind", path.native());
  }
  if (::listen(fd.get(), backlog) != 0) fail_errno(errno, "listen {}", path.native());
  return fd;
}

}  // namespace kata::ttrpc
