#include "kata/agent_guest/channel_sessions.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <array>

#include <boost/asio/read.hpp>
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

enum class FrameRead { frame, end, garbage };

// One whole frame (header included) from `stream` into `frame`; `end` at EOF or on an error
// (a partial frame is dropped), `garbage` when the header cannot be a frame's.
template <class Stream>
Task<FrameRead> read_frame(Stream& stream, std::string& frame) {
  frame.assign(header_size, '\0');
  boost::system::error_code error;
  co_await asio::async_read(stream, asio::buffer(frame), asio::redirect_error(asio::use_awaitable, error));
  if (error) co_return FrameRead::end;
  const std::uint32_t length = big_endian(frame.data());
  if (length > max_payload) co_return FrameRead::garbage;
  frame.resize(header_size + length);
  if (length > 0) {
    co_await asio::async_read(stream, asio::buffer(frame.data() + header_size, length),
                              asio::redirect_error(asio::use_awaitable, error));
    if (error) co_return FrameRead::end;
  }
  co_return FrameRead::frame;
}

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
  std::string frame;
  for (;;) {
    co_await wait_for_host();
    log(LogLevel::info, "host connected on {}", port_.device().string());
    for (;;) {
      const FrameRead read = co_await read_frame(stream_, frame);
      if (read == FrameRead::end) break;
      if (read == FrameRead::garbage) {
        log(LogLevel::warn, "{}: not a ttRPC frame; ending the session", port_.device().string());
        end_session();
        continue;
      }
      if (static_cast<std::uint8_t>(frame[8]) == request_type) {
        const std::uint32_t stream_id = big_endian(frame.data() + 4);
        if (session_ && stream_id <= last_request) {
          log(LogLevel::info, "new host session on {} (stream id {} after {})", port_.device().string(), stream_id,
              last_request);
        }
        if (!session_ || stream_id <= last_request) start_session();
        last_request = stream_id;
      }
      if (!session_) continue;  // a stray non-request frame before any request: nobody to give it to
      boost::system::error_code error;
      co_await asio::async_write(session_->socket, asio::buffer(frame), asio::redirect_error(asio::use_awaitable, error));
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
  std::string frame;
  for (;;) {
    if (co_await read_frame(session->socket, frame) != FrameRead::frame) co_return;
    AsyncMutex::Lock lock = co_await write_lock_.lock();
    if (session != session_) co_return;
    writing_ = true;
    boost::system::error_code error;
    co_await asio::async_write(stream_, asio::buffer(frame), asio::redirect_error(asio::use_awaitable, error));
    writing_ = false;
    if (error) co_return;
  }
}

}  // namespace kata::agent_guest
