// ttRPC message framing (containerd/ttrpc PROTOCOL.md).
//
// Every message on a ttRPC connection is a 10-byte header followed by `length` bytes of data:
//
//     +0  u32 big-endian  data length (at most 4 MiB, so the first byte is always 0)
//     +4  u32 big-endian  stream id   (odd: client initiated; even: server initiated, unused)
//     +8  u8              message type (1 request, 2 response, 3 data)
//     +9  u8              flags, meaning depends on the type
//
// The decoder here is pure (no I/O, no allocation): it looks at a byte span and says whether a
// whole frame is there, which is what both connection readers and the fuzzer need.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kata::ttrpc {

inline constexpr std::size_t frame_header_size = 10;

/// Largest data length a peer may send or receive (containerd/ttrpc messageLengthMax).
inline constexpr std::uint32_t max_message_size = 4u << 20;

enum class MessageType : std::uint8_t {
  request = 1,   ///< opens a stream; data is a ttrpc.Request
  response = 2,  ///< closes a stream; data is a ttrpc.Response
  data = 3,      ///< stream data on an open stream (streaming RPCs only)
};

/// Flag bits. A unary request carries none.
namespace flags {
/// Request, Data: the sender sends no more data on this stream.
inline constexpr std::uint8_t remote_closed = 0x01;
/// Request: non-unary, the sender is still going to send Data frames.
inline constexpr std::uint8_t remote_open = 0x02;
/// Data: the frame carries no message (distinct from an empty message).
inline constexpr std::uint8_t no_data = 0x04;
}  // namespace flags

struct FrameHeader {
  std::uint32_t length = 0;
  std::uint32_t stream_id = 0;
  MessageType type = MessageType::request;
  std::uint8_t flags = 0;

  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

/// Writes the 10 header bytes.
void encode_header(const FrameHeader& header, std::span<std::uint8_t, frame_header_size> out) noexcept;

/// Appends a whole frame (header + data) to `out`. The caller checks data.size() against
/// max_message_size first; this function only frames.
void append_frame(std::string& out, std::uint32_t stream_id, MessageType type, std::uint8_t flags,
                  std::string_view data);

/// Reads the 10 header bytes. The type byte is returned as is (unknown types are the caller's
/// decision: servers ignore them for forward compatibility).
[[nodiscard]] FrameHeader decode_header(std::span<const std::uint8_t, frame_header_size> in) noexcept;

/// Result of looking for one frame at the start of a byte span.
struct DecodedFrame {
  enum class Status {
    complete,    ///< `header` and `data` are valid; `consumed` bytes belong to this frame
    incomplete,  ///< more bytes are needed; `needed` says how many in total (header + data)
    oversized,   ///< header announces more than max_message_size: the stream is unusable
  };
  Status status = Status::incomplete;
  FrameHeader header;
  std::string_view data;      ///< points into the input span
  std::size_t consumed = 0;   ///< complete: header + data length
  std::size_t needed = 0;     ///< incomplete: total bytes this frame needs (0: header not yet read)
};

/// Looks for one frame at the start of `input`. Never reads past input.size(), never allocates.
[[nodiscard]] DecodedFrame decode_frame(std::span<const std::uint8_t> input) noexcept;

}  // namespace kata::ttrpc
