// Fuzzes the frame decoder, the envelope decoders and the envelope encoder.
//
// Invariants checked on every input:
//   - our envelope decoders (wire.cpp) accept exactly what protobuf's generated parser accepts,
//     and find the same field values;
//   - when response_payload_offset splits a Response off its first bytes, decoding the head with
//     the payload as a tail gives what decoding the whole message gives;
//   - decode_frame never reads past its input and consumes exactly header + length;
//   - splitting the input at any point yields the same frames (what a connection reader sees
//     when the kernel hands out partial reads);
//   - a Request built from the input's bytes encodes to a frame that decodes as complete, whose
//     length is exactly request_size().
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "kata/ttrpc/frame.hpp"
#include "ttrpc/wire.hpp"
#include "ttrpc_wire.pb.h"

namespace {

using kata::ttrpc::DecodedFrame;

std::vector<std::pair<kata::ttrpc::FrameHeader, std::string>> frames_of(std::span<const std::uint8_t> input) {
  std::vector<std::pair<kata::ttrpc::FrameHeader, std::string>> frames;
  while (true) {
    const DecodedFrame frame = kata::ttrpc::decode_frame(input);
    if (frame.status != DecodedFrame::Status::complete) break;
    if (frame.consumed != kata::ttrpc::frame_header_size + frame.header.length || frame.consumed > input.size()) {
      std::abort();
    }
    frames.emplace_back(frame.header, std::string(frame.data));
    input = input.subspan(frame.consumed);
  }
  return frames;
}

void check_request_decoder(std::string_view bytes) {
  kata::ttrpc::detail::RequestView ours;
  kata::ttrpc::wire::Request theirs;
  const bool ours_valid = kata::ttrpc::detail::decode_request(bytes, ours);
  if (ours_valid != theirs.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) std::abort();
  if (!ours_valid) return;
  if (ours.service != theirs.service() || ours.method != theirs.method() || ours.payload != theirs.payload() ||
      ours.timeout_nano != theirs.timeout_nano() ||
      ours.metadata.size() != static_cast<std::size_t>(theirs.metadata_size())) {
    std::abort();
  }
  for (std::size_t i = 0; i < ours.metadata.size(); ++i) {
    const auto& kv = theirs.metadata(static_cast<int>(i));
    if (ours.metadata[i].key != kv.key() || ours.metadata[i].value != kv.value()) std::abort();
  }
}

void check_response_decoder(std::string_view bytes, std::size_t arrived) {
  kata::ttrpc::detail::ResponseView ours;
  kata::ttrpc::wire::Response theirs;
  const bool ours_valid = kata::ttrpc::detail::decode_response(bytes, ours);
  if (ours_valid != theirs.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) std::abort();
  if (ours_valid && (ours.code != theirs.status().code() || ours.message != theirs.status().message() ||
                     ours.payload != theirs.payload())) {
    std::abort();
  }
  // What a client reading a large Response does once `arrived` bytes are in.
  const auto offset = kata::ttrpc::detail::response_payload_offset(bytes.substr(0, arrived), bytes.size());
  if (!offset || *offset == 0) return;
  if (*offset > arrived) std::abort();
  // The split only looks at the top level (a malformed status is found when the head is decoded).
  kata::ttrpc::detail::ResponseView head;
  const bool head_valid =
      kata::ttrpc::detail::decode_response(bytes.substr(0, *offset), head, bytes.size() - *offset);
  if (head_valid != ours_valid) std::abort();
  if (head_valid && (!head.payload_is_tail || head.code != ours.code || head.message != ours.message ||
                     bytes.substr(*offset) != ours.payload)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const auto whole = frames_of(input);

  // Reassembly through a buffer fed in two pieces must find the same frames.
  if (size > 1) {
    const std::size_t split = data[0] % size;
    std::vector<std::uint8_t> buffer(data, data + split);
    auto partial = frames_of(buffer);
    std::size_t used = 0;
    for (const auto& f : partial) used += kata::ttrpc::frame_header_size + f.first.length;
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(used));
    buffer.insert(buffer.end(), data + split, data + size);
    auto rest = frames_of(buffer);
    partial.insert(partial.end(), rest.begin(), rest.end());
    if (partial != whole) std::abort();
  }

  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_request_decoder(bytes);
  check_response_decoder(bytes, size > 0 ? data[size - 1] % (size + 1) : 0);

  // Encoding arbitrary field contents always yields a well-formed frame.
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::size_t third = size / 3;
  kata::ttrpc::Metadata metadata;
  if (size > 4) metadata.push_back({text.substr(0, 2), text.substr(2, 2)});
  std::int64_t timeout = 0;
  for (std::size_t i = 0; i < size && i < 8; ++i) timeout = (timeout << 8) | data[i];
  const kata::ttrpc::detail::RequestFields fields{std::string_view(text).substr(0, third),
                                                  std::string_view(text).substr(third, third),
                                                  std::string_view(text).substr(2 * third), timeout, &metadata};
  const std::size_t request_size = kata::ttrpc::detail::request_size(fields);
  std::string encoded;
  kata::ttrpc::detail::append_request_frame(encoded, 7, 0, fields, request_size);
  const auto frame = kata::ttrpc::decode_frame(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(encoded.data()), encoded.size()));
  if (frame.status != DecodedFrame::Status::complete || frame.header.length != request_size ||
      frame.consumed != encoded.size()) {
    std::abort();
  }
  return 0;
}
