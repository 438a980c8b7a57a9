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

// --- envelope decoding --------------------------------------------------------------------------

TEST(TtrpcEnvelope, DecodesGoldenRequestAsViews) {
  const std::string_view data = std::string_view(golden_request).substr(frame_header_size);
  detail::RequestView request;
  ASSERT_TRUE(detail::decode_request(data, request));
  EXPECT_EQ(request.service, "feas.Echo");
  EXPECT_EQ(request.method, "Echo");
  EXPECT_EQ(request.payload, bytes({0x0a, 0x02}) + "AB");
  EXPECT_EQ(request.timeout_nano, 0);
  EXPECT_EQ(request.metadata, (Metadata{{"k", "v"}}));
  // A view into the frame, not a copy.
  EXPECT_GE(request.payload.data(), data.data());
  EXPECT_LE(request.payload.data() + request.payload.size(), data.data() + data.size());
}

TEST(TtrpcEnvelope, DecodesFieldsInAnyOrderAndSkipsUnknownOnes) {
  // Go's order (payload before timeout and metadata), an unknown varint field 9, an unknown
  // fixed32 field 10, a repeated method (the last one wins) and a negative timeout.
  const std::string data = bytes({0x0a, 0x01}) + "s" + bytes({0x12, 0x01}) + "x" + bytes({0x1a, 0x03}) + "pay" +
                           bytes({0x48, 0x96, 0x01}) + bytes({0x55, 1, 2, 3, 4}) + bytes({0x12, 0x01}) + "m" +
                           bytes({0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) +
                           bytes({0x2a, 0x00});
  detail::RequestView request;
  ASSERT_TRUE(detail::decode_request(data, request));
  EXPECT_EQ(request.service, "s");
  EXPECT_EQ(request.method, "m");
  EXPECT_EQ(request.payload, "pay");
  EXPECT_EQ(request.timeout_nano, -1);
  EXPECT_EQ(request.metadata, (Metadata{{"", ""}}));
}

TEST(TtrpcEnvelope, RejectsMalformedEnvelopes) {
  detail::RequestView request;
  detail::ResponseView response;
  for (const std::string& bad : {bytes({0x0a, 0x05}) + "abc",      // length past the end
                                 bytes({0x00, 0x01}),              // field number 0
                                 bytes({0x0f}),                    // wire type 7
                                 bytes({0x20, 0x80}),              // truncated varint
                                 bytes({0x0c}),                    // end group without a start
                                 bytes({0x0b, 0x0a, 0x00})}) {     // group never closed
    EXPECT_FALSE(detail::decode_request(bad, request)) << ::testing::PrintToString(bad);
    EXPECT_FALSE(detail::decode_response(bad, response)) << ::testing::PrintToString(bad);
  }
  // A metadata entry whose key overruns the entry (a Response does not look inside field 5).
  EXPECT_FALSE(detail::decode_request(bytes({0x2a, 0x02, 0x0a, 0x05}), request));
  // An unknown group is skipped, as protobuf does.
  const std::string with_group = bytes({0x5b, 0x08, 0x01, 0x5c}) + bytes({0x12, 0x01}) + "m";
  EXPECT_TRUE(detail::decode_request(with_group, request));
  EXPECT_EQ(request.method, "m");
}

TEST(TtrpcEnvelope, DecodesGoldenResponses) {
  detail::ResponseView response;
  ASSERT_TRUE(detail::decode_response(std::string_view(golden_response).substr(frame_header_size), response));
  EXPECT_EQ(response.code, 0);
  EXPECT_EQ(response.payload, bytes({0x0a, 0x07}) + "echo:AB");
  ASSERT_TRUE(detail::decode_response(std::string_view(golden_error).substr(frame_header_size), response));
  EXPECT_EQ(response.code, 12);
  EXPECT_EQ(response.message, "method Nope");
  EXPECT_TRUE(response.payload.empty());
}

TEST(TtrpcEnvelope, FindsTheFinalPayloadOfAResponseFromItsFirstBytes) {
  // Response{status{code 2, message "m"}, payload 200 bytes}: the payload starts after
  // status (2 + 5 bytes), its tag and a 2-byte length.
  const std::string payload(200, 'p');
  const std::string message = bytes({0x0a, 0x05, 0x08, 0x02, 0x12, 0x01}) + "m" + bytes({0x12, 0xc8, 0x01}) + payload;
  constexpr std::size_t offset = 10;
  for (std::size_t n = 0; n < offset; ++n) {
    EXPECT_EQ(detail::response_payload_offset(std::string_view(message).substr(0, n), message.size()), std::nullopt)
        << n;
  }
  for (std::size_t n = offset; n < message.size(); n += 37) {
    EXPECT_EQ(detail::response_payload_offset(std::string_view(message).substr(0, n), message.size()), offset) << n;
  }
  detail::ResponseView head;
  ASSERT_TRUE(detail::decode_response(std::string_view(message).substr(0, offset), head, payload.size()));
  EXPECT_TRUE(head.payload_is_tail);
  EXPECT_EQ(head.code, 2);
  EXPECT_EQ(head.message, "m");
  // The head must end exactly where a tail of that size begins.
  EXPECT_FALSE(detail::decode_response(std::string_view(message).substr(0, offset), head, payload.size() - 1));
  EXPECT_FALSE(detail::decode_response(std::string_view(message).substr(0, offset - 1), head, payload.size()));
  // A payload followed by another field cannot be split off; decoding the whole message works.
  const std::string not_last = bytes({0x12, 0xc8, 0x01}) + payload + bytes({0x0a, 0x00});
  EXPECT_EQ(detail::response_payload_offset(std::string_view(not_last).substr(0, 100), not_last.size()), std::nullopt);
  // Malformed bytes: no split, the whole-message decode reports the error.
  EXPECT_EQ(detail::response_payload_offset(bytes({0x0f, 0x00}), 1000), 0u);
  EXPECT_EQ(detail::response_payload_offset(bytes({0x12, 0xff, 0x0f}), 1000), 0u);
}

}  // namespace
}  // namespace kata::ttrpc
