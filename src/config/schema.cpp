#include "kata/config/schema.hpp"

#include "kata/core/error.hpp"

namespace kata::config {

namespace {

template <class Map>
auto& find_section(Map& sections, std::string_view kind, std::string_view name, std::string_view selector) {
  auto it = sections.find(name);
  if (it == sections.end()) {
    fail(Errc::not_found, "runtime.{} = \"{}\" but the configuration has no [{}.{}] section", selector, name,
         kind, name);
  }
  return it->second;
}

std::string_view agent_name_or_default(const RuntimeConfig& runtime) {
  return runtime.agent_name.empty() ? agent_kata : std::string_view(runtime.agent_name);
}

}  // namespace

HypervisorConfig& Config::active_hypervisor() {
  return find_section(hypervisor, "hypervisor", runtime.hypervisor_name, "hypervisor_name");
}

const HypervisorConfig& Config::active_hypervisor() const {
  return find_section(hypervisor, "hypervisor", runtime.hypervisor_name, "hypervisor_name");
}

AgentConfig& Config::active_agent() {
  return find_section(agent, "agent", agent_name_or_default(runtime), "agent_name");
}

const AgentConfig& Config::active_agent() const {
  return find_section(agent, "agent", agent_name_or_default(runtime), "agent_name");
}

}  // namespace kata::config
