#include "kata/agent_guest/agent_options.hpp"

#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

TEST(AgentOptions, DefaultsWithoutAgentWords) {
  const AgentOptions options = parse_agent_options("console=ttyS0 quiet panic=-1\n");
  EXPECT_EQ(options.log_level, LogLevel::info);
  EXPECT_EQ(options.channel_name, "agent.channel.0");
  EXPECT_EQ(options.vsock_port, 1024u);
  EXPECT_FALSE(options.smoke_test);
  EXPECT_TRUE(options.ignored.empty());
}

TEST(AgentOptions, ParsesKnownWordsAndCollectsUnknownOnes) {
  const AgentOptions options = parse_agent_options(
      "console=ttyS0 agent.log=debug agent.smoke_test agent.server_port=2048 agent.channel=ch.1 agent.trace=true");
  EXPECT_EQ(options.log_level, LogLevel::debug);
  EXPECT_TRUE(options.smoke_test);
  EXPECT_EQ(options.vsock_port, 2048u);
  EXPECT_EQ(options.channel_name, "ch.1");
  EXPECT_EQ(options.ignored, std::vector<std::string>{"agent.trace=true"});
}

TEST(AgentOptions, BadValueNamesTheWord) {
  try {
    (void)parse_agent_options("quiet agent.log=loud");
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e),
              "kernel command line 'agent.log=loud': log level 'loud' is not one of trace, debug, info, warn, error");
    EXPECT_EQ(code_of(e), Errc::invalid_argument);
  }
  EXPECT_THROW((void)parse_agent_options("agent.server_port=0x10"), Error);
  EXPECT_THROW((void)parse_agent_options("agent.smoke_test=maybe"), Error);
}

}  // namespace
}  // namespace kata::agent_guest
