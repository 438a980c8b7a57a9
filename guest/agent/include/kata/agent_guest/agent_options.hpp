// The agent's configuration, read from the kernel command line as upstream's agent does
// (`agent.<key>=<value>` words; see docs/agent.md for the list).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kata/agent_guest/log.hpp"

namespace kata::agent_guest {

struct AgentOptions {
  LogLevel log_level = LogLevel::info;              ///< agent.log
  std::string channel_name = "agent.channel.0";     ///< agent.channel (virtio-serial port name)
  std::string log_port_name = "agent.log.0";        ///< agent.log_vport
  std::uint32_t vsock_port = 1024;                  ///< agent.server_port ([agent.kata] server_port)
  bool smoke_test = false;                          ///< agent.smoke_test: report and power off
  std::vector<std::string> ignored;                 ///< agent.* words we do not know (logged)
};

/// Parses /proc/cmdline text. Words outside the `agent.` prefix are the kernel's and are skipped.
/// A known key with a bad value throws kata::Error(invalid_argument) naming the word.
[[nodiscard]] AgentOptions parse_agent_options(std::string_view cmdline);

}  // namespace kata::agent_guest
