// Finding, reading, adjusting and validating configuration.toml.
//
// The shim's path (load_sandbox_config) is upstream runtime-rs's:
//   1. find the file: KATA_CONF_FILE (only a shipped default file), else the runtime option
//      config_path, else the first existing entry of the default list;
//   2. parse it and every config.d/ drop-in beside it (deep merge, filename order);
//   3. typed parse (unknown keys become warnings), adjust (defaults, host clamping, paths);
//   4. io.katacontainers.config.* annotations (kata/config/annotations.hpp), adjust again;
//   5. agent kernel parameters appended to the active hypervisor's kernel_params;
//   6. validate.
// Every error names the file (as an outer context layer) and the key ("[hypervisor.qemu]
// block_device_driver"), says what is wrong and what is allowed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kata/config/schema.hpp"

namespace kata::config {

/// What the host offers; CPU and memory settings are clamped to it. Injected by tests.
struct HostResources {
  /// CPUs this process may run on (sched_getaffinity).
  std::uint32_t cpus = 1;
  /// Total RAM in MiB (sysinfo).
  std::uint64_t memory_mib = 0;

  /// Reads the real host. Throws kata::Error if the kernel refuses to tell.
  static HostResources detect();
};

/// How file-system paths in the configuration are treated.
enum class PathCheck {
  /// Upstream's behaviour: every non-empty asset/binary path must exist and is replaced by its
  /// canonical form. What the shim uses.
  resolve,
  /// Paths are taken as written and never touched: checking a configuration written for another
  /// machine (kata-ctl check-config --no-path-check, the build-tree tests).
  lexical,
};

/// Fixed limits of one hypervisor backend (upstream ConfigPlugin).
struct HypervisorPlugin {
  std::string_view name;
  std::uint32_t max_vcpus;
  std::uint32_t min_memory_mib;
};

/// The backends this project knows, in documentation order.
[[nodiscard]] const std::vector<HypervisorPlugin>& hypervisor_plugins();
/// nullptr for an unknown name.
[[nodiscard]] const HypervisorPlugin* find_hypervisor_plugin(std::string_view name);
/// "qemu, clh, dragonball, firecracker, remote" (for error messages).
[[nodiscard]] std::string known_hypervisor_names();

/// The shipped default configuration files, in search order, without duplicates:
/// /etc/kata-containers/runtime-rs/configuration.toml, this install's
/// <build_info::defaults_dir>/configuration.toml, /usr/share/defaults/kata-containers/runtime-rs/
/// configuration.toml, /opt/kata/share/defaults/kata-containers/runtime-rs/configuration.toml.
[[nodiscard]] std::vector<std::filesystem::path> default_config_paths();

/// Where to look for the configuration file.
struct ConfigSource {
  /// Value of the KATA_CONF_FILE environment variable; nullopt or "" when unset.
  std::optional<std::string> kata_conf_file;
  /// runtimeoptions.v1.Options.config_path from containerd ("" when not given).
  std::string config_path;
  /// The shipped default list; tests substitute their own.
  std::vector<std::filesystem::path> default_paths = default_config_paths();

  /// kata_conf_file from the environment, config_path as given, the real default list.
  static ConfigSource from_environment(std::string config_path = {});
};

/// Resolves which file to load (canonical path). Throws:
/// - Errc::permission_denied: KATA_CONF_FILE does not resolve to one of default_paths (the
///   message names the value and lists the accepted files);
/// - Errc::not_found: KATA_CONF_FILE or config_path names a missing file, or no default exists
///   (the message names it and lists everything searched).
[[nodiscard]] std::filesystem::path find_config_file(const ConfigSource& source);

/// Knobs of the load itself.
struct LoadOptions {
  HostResources host = HostResources::detect();
  PathCheck path_check = PathCheck::resolve;
};

/// A loaded configuration and where it came from.
struct LoadedConfig {
  Config config;
  /// The file loaded ("" when loaded from text).
  std::filesystem::path file;
  /// config.d/ entries merged over it, in the order applied.
  std::vector<std::filesystem::path> drop_ins;
  /// Things the user should see but that do not stop the load: unknown keys (with file:line),
  /// ignored or refused annotations, deprecated values rewritten.
  std::vector<std::string> warnings;
};

/// Parses `file` and its config.d/ drop-ins, then adjusts (not validated). Throws with
/// "file:line:col: message" for TOML syntax errors, "<file>: [section] key: expected X, got Y"
/// for wrong types, Errc::invalid_argument for unknown hypervisor sections.
[[nodiscard]] LoadedConfig load_config_file(const std::filesystem::path& file, const LoadOptions& options);

/// The same from text (no drop-ins); `source_name` stands in for the file name in messages.
[[nodiscard]] LoadedConfig load_config_text(std::string_view text, std::string_view source_name,
                                            const LoadOptions& options);

/// Fills defaults and clamps to the host, per hypervisor section then runtime and agent
/// (upstream adjust_config). Idempotent. Warnings (e.g. virtio_fs_cache "none") are appended.
void adjust_config(Config& config, const LoadOptions& options, std::vector<std::string>& warnings);

/// Checks everything a sandbox needs (upstream validate plus: runtime.hypervisor_name names a
/// known backend that has a section). Throws Errc::invalid_argument on the first problem.
void validate_config(const Config& config, const LoadOptions& options);

/// agent.* kernel parameters implied by the active [agent.<name>] section, in key order
/// ("agent.log" -> "debug", ...); a value of "" means a bare flag.
[[nodiscard]] std::map<std::string, std::string> agent_kernel_params(const Config& config);

/// Steps 1-6 above: the configuration a sandbox is created with.
[[nodiscard]] LoadedConfig load_sandbox_config(const ConfigSource& source,
                                               const std::map<std::string, std::string>& annotations,
                                               const LoadOptions& options);

}  // namespace kata::config
