#include "wire.hpp"

#include <array>

#include "ttrpc_wire.pb.h"

namespace kata::ttrpc::detail {

namespace {

enum WireType : std::uint32_t {
  varint = 0,
  fixed64 = 1,
  length_delimited = 2,
  start_group = 3,
  end_group = 4,
  fixed32 = 5,
};

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

// --- decoding -------------------------------------------------------------------------------
// The limits below are protobuf's own parser's (parse_context.h), so that we reject exactly what
// it rejects: tags are at most 5 bytes (bits past 32 dropped), lengths at most 5 bytes and under
// 2 GiB, varints at most 10 bytes (bits past 64 dropped), groups nest at most 100 deep.

enum class Read { ok, truncated, malformed };

Read read_varint(std::string_view data, std::size_t& pos, std::size_t max_bytes, std::uint64_t& value) noexcept {
  value = 0;
  for (std::size_t i = 0; i < max_bytes; ++i) {
    if (pos + i >= data.size()) return Read::truncated;
    const auto byte = static_cast<std::uint8_t>(data[pos + i]);
    if (i < 10) value |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * i);
    if (byte < 0x80) {
      pos += i + 1;
      return Read::ok;
    }
  }
  return Read::malformed;
}

struct Field {
  std::uint32_t number = 0;
  WireType type = varint;
  std::uint64_t value = 0;  ///< varint fields
  std::size_t offset = 0;   ///< length-delimited fields: where the contents start
  std::uint64_t length = 0; ///< length-delimited fields
};

Read read_tag(std::string_view data, std::size_t& pos, Field& field) noexcept {
  std::uint64_t tag = 0;
  if (const Read r = read_varint(data, pos, 5, tag); r != Read::ok) return r;
  tag &= 0xffffffffu;
  field.number = static_cast<std::uint32_t>(tag >> 3);
  field.type = static_cast<WireType>(tag & 7);
  if (field.number == 0 || field.type > fixed32) return Read::malformed;
  return Read::ok;
}

Read skip_group(std::string_view data, std::size_t& pos, std::uint32_t number, int depth) noexcept;

// Reads the value of `field` (its tag already read). Length-delimited contents are not checked
// against the end of `data`: the caller decides whether they may run past it.
Read read_value(std::string_view data, std::size_t& pos, Field& field, int depth) noexcept {
  switch (field.type) {
    case varint:
      return read_varint(data, pos, 10, field.value);
    case fixed64:
    case fixed32: {
      const std::size_t width = field.type == fixed64 ? 8 : 4;
      if (data.size() - pos < width) return Read::truncated;
      pos += width;
      return Read::ok;
    }
    case length_delimited: {
      if (const Read r = read_varint(data, pos, 5, field.length); r != Read::ok) return r;
      if (field.length > 0x7fffffff) return Read::malformed;
      field.offset = pos;
      return Read::ok;
    }
    case start_group:
      return skip_group(data, pos, field.number, depth + 1);
    case end_group:
      return Read::malformed;  // only valid as the end of a group, handled by skip_group
  }
  return Read::malformed;
}

Read skip_group(std::string_view data, std::size_t& pos, std::uint32_t number, int depth) noexcept {
  constexpr int max_depth = 100;
  if (depth > max_depth) return Read::malformed;
  for (;;) {
    Field field;
    if (const Read r = read_tag(data, pos, field); r != Read::ok) return r;
    if (field.type == end_group) return field.number == number ? Read::ok : Read::malformed;
    if (const Read r = read_value(data, pos, field, depth); r != Read::ok) return r;
    if (field.type == length_delimited) {
      if (field.length > data.size() - pos) return Read::truncated;
      pos += field.length;
    }
  }
}

// Calls on_field(field, contents) for every field of the message in `data`; contents are the
// bytes of a length-delimited field (empty for other types). False when malformed or truncated.
template <class OnField>
bool for_each_field(std::string_view data, OnField&& on_field) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    Field field;
    if (read_tag(data, pos, field) != Read::ok || read_value(data, pos, field, 0) != Read::ok) return false;
    std::string_view contents;
    if (field.type == length_delimited) {
      if (field.length > data.size() - pos) return false;
      contents = data.substr(pos, field.length);
      pos += field.length;
    }
    if (!on_field(field, contents)) return false;
  }
  return true;
}

bool decode_status(std::string_view data, ResponseView& out) {
  using wire::Status;
  return for_each_field(data, [&](const Field& field, std::string_view contents) {
    if (field.number == Status::kCodeFieldNumber && field.type == varint) {
      out.code = static_cast<std::int32_t>(static_cast<std::uint32_t>(field.value));
    } else if (field.number == Status::kMessageFieldNumber && field.type == length_delimited) {
      out.message = contents;
    }
    return true;
  });
}

}  // namespace

bool decode_request(std::string_view data, RequestView& out) {
  using wire::KeyValue;
  using wire::Request;
  out = RequestView{};
  return for_each_field(data, [&](const Field& field, std::string_view contents) {
    if (field.type == varint) {
      if (field.number == Request::kTimeoutNanoFieldNumber) out.timeout_nano = static_cast<std::int64_t>(field.value);
      return true;
    }
    if (field.type != length_delimited) return true;
    switch (field.number) {
      case Request::kServiceFieldNumber:
        out.service = contents;
        return true;
      case Request::kMethodFieldNumber:
        out.method = contents;
        return true;
      case Request::kPayloadFieldNumber:
        out.payload = contents;
        return true;
      case Request::kMetadataFieldNumber: {
        MetadataEntry entry;
        const bool valid = for_each_field(contents, [&](const Field& kv, std::string_view bytes) {
          if (kv.type != length_delimited) return true;
          if (kv.number == KeyValue::kKeyFieldNumber) entry.key.assign(bytes);
          if (kv.number == KeyValue::kValueFieldNumber) entry.value.assign(bytes);
          return true;
        });
        if (valid) out.metadata.push_back(std::move(entry));
        return valid;
      }
      default:
        return true;
    }
  });
}

bool decode_response(std::string_view data, ResponseView& out, std::size_t tail_size) {
  using wire::Response;
  out = ResponseView{};
  std::size_t pos = 0;
  while (pos < data.size()) {
    Field field;
    if (read_tag(data, pos, field) != Read::ok || read_value(data, pos, field, 0) != Read::ok) return false;
    if (field.type != length_delimited) continue;
    if (field.length > data.size() - pos) {
      // Only the final payload field may continue past the head, and exactly into the tail.
      const bool is_tail = tail_size > 0 && field.number == Response::kPayloadFieldNumber && pos == data.size() &&
                           field.length == tail_size;
      if (!is_tail) return false;
      out.payload = {};
      out.payload_is_tail = true;
      return true;
    }
    const std::string_view contents = data.substr(pos, field.length);
    pos += field.length;
    if (field.number == Response::kStatusFieldNumber) {
      if (!decode_status(contents, out)) return false;
    } else if (field.number == Response::kPayloadFieldNumber) {
      out.payload = contents;
    }
  }
  return tail_size == 0;
}

std::optional<std::size_t> response_payload_offset(std::string_view available, std::size_t message_size) noexcept {
  using wire::Response;
  std::size_t pos = 0;
  for (;;) {
    Field field;
    Read r = read_tag(available, pos, field);
    if (r == Read::ok) r = read_value(available, pos, field, 0);
    if (r == Read::truncated) return std::nullopt;
    if (r == Read::malformed) return 0;
    if (field.type != length_delimited) continue;
    if (field.length > message_size - pos) return 0;
    if (field.number == Response::kPayloadFieldNumber && pos + field.length == message_size) return pos;
    if (field.length > available.size() - pos) return std::nullopt;
    pos += field.length;
  }
}

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
  out.reserve(out.size() + frame_header_size + size);
  append_response_frame_head(out, stream_id, code, message, payload.size(), size);
  out.append(payload);
}

void append_response_frame_head(std::string& out, std::uint32_t stream_id, Errc code,
                                std::string_view message, std::size_t payload_size, std::size_t size) {
  using wire::Response;
  using wire::Status;
  // The header carries the full size; the payload field is last, so the head ends with its tag
  // and length and the payload bytes follow, appended or queued as a chunk of their own.
  std::array<std::uint8_t, frame_header_size> header{};
  encode_header({static_cast<std::uint32_t>(size), stream_id, MessageType::response, 0}, header);
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
  if (payload_size > 0) {
    append_varint(out, tag(Response::kPayloadFieldNumber, length_delimited));
    append_varint(out, payload_size);
  }
}

}  // namespace kata::ttrpc::detail
