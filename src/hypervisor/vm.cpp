#include "kata/hypervisor/vm.hpp"

#include <fmt/format.h>

namespace kata::hypervisor {
namespace {
template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
}  // namespace

std::string to_url(const AgentAddress& address) {
  return std::visit(
      Overloaded{
          [](const VsockAddress& a) { return fmt::format("vsock://{}:{}", a.guest_cid, a.port); },
          [](const HybridVsockAddress& a) { return fmt::format("hvsock://{}:{}", a.socket.string(), a.port); },
          [](const SerialPortAddress& a) { return fmt::format("serial://{}", a.socket.string()); },
          [](const RemoteAddress& a) { return fmt::format("remote://{}", a.socket.string()); },
      },
      address);
}

}  // namespace kata::hypervisor
