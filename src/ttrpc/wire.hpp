// Encoding and decoding of the ttRPC envelopes (Request, Response).
//
// Both directions are done here by hand, against the field numbers of the protoc-generated classes
// of proto/ttrpc_wire.proto (so the .proto stays the single source of truth):
//   - encoding builds a frame in place, in one pass, without copying the payload into an
//     intermediate message first. Fields with proto3 default values are omitted, which makes our
//     bytes identical to what containerd/ttrpc's Go implementation sends;
//   - decoding yields views into the frame instead of copies, so a 1 MiB payload reaches a handler
//     (or a caller) without being copied out of the buffer it was read into. It accepts what
//     protobuf's own parser accepts for these messages (fields in any order, repeated fields last
//     one wins, unknown fields skipped); the frame fuzzer checks the two agree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kata/core/error.hpp"
#include "kata/ttrpc/frame.hpp"
#include "kata/ttrpc/metadata.hpp"

namespace kata::ttrpc::detail {

struct RequestFields {
  std::string_view service;
  std::string_view method;
  std::string_view payload;
  std::int64_t timeout_nano = 0;
  const Metadata* metadata = nullptr;
};

/// Encoded size of the Request message (the frame's data length).
[[nodiscard]] std::size_t request_size(const RequestFields& request) noexcept;

/// Appends header + Request. `size` is request_size(request).
void append_request_frame(std::string& out, std::uint32_t stream_id, std::uint8_t flags,
                          const RequestFields& request, std::size_t size);

/// Payloads at least this large are not copied into the output buffer: the frame is written as a
/// head (everything but the payload bytes) followed by the payload moved in as its own chunk.
inline constexpr std::size_t large_payload = 64 * 1024;

/// Appends header + Request without the payload bytes, which the caller queues right after. The
/// payload field goes last (valid protobuf: fields may come in any order), so that the bytes
/// that follow the head are exactly the payload.
void append_request_frame_head(std::string& out, std::uint32_t stream_id, std::uint8_t flags,
                               const RequestFields& request, std::size_t size);

/// Encoded size of a Response{status{code, message}, payload}.
[[nodiscard]] std::size_t response_size(Errc code, std::string_view message,
                                        std::string_view payload) noexcept;

/// Appends header + Response. The status is omitted when code is ok and message empty.
void append_response_frame(std::string& out, std::uint32_t stream_id, Errc code,
                           std::string_view message, std::string_view payload, std::size_t size);

/// Appends header + Response without the payload bytes (the payload field is last anyway).
void append_response_frame_head(std::string& out, std::uint32_t stream_id, Errc code,
                                std::string_view message, std::size_t payload_size, std::size_t size);

/// A decoded Request. The views point into the decoded bytes; metadata is copied (it is small
/// and handlers keep it in their CallContext).
struct RequestView {
  std::string_view service;
  std::string_view method;
  std::string_view payload;
  std::int64_t timeout_nano = 0;
  Metadata metadata;
};

/// Decodes a Request; false when `data` is not a valid encoding.
[[nodiscard]] bool decode_request(std::string_view data, RequestView& out);

/// A decoded Response; the views point into the decoded bytes.
struct ResponseView {
  std::int32_t code = 0;
  std::string_view message;
  std::string_view payload;
  /// decode_response with a tail: the payload is the tail (and `payload` is empty).
  bool payload_is_tail = false;
};

/// Decodes a Response; false when `data` is not a valid encoding. With `tail_size` > 0, `data` is
/// only the head of the message: `tail_size` more bytes follow that the caller holds elsewhere,
/// and they must be exactly the contents of a final payload field whose tag and length end `data`
/// (what response_payload_offset found).
[[nodiscard]] bool decode_response(std::string_view data, ResponseView& out, std::size_t tail_size = 0);

/// For a Response of `message_size` bytes of which the first `available` have arrived: the offset
/// of the payload's first byte when the message ends with a payload field (containerd/ttrpc and we
/// both put it last), so the payload can be read into a buffer of its own; 0 when it does not (or
/// the bytes are malformed; decoding the whole message reports that); std::nullopt when more
/// bytes are needed to decide.
[[nodiscard]] std::optional<std::size_t> response_payload_offset(std::string_view available,
                                                                 std::size_t message_size) noexcept;

}  // namespace kata::ttrpc::detail
