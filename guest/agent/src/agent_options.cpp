#include "kata/agent_guest/agent_options.hpp"

#include <charconv>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

bool parse_bool(std::string_view word, std::string_view value) {
  if (value.empty() || value == "1" || value == "true" || value == "on" || value == "yes") return true;
  if (value == "0" || value == "false" || value == "off" || value == "no") return false;
  fail(Errc::invalid_argument, "kernel command line '{}': expected a boolean (true/false/1/0)", word);
}

}  // namespace

AgentOptions parse_agent_options(std::string_view cmdline) {
  AgentOptions options;
  std::size_t pos = 0;
  while (pos < cmdline.size()) {
    const std::size_t start = cmdline.find_first_not_of(" \t\n", pos);
    if (start == std::string_view::npos) break;
    const std::size_t end = std::min(cmdline.find_first_of(" \t\n", start), cmdline.size());
    const std::string_view word = cmdline.substr(start, end - start);
    pos = end;
    if (!word.starts_with("agent.")) continue;
    const std::size_t eq = word.find('=');
    const std::string_view key = word.substr(6, eq == std::string_view::npos ? std::string_view::npos : eq - 6);
    const std::string_view value = eq == std::string_view::npos ? std::string_view{} : word.substr(eq + 1);
    if (key == "log") {
      options.log_level = with_context([&] { return fmt::format("kernel command line '{}'", word); },
                                       [&] { return parse_log_level(value); });
    } else if (key == "channel") {
      if (value.empty()) fail(Errc::invalid_argument, "kernel command line '{}': empty port name", word);
      options.channel_name = value;
    } else if (key == "log_vport") {
      options.log_port_name = value;
    } else if (key == "server_port") {
      std::uint32_t port = 0;
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (ec != std::errc{} || ptr != value.data() + value.size() || port == 0) {
        fail(Errc::invalid_argument, "kernel command line '{}': expected a vsock port number", word);
      }
      options.vsock_port = port;
    } else if (key == "smoke_test") {
      options.smoke_test = parse_bool(word, value);
    } else {
      options.ignored.emplace_back(word);
    }
  }
  return options;
}

}  // namespace kata::agent_guest
