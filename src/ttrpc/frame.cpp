#include "kata/ttrpc/frame.hpp"

namespace kata::ttrpc {

namespace {

void put_u32(std::uint8_t* out, std::uint32_t value) noexcept {
  out[0] = static_cast<std::uint8_t>(value >> 24);
  out[1] = static_cast<std::uint8_t>(value >> 16);
  out[2] = static_cast<std::uint8_t>(value >> 8);
  out[3] = static_cast<std::uint8_t>(value);
}

std::uint32_t get_u32(const std::uint8_t* in) noexcept {
  return (std::uint32_t{in[0]} << 24) | (std::uint32_t{in[1]} << 16) | (std::uint32_t{in[2]} << 8) |
         std::uint32_t{in[3]};
}

}  // namespace

void encode_header(const FrameHeader& header, std::span<std::uint8_t, frame_header_size> out) noexcept {
  put_u32(out.data(), header.length);
  put_u32(out.data() + 4, header.stream_id);
  out[8] = static_cast<std::uint8_t>(header.type);
  out[9] = header.flags;
}

void append_frame(std::string& out, std::uint32_t stream_id, MessageType type, std::uint8_t flags,
                  std::string_view data) {
  std::array<std::uint8_t, frame_header_size> header{};
  encode_header({static_cast<std::uint32_t>(data.size()), stream_id, type, flags}, header);
  out.append(reinterpret_cast<const char*>(header.data()), header.size());
  out.append(data);
}

FrameHeader decode_header(std::span<const std::uint8_t, frame_header_size> in) noexcept {
  return {get_u32(in.data()), get_u32(in.data() + 4), static_cast<MessageType>(in[8]), in[9]};
}

DecodedFrame decode_frame(std::span<const std::uint8_t> input) noexcept {
  DecodedFrame frame;
  if (input.size() < frame_header_size) return frame;
  frame.header = decode_header(input.first<frame_header_size>());
  if (frame.header.length > max_message_size) {
    frame.status = DecodedFrame::Status::oversized;
    return frame;
  }
  const std::size_t total = frame_header_size + frame.header.length;
  if (input.size() < total) {
    frame.needed = total;
    return frame;
  }
  frame.status = DecodedFrame::Status::complete;
  frame.data = std::string_view(reinterpret_cast<const char*>(input.data()) + frame_header_size,
                                frame.header.length);
  frame.consumed = total;
  return frame;
}

}  // namespace kata::ttrpc
