#include "connection.hpp"

#include <algorithm>
#include <cstring>

#include <boost/asio/error.hpp>
#include <fmt/format.h>

namespace kata::ttrpc::detail {

asio::mutable_buffer ReadBuffer::prepare() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    // Give memory back once traffic returns to small frames; keep it while large frames follow
    // each other so a run of 1 MiB calls does not reallocate for every frame.
    if (capacity_ > default_capacity && needed_ <= default_capacity && !last_frame_large_) {
      reallocate(default_capacity);
    }
  }
  // Room to read into now: the rest of a frame whose size is known, else a reasonable minimum.
  // Asking for exactly the rest of a large frame means it is read in place, never moved.
  constexpr std::size_t min_free = 4096;
  const std::size_t live = end_ - begin_;
  const std::size_t room = needed_ > live ? needed_ - live : min_free;
  if (capacity_ - end_ < room) {
    const std::size_t required = std::max(default_capacity, live + room);
    if (required > capacity_) {
      reallocate(required);
    } else {
      std::memmove(storage_.get(), storage_.get() + begin_, live);
      begin_ = 0;
      end_ = live;
    }
  }
  return asio::buffer(storage_.get() + end_, capacity_ - end_);
}

void ReadBuffer::consume(std::size_t bytes) noexcept {
  last_frame_large_ = bytes > default_capacity;
  needed_ = 0;
  begin_ += bytes;
  if (begin_ == end_) begin_ = end_ = 0;
}

void ReadBuffer::reallocate(std::size_t capacity) {
  const std::size_t live = end_ - begin_;
  auto storage = std::make_unique_for_overwrite<std::uint8_t[]>(capacity);
  if (live > 0) std::memcpy(storage.get(), storage_.get() + begin_, live);
  storage_ = std::move(storage);
  capacity_ = capacity;
  begin_ = 0;
  end_ = live;
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
    // Keep one small buffer's capacity for the next frames; large ones go back to the allocator.
    if (front.capacity() <= ReadBuffer::default_capacity && front.capacity() > spare_.capacity()) {
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
      const std::size_t n = co_await transport_.read_some(read_buffer_.prepare());
      read_buffer_.commit(n);
      while (!closed_) {
        const DecodedFrame frame = decode_frame(read_buffer_.data());
        if (frame.status == DecodedFrame::Status::complete) {
          on_frame(frame.header, frame.data);
          read_buffer_.consume(frame.consumed);
        } else if (frame.status == DecodedFrame::Status::oversized) {
          reason = fmt::format("received a frame of {} bytes on stream {}, over the {}-byte limit",
                               frame.header.length, frame.header.stream_id, max_message_size);
          break;
        } else {
          read_buffer_.expect(frame.needed);
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
      reason = read_buffer_.data().empty() ? "peer closed the connection"
                                           : "peer closed the connection in the middle of a frame";
    } else {
      reason = fmt::format("read: {}", e.code().message());
    }
  }
  on_read_end(std::move(reason), aborted);
}

}  // namespace kata::ttrpc::detail
