#include "kata/agent_guest/vsock.hpp"

#include <sys/socket.h>
#include <linux/vm_sockets.h>

#include <cerrno>

#include "kata/core/error.hpp"

namespace kata::agent_guest {

std::optional<UniqueFd> listen_vsock(std::uint32_t port) {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    if (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT) return std::nullopt;
    fail_errno(errno, "create vsock socket");
  }
  sockaddr_vm address{};
  address.svm_family = AF_VSOCK;
  address.svm_cid = VMADDR_CID_ANY;
  address.svm_port = port;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    // No transport device registered: the family exists (module loaded) but cannot bind.
    if (errno == EADDRNOTAVAIL || errno == ENODEV) return std::nullopt;
    fail_errno(errno, "bind vsock port {}", port);
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) fail_errno(errno, "listen on vsock port {}", port);
  return fd;
}

}  // namespace kata::agent_guest
