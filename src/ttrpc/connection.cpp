#include "connection.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include <boost/asio/error.hpp>
#include <fmt/format.h>

namespace kata::ttrpc::detail {

asio::mutable_buffer ReadBuffer::prepare() noexcept {
  // Move a partial frame to the front once little room is left behind it, so reads never get a
  // tiny window and a frame that fits the buffer always finds room.
  constexpr std::size_t min_free = 4096;
  if (capacity - end_ < min_free && begin_ > 0) {
    const std::size_t live = end_ - begin_;
    std::memmove(storage_.get(), storage_.get() + begin_, live);
    begin_ = 0;
    end_ = live;
  }
  return asio::buffer(storage_.get() + end_, capacity - end_);
}

void ReadBuffer::consume(std::size_t bytes) noexcept {
  begin_ += bytes;
  if (begin_ == end_) begin_ = end_ = 0;
}

ConnectionBase::ConnectionBase(Transport transport)
    : transport_(std::move(transport)), executor_(transport_.get_executor()) {}

std::string& ConnectionBase::outbox() {
  if (chunks_.empty() || last_chunk_owned_ || chunks_.size() <= inflight_chunks_) {
    chunks_.push_back(std::move(spare_));
    spare_.clear();
    last_chunk_owned_ = false;
  }
  return chunks_.back();
}

void ConnectionBase::append_owned(std::string bytes) {
  chunks_.push_back(std::move(bytes));
  last_chunk_owned_ = true;
}

void ConnectionBase::recycle_large_buffer(std::string buffer) noexcept {
  // Keeping the larger of two lets a run of similar messages settle on one buffer that fits them
  // all; nothing larger than a frame's data can be useful.
  if (buffer.capacity() <= ReadBuffer::capacity || buffer.capacity() > max_message_size) return;
  if (buffer.capacity() > spare_large_.capacity()) spare_large_ = std::move(buffer);
}

std::string ConnectionBase::take_large_buffer(std::size_t size) {
  std::string buffer;
  if (spare_large_.capacity() >= size) buffer = std::exchange(spare_large_, std::string());
  // Growing a string zero-fills the new bytes; a recycled buffer is usually long enough already,
  // and shortening one costs nothing.
  buffer.resize(size);
  return buffer;
}

std::optional<std::size_t> ConnectionBase::large_frame_split(const FrameHeader& /*header*/,
                                                             std::string_view /*available*/) {
  return 0;
}

bool ConnectionBase::begin_large_frame(const FrameHeader& header) {
  const std::span<const std::uint8_t> buffered = read_buffer_.data();
  // Everything buffered belongs to this frame: it is not complete yet.
  const std::string_view available(reinterpret_cast<const char*>(buffered.data()) + frame_header_size,
                                   buffered.size() - frame_header_size);
  std::optional<std::size_t> split = large_frame_split(header, available);
  if (!split) {
    if (buffered.size() < ReadBuffer::capacity) return false;
    split = 0;
  }
  LargeFrame& frame = large_frame_.emplace();
  frame.header = header;
  frame.prefix.assign(available.substr(0, *split));
  frame.body = take_large_buffer(header.length - *split);
  const std::string_view early = available.substr(*split);
  std::memcpy(frame.body.data(), early.data(), early.size());
  frame.filled = early.size();
  read_buffer_.consume(buffered.size());
  return true;
}

void ConnectionBase::frames_appended() {
  if (closed_ || writing_ || flush_scheduled_) return;
  flush_scheduled_ = true;
  asio::post(executor_, [self = shared_from_this()] { self->flush(); });
}

std::vector<asio::const_buffer> ConnectionBase::pending_buffers(std::size_t& chunk_count) const {
  // IOV_MAX is 1024 on Linux; frames are coalesced into few chunks, so this is rarely reached.
  constexpr std::size_t max_buffers = 64;
  std::vector<asio::const_buffer> buffers;
  chunk_count = std::min(chunks_.size(), max_buffers);
  buffers.reserve(chunk_count);
  for (std::size_t i = 0; i < chunk_count; ++i) {
    const std::string& chunk = chunks_[i];
    const std::size_t skip = i == 0 ? front_offset_ : 0;
    buffers.emplace_back(chunk.data() + skip, chunk.size() - skip);
  }
  return buffers;
}

void ConnectionBase::consume_written(std::size_t bytes) noexcept {
  while (bytes > 0 && !chunks_.empty()) {
    std::string& front = chunks_.front();
    const std::size_t left = front.size() - front_offset_;
    if (bytes < left) {
      front_offset_ += bytes;
      return;
    }
    bytes -= left;
    front_offset_ = 0;
    // Keep one small buffer's capacity for the next frames, and a large payload for the next
    // large frame read.
    if (front.capacity() > ReadBuffer::capacity) {
      recycle_large_buffer(std::move(front));
    } else if (front.capacity() > spare_.capacity()) {
      front.clear();
      spare_.swap(front);
    }
    chunks_.pop_front();
  }
}

void ConnectionBase::flush() {
  flush_scheduled_ = false;
  if (closed_ || writing_ || chunks_.empty()) return;
  std::size_t count = 0;
  const std::vector<asio::const_buffer> buffers = pending_buffers(count);
  boost::system::error_code error;
  const std::size_t written = transport_.try_write(buffers, error);
  if (error && error != asio::error::would_block && error != asio::error::try_again) {
    on_write_failed(fmt::format("write: {}", error.message()));
    return;
  }
  consume_written(written);
  if (chunks_.empty()) {
    on_write_idle();
    return;
  }
  writing_ = true;
  asio::co_spawn(executor_, write_loop(shared_from_this()), asio::detached);
}

// The parameter keeps the connection alive while the coroutine runs.
Task<void> ConnectionBase::write_loop(std::shared_ptr<ConnectionBase> /*self*/) {
  std::string failure;
  try {
    while (!chunks_.empty() && !closed_) {
      std::size_t count = 0;
      std::vector<asio::const_buffer> buffers = pending_buffers(count);
      std::size_t total = 0;
      for (const auto& buffer : buffers) total += buffer.size();
      inflight_chunks_ = count;
      co_await transport_.write_all(std::move(buffers));
      inflight_chunks_ = 0;
      consume_written(total);
    }
  } catch (const boost::system::system_error& e) {
    failure = fmt::format("write: {}", e.code().message());
  }
  writing_ = false;
  inflight_chunks_ = 0;
  if (cancel_read_after_write_) {
    cancel_read_after_write_ = false;
    transport_.cancel();
  }
  if (!failure.empty()) {
    if (!closed_) on_write_failed(std::move(failure));
    co_return;
  }
  if (!closed_) on_write_idle();
}

void ConnectionBase::stop_reading() noexcept {
  read_stopped_ = true;
  // Cancelling the transport would abort a write in flight too; wait for the writer to finish.
  if (writing_) {
    cancel_read_after_write_ = true;
  } else {
    transport_.cancel();
  }
}

void ConnectionBase::start_reading() {
  asio::co_spawn(executor_, read_loop(shared_from_this()), asio::detached);
}

// The parameter keeps the connection alive while the coroutine runs.
Task<void> ConnectionBase::read_loop(std::shared_ptr<ConnectionBase> /*self*/) {
  std::string reason;
  bool aborted = false;
  try {
    while (reason.empty()) {
      if (read_stopped_) {
        aborted = true;
        break;
      }
      if (large_frame_) {
        LargeFrame& frame = *large_frame_;
        frame.filled += co_await transport_.read_some(
            asio::buffer(frame.body.data() + frame.filled, frame.body.size() - frame.filled));
        if (frame.filled < frame.body.size()) continue;
        LargeFrame complete = std::move(frame);
        large_frame_.reset();
        last_frame_small_ = false;
        on_large_frame(complete.header, complete.prefix, std::move(complete.body));
        if (closed_) {
          aborted = true;
          break;
        }
        continue;
      }
      const std::size_t n = co_await transport_.read_some(read_buffer_.prepare());
      read_buffer_.commit(n);
      while (!closed_ && !large_frame_) {
        const DecodedFrame frame = decode_frame(read_buffer_.data());
        if (frame.status == DecodedFrame::Status::complete) {
          // Two small frames in a row: traffic is back to small messages.
          if (last_frame_small_ && spare_large_.capacity() > 0) spare_large_ = std::string();
          last_frame_small_ = true;
          on_frame(frame.header, frame.data);
          read_buffer_.consume(frame.consumed);
        } else if (frame.status == DecodedFrame::Status::oversized) {
          reason = fmt::format("received a frame of {} bytes on stream {}, over the {}-byte limit",
                               frame.header.length, frame.header.stream_id, max_message_size);
          break;
        } else if (frame.needed <= ReadBuffer::capacity || !begin_large_frame(frame.header)) {
          break;
        }
      }
      if (closed_) {
        aborted = true;
        break;
      }
    }
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted || e.code() == asio::error::bad_descriptor) {
      aborted = true;
    } else if (e.code() == asio::error::eof) {
      reason = read_buffer_.data().empty() && !large_frame_ ? "peer closed the connection"
                                           : "peer closed the connection in the middle of a frame";
    } else {
      reason = fmt::format("read: {}", e.code().message());
    }
  }
  on_read_end(std::move(reason), aborted);
}

}  // namespace kata::ttrpc::detail
