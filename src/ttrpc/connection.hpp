// What client and server connections share: the read buffer that frames are decoded from, and
// the write path that keeps frames whole and in order.
//
// Writing: frames are appended to `outbox()`; a flush is posted once, so frames produced by
// coroutines that run in the same turn of the event loop leave in one write. The flush tries a
// non-blocking write first; only when the kernel buffer is full does a writer coroutine take
// over, and it exits as soon as everything is written, so an idle connection owns no coroutine
// other than its reader. A large payload is not copied into the outbox: it is moved in as a
// chunk of its own (append_owned) and written with the surrounding frames in one gathering write.
//
// Reading: small frames are decoded in place from a fixed 64 KiB buffer. The data of a large
// frame is read straight into a string of its own that is handed to the subclass, which may keep
// it (a request's payload stays where it was read while its handler runs; a response's payload
// becomes the caller's result). Large strings the connection is done with (a written payload, a
// finished request) are kept, one at a time, for the next large frame, so a run of large calls
// does not ask the allocator for fresh memory every time: under a VM, touching freshly mapped
// pages costs more than the copies. The spare is released when traffic returns to small frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kata/core/asio.hpp"
#include "kata/ttrpc/frame.hpp"
#include "kata/ttrpc/transport.hpp"

namespace kata::ttrpc::detail {

/// The buffer small frames are read into and decoded from in place. Its size is fixed: a frame
/// that cannot fit (a large frame) has its data read into a buffer of its own instead.
class ReadBuffer {
 public:
  static constexpr std::size_t capacity = 64 * 1024;

  ReadBuffer() : storage_(std::make_unique_for_overwrite<std::uint8_t[]>(capacity)) {}

  /// Free space after the buffered bytes. Not empty unless the buffer is full.
  asio::mutable_buffer prepare() noexcept;
  void commit(std::size_t bytes) noexcept { end_ += bytes; }
  [[nodiscard]] std::span<const std::uint8_t> data() const noexcept {
    return {storage_.get() + begin_, end_ - begin_};
  }
  void consume(std::size_t bytes) noexcept;

 private:
  std::unique_ptr<std::uint8_t[]> storage_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

/// A large frame being read straight into `body` (outside ConnectionBase: clang does not let a
/// nested class with member initializers be default-constructed inside its enclosing class).
struct LargeFrame {
  FrameHeader header;
  std::string prefix;
  std::string body;
  std::size_t filled = 0;
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
  /// A large string the connection or its user is done with, kept for the next large frame.
  void recycle_large_buffer(std::string buffer) noexcept;
  /// True when nothing is waiting to be written or being written.
  [[nodiscard]] bool write_idle() const noexcept { return !writing_ && !flush_scheduled_ && chunks_.empty(); }
  [[nodiscard]] bool writing() const noexcept { return writing_; }

  /// Starts the reader coroutine; it calls on_frame for every frame and on_read_end once.
  void start_reading();
  /// Stops the reader (on_read_end is called with aborted = true) without disturbing a write in
  /// progress, so responses still queued reach the peer.
  void stop_reading() noexcept;

  /// A complete small frame; `data` is valid during the call only.
  virtual void on_frame(const FrameHeader& header, std::string_view data) = 0;
  /// Where the data of a large frame should be split: its first `offset` bytes (which must all be
  /// in `available`, the data received so far) are passed as `prefix`, the rest is read into a
  /// string of its own. std::nullopt asks for more bytes; the connection gives up waiting and
  /// uses 0 when its buffer is full. The default, 0, reads all the data into one string.
  virtual std::optional<std::size_t> large_frame_split(const FrameHeader& header, std::string_view available);
  /// A complete large frame: its data is `prefix` followed by `body`, which the callee owns (and
  /// may give back with recycle_large_buffer).
  virtual void on_large_frame(const FrameHeader& header, std::string_view prefix, std::string body) = 0;
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
  /// Starts reading the large frame at the front of the read buffer; false when more bytes must
  /// be read before the frame's data can be split.
  bool begin_large_frame(const FrameHeader& header);
  std::string take_large_buffer(std::size_t size);

  Executor executor_;
  ReadBuffer read_buffer_;
  std::optional<LargeFrame> large_frame_;
  std::string spare_large_;           ///< see "Reading" above
  bool last_frame_small_ = false;
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
