#include "kata/agent_guest/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace kata::agent_guest {
namespace {

std::string drain(int fd) {
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) out.append(buffer, static_cast<std::size_t>(n));
  return out;
}

struct LogTest : ::testing::Test {
  void TearDown() override {
    clear_log_sinks();
    set_log_level(LogLevel::info);
  }
};

TEST_F(LogTest, TextAndJsonSinksGetEachRecordAtOrAboveTheLevel) {
  Pipe text = make_pipe(O_NONBLOCK);
  Pipe json = make_pipe(O_NONBLOCK);
  add_log_sink(std::move(text.write_end), LogFormat::text);
  add_log_sink(std::move(json.write_end), LogFormat::json);
  set_log_level(LogLevel::info);
  log(LogLevel::debug, "hidden {}", 1);
  log(LogLevel::warn, "port \"{}\"\tgone", "agent.channel.0");
  const std::string text_out = drain(text.read_end.get());
  const std::string json_out = drain(json.read_end.get());
  EXPECT_EQ(text_out.find("hidden"), std::string::npos);
  EXPECT_NE(text_out.find("kata-agent warn: port \"agent.channel.0\"\tgone\n"), std::string::npos) << text_out;
  EXPECT_NE(json_out.find("\"level\":\"warn\",\"source\":\"agent\""), std::string::npos) << json_out;
  EXPECT_NE(json_out.find("\"msg\":\"port \\\"agent.channel.0\\\"\\tgone\"}\n"), std::string::npos) << json_out;
}

TEST_F(LogTest, FullSinkDropsInsteadOfBlocking) {
  Pipe full = make_pipe();
  add_log_sink(std::move(full.write_end), LogFormat::text);
  const std::uint64_t before = dropped_log_lines();
  const std::string big(70000, 'x');  // more than a pipe holds
  for (int i = 0; i < 4; ++i) write_log(LogLevel::error, big);
  EXPECT_GT(dropped_log_lines(), before);
}

TEST(LogLevelText, RoundTripsAndRejectsUnknown) {
  for (auto level : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    EXPECT_EQ(parse_log_level(to_string(level)), level);
  }
  EXPECT_EQ(parse_log_level("critical"), LogLevel::error);
  EXPECT_THROW((void)parse_log_level("verbose"), std::exception);
}

}  // namespace
}  // namespace kata::agent_guest
