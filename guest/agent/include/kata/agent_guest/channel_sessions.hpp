// Host sessions on the virtio-serial channel, told apart by the agent.
//
// virtio-serial gives the guest one byte stream for every host connection in turn, and reports a
// disconnect only through a control message that may arrive after the next host's first bytes,
// or not be visible at all when the host reconnects at once (POLLHUP never observed, read() never
// returns 0). Serving the port directly, a ttRPC connection could then outlive its host: the new
// host's first request (stream id 1) would reach the old connection and be refused as a reused
// stream id, on every attempt. So the agent reads the port frame by frame and starts a new ttRPC
// session (a socketpair served by the ttrpc::Server) when a request's stream id does not increase,
// which only a new client does (ttRPC clients number their streams 1, 3, 5, ...). An EOF alone
// does not end a session, because it may be the late report of a disconnect whose next host
// already has the session. Answers of an ended session are dropped instead of reaching the port.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "kata/agent_guest/virtio_port.hpp"
#include "kata/core/async_mutex.hpp"
#include "kata/core/asio.hpp"
#include "kata/ttrpc/server.hpp"

namespace kata::agent_guest {

class ChannelSessions {
 public:
  /// `server` and `port` must outlive run(). The port is read and written through a duplicate.
  ChannelSessions(Executor executor, ttrpc::Server& server, const VirtioPort& port);

  /// Serves host after host; completes only by throwing (the port cannot be duplicated).
  Task<void> run();

  /// Sessions started so far (diagnostics and tests).
  [[nodiscard]] std::uint64_t sessions_started() const noexcept { return generation_; }

 private:
  struct Session {
    asio::local::stream_protocol::socket socket;
    std::uint64_t generation;
  };

  Task<void> wait_for_host();
  void start_session();
  void end_session() noexcept;
  Task<void> forward_responses(std::shared_ptr<Session> session);

  Executor executor_;
  ttrpc::Server& server_;
  const VirtioPort& port_;
  asio::posix::stream_descriptor stream_;
  AsyncMutex write_lock_;
  std::shared_ptr<Session> session_;
  std::uint64_t generation_ = 0;
  bool writing_ = false;
};

}  // namespace kata::agent_guest
