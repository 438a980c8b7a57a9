#include "wire.hpp"

#include <array>

#include "ttrpc_wire.pb.h"

namespace kata::ttrpc::detail {

namespace {

enum WireType : std::uint32_t { varint = 0, length_delimited = 2 };

constexpr std::uint32_t tag(int field, WireType type) noexcept {
  return (static_cast<std::uint32_t>(field) << 3) | type;
}

constexpr std::size_t varint_size(std::uint64_t value) noexcept {
  std::size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

void append_varint(std::string& out, std::uint64_t value) {
  std::array<char, 10> bytes{};
  std::size_t n = 0;
  while (value >= 0x80) {
    bytes[n++] = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  bytes[n++] = static_cast<char>(value);
  out.append(bytes.data(), n);
}

// Size of a length-delimited field with `length` bytes of content (tags here are one byte).
constexpr std::size_t bytes_field_size(std::size_t length) noexcept {
  return 1 + varint_size(length) + length;
}

std::size_t optional_bytes_field_size(std::string_view value) noexcept {
  return value.empty() ? 0 : bytes_field_size(value.size());
}

void append_bytes_field(std::string& out, int field, std::string_view value) {
  if (value.empty()) return;
  append_varint(out, tag(field, length_delimited));
  append_varint(out, value.size());
  out.append(value);
}

std::size_t key_value_size(const MetadataEntry& entry) noexcept {
  return optional_bytes_field_size(entry.key) + optional_bytes_field_size(entry.value);
}

std::size_t status_size(Errc code, std::string_view message) noexcept {
  std::size_t size = optional_bytes_field_size(message);
  // int32 fields are sign-extended to 64 bits on the wire; our codes are never negative.
  if (code != Errc::ok) size += 1 + varint_size(static_cast<std::uint32_t>(code));
  return size;
}

}  // namespace

std::size_t request_size(const RequestFields& request) noexcept {
  std::size_t size = optional_bytes_field_size(request.service) + optional_bytes_field_size(request.method) +
                     optional_bytes_field_size(request.payload);
  if (request.timeout_nano != 0) size += 1 + varint_size(static_cast<std::uint64_t>(request.timeout_nano));
  if (request.metadata != nullptr) {
    for (const auto& entry : *request.metadata) size += bytes_field_size(key_value_size(entry));
  }
  return size;
}

void append_request_frame(std::string& out, std::uint32_t stream_id, std::uint8_t flags,
                          const RequestFields& request, std::size_t size) {
  using wire::KeyValue;
  using wire::Request;
  std::array<std::uint8_t, frame_header_size> header{};
  encode_header({static_cast<std::uint32_t>(size), stream_id, MessageType::request, flags}, header);
  out.reserve(out.size() + header.size() + size);
  out.append(reinterpret_cast<const char*>(header.data()), header.size());
  append_bytes_field(out, Request::kServiceFieldNumber, request.service);
  append_bytes_field(out, Request::kMethodFieldNumber, request.method);
  append_bytes_field(out, Request::kPayloadFieldNumber, request.payload);
  if (request.timeout_nano != 0) {
    append_varint(out, tag(Request::kTimeoutNanoFieldNumber, varint));
    append_varint(out, static_cast<std::uint64_t>(request.timeout_nano));
  }
  if (request.metadata != nullptr) {
    for (const auto& entry : *request.metadata) {
      append_varint(out, tag(Request::kMetadataFieldNumber, length_delimited));
      append_varint(out, key_value_size(entry));
      append_bytes_field(out, KeyValue::kKeyFieldNumber, entry.key);
      append_bytes_field(out, KeyValue::kValueFieldNumber, entry.value);
    }
  }
}

void append_request_frame_head(std::string& out, std::uint32_t stream_id, std::uint8_t flags,
                               const RequestFields& request, std::size_t size) {
  using wire::KeyValue;
  using wire::Request;
  std::array<std::uint8_t, frame_header_size> header{};
  encode_header({static_cast<std::uint32_t>(size), stream_id, MessageType::request, flags}, header);
  out.append(reinterpret_cast<const char*>(header.data()), header.size());
  append_bytes_field(out, Request::kServiceFieldNumber, request.service);
  append_bytes_field(out, Request::kMethodFieldNumber, request.method);
  if (request.timeout_nano != 0) {
    append_varint(out, tag(Request::kTimeoutNanoFieldNumber, varint));
    append_varint(out, static_cast<std::uint64_t>(request.timeout_nano));
  }
  if (request.metadata != nullptr) {
    for (const auto& entry : *request.metadata) {
      append_varint(out, tag(Request::kMetadataFieldNumber, length_delimited));
      append_varint(out, key_value_size(entry));
      append_bytes_field(out, KeyValue::kKeyFieldNumber, entry.key);
      append_bytes_field(out, KeyValue::kValueFieldNumber, entry.value);
    }
  }
  if (!request.payload.empty()) {
    append_varint(out, tag(Request::kPayloadFieldNumber, length_delimited));
    append_varint(out, request.payload.size());
  }
}

std::size_t response_size(Errc code, std::string_view message, std::string_view payload) noexcept {
  std::size_t size = optional_bytes_field_size(payload);
  if (code != Errc::ok || !message.empty()) size += bytes_field_size(status_size(code, message));
  return size;
}

void append_response_frame(std::string& out, std::uint32_t stream_id, Errc code,
                           std::string_view message, std::string_view payload, std::size_t size) {
  using wire::Response;
  using wire::Status;
  std::array<std::uint8_t, frame_header_size> header{};
  encode_header({static_cast<std::uint32_t>(size), stream_id, MessageType::response, 0}, header);
  out.reserve(out.size() + header.size() + size);
  out.append(reinterpret_cast<const char*>(header.data()), header.size());
  if (code != Errc::ok || !message.empty()) {
    append_varint(out, tag(Response::kStatusFieldNumber, length_delimited));
    append_varint(out, status_size(code, message));
    if (code != Errc::ok) {
      append_varint(out, tag(Status::kCodeFieldNumber, varint));
      append_varint(out, static_cast<std::uint32_t>(code));
    }
    append_bytes_field(out, Status::kMessageFieldNumber, message);
  }
  append_bytes_field(out, Response::kPayloadFieldNumber, payload);
}

void append_response_frame_head(std::string& out, std::uint32_t stream_id, Errc code,
                                std::string_view message, std::size_t payload_size, std::size_t size) {
  using wire::Response;
  // The header carries the full size; the payload field is last, so the head ends with its tag
  // and length and the payload bytes follow as their own chunk.
  append_response_frame(out, stream_id, code, message, {}, size);
  if (payload_size > 0) {
    append_varint(out, tag(Response::kPayloadFieldNumber, length_delimited));
    append_varint(out, payload_size);
  }
}

}  // namespace kata::ttrpc::detail
