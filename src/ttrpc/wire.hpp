// Encoding of the ttRPC envelopes (Request, Response) straight into an output buffer.
//
// Decoding uses the protoc-generated classes of proto/ttrpc_wire.proto; encoding is done here by
// hand because it lets a frame be built in place, in one pass, without copying the payload into
// an intermediate message first. Field numbers come from the generated classes, so the .proto
// stays the single source of truth. Fields with proto3 default values are omitted, which makes
// our bytes identical to what containerd/ttrpc's Go implementation sends.
#pragma once

#include <cstdint>
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

}  // namespace kata::ttrpc::detail
