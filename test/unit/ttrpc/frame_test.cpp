// Framing and envelope encoding, checked byte for byte against a capture of Go's ttrpc 1.1.1
// (host-lab §7: socat between the Go echo client and server).
#include <random>

#include <gtest/gtest.h>

#include "kata/ttrpc/frame.hpp"
#include "test_support.hpp"
#include "ttrpc/wire.hpp"

namespace kata::ttrpc {
namespace {

using test::bytes;

std::span<const std::uint8_t> as_span(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// req : stream 1, Request{service "feas.Echo", method "Echo", payload StringValue{"AB"}, metadata k=v}
const std::string golden_request =
    bytes({0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00}) + bytes({0x0a, 0x09}) + "feas.Echo" +
    bytes({0x12, 0x04}) + "Echo" + bytes({0x1a, 0x04, 0x0a, 0x02}) + "AB" + bytes({0x2a, 0x06, 0x0a, 0x01}) + "k" +
    bytes({0x12, 0x01}) + "v";
// resp: stream 1, Response{payload StringValue{"echo:AB"}}
const std::string golden_response =
    bytes({0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00}) + bytes({0x12, 0x09, 0x0a, 0x07}) + "echo:AB";
// err : stream 3, Response{status{code 12 UNIMPLEMENTED, message "method Nope"}}
const std::string golden_error = bytes({0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x03, 0x02, 0x00}) +
                                 bytes({0x0a, 0x0f, 0x08, 0x0c, 0x12, 0x0b}) + "method Nope";

TEST(TtrpcFrame, EncodesGoldenRequest) {
  const Metadata metadata{{"k", "v"}};
  const std::string payload = bytes({0x0a, 0x02}) + "AB";
  const detail::RequestFields fields{"feas.Echo", "Echo", payload, 0, &metadata};
  std::string out;
  detail::append_request_frame(out, 1, 0, fields, detail::request_size(fields));
  EXPECT_EQ(out, golden_request);
}

TEST(TtrpcFrame, EncodesGoldenResponseAndError) {
  const std::string payload = bytes({0x0a, 0x07}) + "echo:AB";
  std::string out;
  detail::append_response_frame(out, 1, Errc::ok, {}, payload, detail::response_size(Errc::ok, {}, payload));
  EXPECT_EQ(out, golden_response);
  out.clear();
  detail::append_response_frame(out, 3, Errc::not_supported, "method Nope", {},
                                detail::response_size(Errc::not_supported, "method Nope", {}));
  EXPECT_EQ(out, golden_error);
}

TEST(TtrpcFrame, EncodesTimeoutAsVarint) {
  const detail::RequestFields fields{"s", "m", {}, 1'000'000'000, nullptr};
  std::string out;
  detail::append_request_frame(out, 5, 0, fields, detail::request_size(fields));
  // 1e9 = 0x3b9aca00 -> varint 80 94 eb dc 03, field 4 tag 0x20
  EXPECT_EQ(out.substr(frame_header_size), bytes({0x0a, 0x01, 's', 0x12, 0x01, 'm', 0x20, 0x80, 0x94, 0xeb, 0xdc, 0x03}));
  EXPECT_EQ(out.size(), frame_header_size + detail::request_size(fields));
}

TEST(TtrpcFrame, DecodesGoldenFrames) {
  const auto request = decode_frame(as_span(golden_request));
  ASSERT_EQ(request.status, DecodedFrame::Status::complete);
  EXPECT_EQ(request.header, (FrameHeader{31, 1, MessageType::request, 0}));
  EXPECT_EQ(request.consumed, golden_request.size());
  EXPECT_EQ(request.data, std::string_view(golden_request).substr(frame_header_size));

  const auto error = decode_frame(as_span(golden_error));
  ASSERT_EQ(error.status, DecodedFrame::Status::complete);
  EXPECT_EQ(error.header, (FrameHeader{17, 3, MessageType::response, 0}));
}

TEST(TtrpcFrame, HeaderRoundTrips) {
  const FrameHeader header{0x00123456, 0xfedcba99, MessageType::data, flags::remote_closed | flags::no_data};
  std::array<std::uint8_t, frame_header_size> raw{};
  encode_header(header, raw);
  EXPECT_EQ(raw[0], 0x00);
  EXPECT_EQ(raw[4], 0xfe);
  EXPECT_EQ(decode_header(raw), header);
}

TEST(TtrpcFrame, EveryTruncationIsIncomplete) {
  for (std::size_t n = 0; n < golden_request.size(); ++n) {
    const auto frame = decode_frame(as_span(golden_request).first(n));
    ASSERT_EQ(frame.status, DecodedFrame::Status::incomplete) << n;
    EXPECT_EQ(frame.needed, n < frame_header_size ? 0 : golden_request.size()) << n;
  }
}

TEST(TtrpcFrame, TwoFramesBackToBack) {
  const std::string both = golden_response + golden_error;
  const auto first = decode_frame(as_span(both));
  ASSERT_EQ(first.status, DecodedFrame::Status::complete);
  const auto second = decode_frame(as_span(both).subspan(first.consumed));
  ASSERT_EQ(second.status, DecodedFrame::Status::complete);
  EXPECT_EQ(second.header.stream_id, 3u);
  EXPECT_EQ(first.consumed + second.consumed, both.size());
}

TEST(TtrpcFrame, LengthLimit) {
  std::array<std::uint8_t, frame_header_size> raw{};
  encode_header({max_message_size, 1, MessageType::request, 0}, raw);
  EXPECT_EQ(decode_frame(raw).status, DecodedFrame::Status::incomplete);
  EXPECT_EQ(decode_frame(raw).needed, frame_header_size + max_message_size);
  encode_header({max_message_size + 1, 1, MessageType::request, 0}, raw);
  EXPECT_EQ(decode_frame(raw).status, DecodedFrame::Status::oversized);
  encode_header({0xffffffff, 1, MessageType::request, 0}, raw);
  EXPECT_EQ(decode_frame(raw).status, DecodedFrame::Status::oversized);
}

TEST(TtrpcFrame, GarbageNeverReadsOutOfBounds) {
  std::mt19937 random(42);
  std::string garbage(4096, '\0');
  for (int round = 0; round < 200; ++round) {
    for (auto& c : garbage) c = static_cast<char>(random());
    // Small lengths so that some garbage frames complete.
    garbage[0] = 0;
    garbage[1] = 0;
    std::span<const std::uint8_t> rest = as_span(garbage);
    while (!rest.empty()) {
      const auto frame = decode_frame(rest);
      if (frame.status != DecodedFrame::Status::complete) break;
      ASSERT_LE(frame.consumed, rest.size());
      rest = rest.subspan(frame.consumed);
    }
  }
}

}  // namespace
}  // namespace kata::ttrpc
