// What client and server connections share: the read buffer that frames are decoded from, and
// the write path that keeps frames whole and in order.
//
// Writing: frames are appended to `outbox()`; a flush is posted once, so frames produced by
// coroutines that run in the same turn of the event loop leave in one write. The flush tries a
// non-blocking write first; only when the kernel buffer is full does a writer coroutine take
// over, and it exits as soon as everything is written, so an idle connection owns no coroutine
// other than its reader. A large payload is not copied into the outbox: it is moved in as a
// chunk of its own (append_owned) and written with the surrounding frames in one gathering write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kata/core/asio.hpp"
#include "kata/ttrpc/frame.hpp"
#include "kata/ttrpc/transport.hpp"

namespace kata::ttrpc::detail {

/// A growable buffer frames are read into and decoded from in place.
class ReadBuffer {
 public:
  static constexpr std::size_t default_capacity = 64 * 1024;

  /// Free space after the buffered bytes; guarantees room for the frame announced by expect().
  asio::mutable_buffer prepare();
  void commit(std::size_t bytes) noexcept { end_ += bytes; }
  [[nodiscard]] std::span<const std::uint8_t> data() const noexcept {
    return {storage_.get() + begin_, end_ - begin_};
  }
  void consume(std::size_t bytes) noexcept;
  /// The frame at the front needs `total_bytes` (header included) to be complete.
  void expect(std::size_t total_bytes) noexcept { needed_ = total_bytes; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

 private:
  void reallocate(std::size_t capacity);

  std::unique_ptr<std::uint8_t[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t needed_ = 0;
  bool last_frame_large_ = false;
};

class ConnectionBase : public std::enable_shared_from_this<ConnectionBase> {
 public:
  explicit ConnectionBase(Transport transport);
  ConnectionBase(const ConnectionBase&) = delete;
  ConnectionBase& operator=(const ConnectionBase&) = delete;
  virtual ~ConnectionBase() = default;

  [[nodiscard]] Executor executor() const noexcept { return executor_; }
  [[nodiscard]] bool closed() const noexcept { return closed_; }

 protected:
  /// Frame bytes are appended to the returned buffer, then frames_appended() is called.
  std::string& outbox();
  /// Queues `bytes` (typically a large payload) after everything appended so far, without copying.
  void append_owned(std::string bytes);
  void frames_appended();
  /// True when nothing is waiting to be written or being written.
  [[nodiscard]] bool write_idle() const noexcept { return !writing_ && !flush_scheduled_ && chunks_.empty(); }
  [[nodiscard]] bool writing() const noexcept { return writing_; }

  /// Starts the reader coroutine; it calls on_frame for every frame and on_read_end once.
  void start_reading();
  /// Stops the reader (on_read_end is called with aborted = true) without disturbing a write in
  /// progress, so responses still queued reach the peer.
  void stop_reading() noexcept;

  /// A complete frame; `data` is valid during the call only.
  virtual void on_frame(const FrameHeader& header, std::string_view data) = 0;
  /// The reader stopped: `aborted` when it was cancelled (Transport::cancel/close), otherwise
  /// `reason` says why the stream is unusable (peer closed, oversized frame, I/O error).
  virtual void on_read_end(std::string reason, bool aborted) = 0;
  /// Writing failed: the stream is unusable.
  virtual void on_write_failed(std::string reason) = 0;
  /// The outbox drained (used to finish a graceful close).
  virtual void on_write_idle() {}

  Transport transport_;
  bool closed_ = false;

 private:
  void flush();
  Task<void> write_loop(std::shared_ptr<ConnectionBase> self);
  Task<void> read_loop(std::shared_ptr<ConnectionBase> self);
  std::vector<asio::const_buffer> pending_buffers(std::size_t& chunk_count) const;
  void consume_written(std::size_t bytes) noexcept;

  Executor executor_;
  ReadBuffer read_buffer_;
  // Bytes to write, in order. A deque, because pushing at the back never moves the strings being
  // written (a vector would, and short strings keep their bytes inline).
  std::deque<std::string> chunks_;
  std::size_t front_offset_ = 0;     ///< bytes of chunks_.front() already written
  std::size_t inflight_chunks_ = 0;  ///< leading chunks an async write is using: never appended to
  bool last_chunk_owned_ = false;    ///< chunks_.back() came from append_owned
  std::string spare_;                ///< a written small chunk kept for reuse
  bool writing_ = false;
  bool flush_scheduled_ = false;
  bool read_stopped_ = false;
  bool cancel_read_after_write_ = false;
};

}  // namespace kata::ttrpc::detail
