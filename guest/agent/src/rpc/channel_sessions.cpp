#include "kata/agent_guest/channel_sessions.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <array>

#include <boost/asio/write.hpp>

#include "kata/agent_guest/log.hpp"
#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

using namespace std::chrono_literals;

// ttRPC's frame header: payload length, stream id (both big-endian), type, flags.
constexpr std::size_t header_size = 10;
constexpr std::uint8_t request_type = 1;
// Larger than any frame the ttRPC server accepts (it answers oversize with an error itself);
// beyond this the byte stream is garbage, not a frame.
constexpr std::uint32_t max_payload = 64u << 20;
constexpr auto host_poll_interval = 20ms;

std::uint32_t big_endian(const char* bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

constexpr std::size_t read_chunk = 64 << 10;

// Bytes read from a stream, cut into whole frames. Reading in chunks and forwarding runs of
// whole frames keeps the hop to one read and one write per batch, not per frame: every system
// call is expensive in an emulated guest.
class FrameBuffer {
 public:
  enum class Next { frame, need_more, garbage };

  /// Reads more bytes; false at EOF or on an error (a partial frame left is dropped).
  template <class Stream>
  Task<bool> fill(Stream& stream) {
    if (start_ > 0 && start_ == bytes_.size()) {
      bytes_.clear();
      start_ = 0;
    }
    const std::size_t old_size = bytes_.size();
    bytes_.resize(old_size + read_chunk);
    boost::system::error_code error;
    const std::size_t got = co_await stream.async_read_some(asio::buffer(bytes_.data() + old_size, read_chunk),
                                                            asio::redirect_error(asio::use_awaitable, error));
    bytes_.resize(old_size + (error ? 0 : got));
    if (error) {
      bytes_.clear();
      start_ = 0;
    }
    co_return !error;
  }

  /// The next whole frame (a view into the buffer, valid until the next fill()).
  Next next(std::string_view& frame) {
    const std::size_t available = bytes_.size() - start_;
    if (available < header_size) return compact(), Next::need_more;
    const std::uint32_t length = big_endian(bytes_.data() + start_);
    if (length > max_payload) return Next::garbage;
    if (available < header_size + length) return compact(), Next::need_more;
    frame = std::string_view(bytes_.data() + start_, header_size + length);
    start_ += header_size + length;
    return Next::frame;
  }

  void clear() noexcept {
    bytes_.clear();
    start_ = 0;
  }

 private:
  void compact() {
    if (start_ == 0) return;
    bytes_.erase(0, start_);
    start_ = 0;
  }

  std::string bytes_;
  std::size_t start_ = 0;
};

}  // namespace

ChannelSessions::ChannelSessions(Executor executor, ttrpc::Server& server, const VirtioPort& port) :
    executor_(executor), server_(server), port_(port), stream_(executor), write_lock_(executor) {
  const int duplicate = ::fcntl(port.fd(), F_DUPFD_CLOEXEC, 0);
  if (duplicate < 0) fail_errno(errno, "duplicate {}", port.device().string());
  stream_.assign(duplicate);
}

Task<void> ChannelSessions::wait_for_host() {
  asio::steady_timer timer(executor_);
  while (!port_.host_connected()) {
    timer.expires_after(host_poll_interval);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

Task<void> ChannelSessions::run() {
  std::uint32_t last_request = 0;
  FrameBuffer input;
  std::string batch;  // whole frames for the current session, written together
  for (;;) {
    co_await wait_for_host();
    log(LogLevel::info, "host connected on {}", port_.device().string());
    while (co_await input.fill(stream_)) {
      std::string_view frame;
      for (FrameBuffer::Next next; (next = input.next(frame)) != FrameBuffer::Next::need_more;) {
        if (next == FrameBuffer::Next::garbage) {
          log(LogLevel::warn, "{}: not a ttRPC frame; ending the session", port_.device().string());
          batch.clear();
          input.clear();
          end_session();
          break;
        }
        if (static_cast<std::uint8_t>(frame[8]) == request_type) {
          const std::uint32_t stream_id = big_endian(frame.data() + 4);
          if (!session_ || stream_id <= last_request) {
            if (session_) {
              log(LogLevel::info, "new host session on {} (stream id {} after {})", port_.device().string(), stream_id,
                  last_request);
            }
            batch.clear();  // requests of the session being replaced go with it
            start_session();
          }
          last_request = stream_id;
        }
        if (session_) batch.append(frame);  // a stray frame before any request has no session
      }
      if (batch.empty() || !session_) continue;
      boost::system::error_code error;
      co_await asio::async_write(session_->socket, asio::buffer(batch), asio::redirect_error(asio::use_awaitable, error));
      batch.clear();
      if (error) end_session();
    }
    // The session stays: the disconnect may be a late report of one whose next host already
    // sent its first request (and got this session for it). The next host's first request,
    // stream id 1, ends it; until then its answers wait for the port like any write.
    log(LogLevel::info, "host disconnected from {}", port_.device().string());
  }
}

void ChannelSessions::start_session() {
  end_session();
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) fail_errno(errno, "socketpair");
  UniqueFd ours(pair[0]);
  UniqueFd servers(pair[1]);
  server_.serve_connection(std::move(servers));
  auto session = std::make_shared<Session>(
      Session{asio::local::stream_protocol::socket(executor_, asio::local::stream_protocol(), ours.release()),
              ++generation_});
  session_ = session;
  asio::co_spawn(executor_, forward_responses(std::move(session)), asio::detached);
}

void ChannelSessions::end_session() noexcept {
  if (!session_) return;
  boost::system::error_code ignored;
  // Closing our end makes the server see EOF: the session's calls are cancelled and their
  // results dropped.
  session_->socket.close(ignored);
  session_.reset();
  // A response still waiting for the port (writes block while no host is connected) belongs to
  // the ended session.
  if (writing_) stream_.cancel(ignored);
}

Task<void> ChannelSessions::forward_responses(std::shared_ptr<Session> session) {
  FrameBuffer output;
  std::string batch;
  while (co_await output.fill(session->socket)) {
    std::string_view frame;
    for (FrameBuffer::Next next; (next = output.next(frame)) == FrameBuffer::Next::frame;) batch.append(frame);
    if (batch.empty()) continue;
    AsyncMutex::Lock lock = co_await write_lock_.lock();
    if (session != session_) co_return;
    writing_ = true;
    boost::system::error_code error;
    co_await asio::async_write(stream_, asio::buffer(batch), asio::redirect_error(asio::use_awaitable, error));
    writing_ = false;
    batch.clear();
    if (error) co_return;
  }
}

}  // namespace kata::agent_guest
