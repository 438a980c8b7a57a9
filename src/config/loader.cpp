#include "kata/config/loader.hpp"

#include <sched.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

#include "kata/build_info.hpp"
#include "kata/config/annotations.hpp"
#include "kata/core/error.hpp"
#include "toml_document.hpp"
#include "validation.hpp"

namespace kata::config {

namespace fs = std::filesystem;

HostResources HostResources::detect() {
  HostResources host;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    host.cpus = static_cast<std::uint32_t>(CPU_COUNT(&set));
  } else {
    fail_errno(errno, "count host CPUs: sched_getaffinity");
  }
  struct sysinfo info {};
  if (sysinfo(&info) != 0) fail_errno(errno, "read host memory size: sysinfo");
  host.memory_mib = static_cast<std::uint64_t>(info.totalram) * info.mem_unit / (1024 * 1024);
  return host;
}

const std::vector<HypervisorPlugin>& hypervisor_plugins() {
  // Upstream default.rs: MAX_*_VCPUS and MIN_*_MEMORY_SIZE_MB.
  static const std::vector<HypervisorPlugin> plugins{
      {hypervisor_qemu, 256, 64},
      {hypervisor_clh, 256, 64},
      {hypervisor_dragonball, 256, 64},
      {hypervisor_firecracker, 32, 128},
      {hypervisor_remote, 32, 64},
  };
  return plugins;
}

const HypervisorPlugin* find_hypervisor_plugin(std::string_view name) {
  const auto& plugins = hypervisor_plugins();
  auto it = std::find_if(plugins.begin(), plugins.end(), [&](const auto& p) { return p.name == name; });
  return it == plugins.end() ? nullptr : &*it;
}

std::string known_hypervisor_names() {
  std::string names;
  for (const auto& plugin : hypervisor_plugins()) {
    if (!names.empty()) names += ", ";
    names += plugin.name;
  }
  return names;
}

std::vector<fs::path> default_config_paths() {
  const std::vector<fs::path> candidates{
      fs::path(build_info::sysconf_dir) / "configuration.toml",
      fs::path(build_info::defaults_dir) / "configuration.toml",
      "/usr/share/defaults/kata-containers/runtime-rs/configuration.toml",
      "/opt/kata/share/defaults/kata-containers/runtime-rs/configuration.toml",
  };
  std::vector<fs::path> paths;
  for (const auto& candidate : candidates) {
    auto normal = candidate.lexically_normal();
    if (std::find(paths.begin(), paths.end(), normal) == paths.end()) paths.push_back(std::move(normal));
  }
  return paths;
}

ConfigSource ConfigSource::from_environment(std::string config_path) {
  ConfigSource source;
  if (const char* value = std::getenv("KATA_CONF_FILE")) source.kata_conf_file = value;
  source.config_path = std::move(config_path);
  return source;
}

namespace {

std::string join_paths(const std::vector<fs::path>& paths) {
  std::string out;
  for (const auto& path : paths) {
    if (!out.empty()) out += ", ";
    out += path.string();
  }
  return out;
}

std::optional<fs::path> canonical_or_none(const fs::path& path, std::error_code& ec) {
  auto resolved = fs::canonical(path, ec);
  if (ec) return std::nullopt;
  return resolved;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_errno(errno, "read {}", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail_errno(errno, "read {}", path.string());
  return std::move(text).str();
}

std::vector<fs::path> drop_in_files(const fs::path& config_file) {
  const fs::path dir = config_file.parent_path() / "config.d";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return {};
    fail_errno(ec.value(), "read drop-in directory {}", dir.string());
  }
  std::vector<fs::path> files;
  for (const auto& entry : it) {
    // A symlink to a regular file counts as one (fs::status follows links).
    std::error_code status_error;
    if (!fs::is_regular_file(entry.path(), status_error)) {
      fail(Errc::invalid_argument,
           "drop-in {} is not a regular file; config.d may only hold configuration files (or symlinks to them)",
           entry.path().string());
    }
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  return files;
}

void prepend_kernel_params(BootInfo& boot, const std::map<std::string, std::string>& params) {
  std::string joined;
  for (const auto& [key, value] : params) {
    if (!joined.empty()) joined += ' ';
    joined += value.empty() ? key : key + "=" + value;
  }
  // Upstream puts the generated parameters first so the file's own ones win on duplicates.
  if (!boot.kernel_params.empty()) {
    if (!joined.empty()) joined += ' ';
    joined += boot.kernel_params;
  }
  boot.kernel_params = std::move(joined);
}

}  // namespace

fs::path find_config_file(const ConfigSource& source) {
  std::error_code ec;
  if (source.kata_conf_file && !source.kata_conf_file->empty()) {
    const auto& value = *source.kata_conf_file;
    auto resolved = canonical_or_none(value, ec);
    if (!resolved) {
      fail(Errc::not_found, "KATA_CONF_FILE={}: {}; it must name one of the shipped configuration files: {}", value,
           ec.message(), join_paths(source.default_paths));
    }
    for (const auto& shipped : source.default_paths) {
      std::error_code ignored;
      if (auto candidate = canonical_or_none(shipped, ignored); candidate && *candidate == *resolved) {
        return *resolved;
      }
    }
    fail(Errc::permission_denied,
         "KATA_CONF_FILE={} (resolves to {}) is not a shipped configuration file; accepted: {}. "
         "Use the runtime option config_path (containerd ConfigPath) for any other file",
         value, resolved->string(), join_paths(source.default_paths));
  }
  if (!source.config_path.empty()) {
    auto resolved = canonical_or_none(source.config_path, ec);
    if (!resolved) {
      fail(Errc::not_found, "configuration file {} (runtime option config_path): {}; searched: {}",
           source.config_path, ec.message(), source.config_path);
    }
    return *resolved;
  }
  for (const auto& candidate : source.default_paths) {
    if (auto resolved = canonical_or_none(candidate, ec)) return *resolved;
  }
  fail(Errc::not_found,
       "no configuration file found; searched: {} (install one, or set the runtime option config_path)",
       join_paths(source.default_paths));
}

namespace {

// What an error after merging names as its source: the file, plus its drop-ins when there are
// any, since a bad value may come from either.
std::string merged_origin(const LoadedConfig& loaded) {
  if (loaded.drop_ins.empty()) return loaded.file.string();
  std::vector<std::string> names;
  for (const auto& drop_in : loaded.drop_ins) names.push_back(drop_in.filename().string());
  return fmt::format("{} with config.d/{{{}}}", loaded.file.string(), fmt::join(names, ","));
}

}  // namespace

LoadedConfig load_config_file(const fs::path& file, const LoadOptions& options) {
  LoadedConfig loaded;
  loaded.file = file;
  std::vector<detail::TomlSource> sources;
  sources.push_back({file.string(), read_text(file)});
  loaded.drop_ins = drop_in_files(file);
  for (const auto& drop_in : loaded.drop_ins) sources.push_back({drop_in.string(), read_text(drop_in)});
  loaded.config = detail::read_config(sources, loaded.warnings);
  with_context(merged_origin(loaded), [&] { adjust_config(loaded.config, options, loaded.warnings); });
  return loaded;
}

LoadedConfig load_config_text(std::string_view text, std::string_view source_name, const LoadOptions& options) {
  LoadedConfig loaded;
  loaded.config = detail::read_config({{std::string(source_name), std::string(text)}}, loaded.warnings);
  with_context(std::string(source_name), [&] { adjust_config(loaded.config, options, loaded.warnings); });
  return loaded;
}

std::map<std::string, std::string> agent_kernel_params(const Config& config) {
  std::map<std::string, std::string> params;
  const auto found = config.agent.find(config.runtime.agent_name.empty() ? agent_kata
                                                                          : std::string_view(config.runtime.agent_name));
  if (found == config.agent.end()) return params;
  const AgentConfig& agent = found->second;
  if (agent.enable_debug) params["agent.log"] = "debug";
  if (agent.enable_tracing) params["agent.trace"] = "true";
  if (agent.container_pipe_size > 0) params["agent.container_pipe_size"] = std::to_string(agent.container_pipe_size);
  if (agent.launch_process_timeout > 0) {
    params["agent.launch_process_timeout"] = std::to_string(agent.launch_process_timeout);
  }
  if (agent.cdh_api_timeout_ms > 0) params["agent.cdh_api_timeout"] = std::to_string(agent.cdh_api_timeout_ms / 1000);
  if (agent.debug_console_enabled) {
    params["agent.debug_console"] = "";
    params["agent.debug_console_vport"] = "1026";
  }
  if (agent.visible_cdi_devices) params["agent.visible_cdi_devices"] = "true";
  const MemAgent& mem = agent.mem_agent;
  if (mem.mem_agent_enable) {
    params["psi"] = "1";
    params["agent.mem_agent_enable"] = "1";
    auto put = [&](std::string_view name, const auto& value) {
      if (!value) return;
      if constexpr (std::is_same_v<std::decay_t<decltype(*value)>, bool>) {
        params[fmt::format("agent.mem_agent_{}", name)] = *value ? "true" : "false";
      } else {
        params[fmt::format("agent.mem_agent_{}", name)] = std::to_string(+*value);
      }
    };
    put("memcg_disable", mem.memcg_disable);
    put("memcg_swap", mem.memcg_swap);
    put("memcg_swappiness_max", mem.memcg_swappiness_max);
    put("memcg_period_secs", mem.memcg_period_secs);
    put("memcg_period_psi_percent_limit", mem.memcg_period_psi_percent_limit);
    put("memcg_eviction_psi_percent_limit", mem.memcg_eviction_psi_percent_limit);
    put("memcg_eviction_run_aging_count_min", mem.memcg_eviction_run_aging_count_min);
    put("compact_disable", mem.compact_disable);
    put("compact_period_secs", mem.compact_period_secs);
    put("compact_period_psi_percent_limit", mem.compact_period_psi_percent_limit);
    put("compact_psi_percent_limit", mem.compact_psi_percent_limit);
    put("compact_sec_max", mem.compact_sec_max);
    put("compact_order", mem.compact_order);
    put("compact_threshold", mem.compact_threshold);
    put("compact_force_times", mem.compact_force_times);
  }
  return params;
}

LoadedConfig load_sandbox_config(const ConfigSource& source, const std::map<std::string, std::string>& annotations,
                                 const LoadOptions& options) {
  LoadedConfig loaded = load_config_file(find_config_file(source), options);
  with_context(merged_origin(loaded), [&] {
    Config& config = loaded.config;
    if (config.runtime.name.empty()) fail(Errc::invalid_argument, "[runtime] name is missing (use \"virt_container\")");
    if (config.runtime.hypervisor_name.empty()) {
      fail(Errc::invalid_argument, "[runtime] hypervisor_name is missing; known hypervisors: {}",
           known_hypervisor_names());
    }
    if (config.runtime.agent_name.empty()) fail(Errc::invalid_argument, "[runtime] agent_name is missing (use \"kata\")");
    apply_annotations(config, annotations, options, loaded.warnings);
    prepend_kernel_params(config.active_hypervisor().boot, agent_kernel_params(config));
    validate_config(config, options);
  });
  return loaded;
}

}  // namespace kata::config
