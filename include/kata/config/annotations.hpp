// Per-pod overrides through OCI annotations io.katacontainers.config.*, gated like upstream
// runtime-rs (kata-types Annotation::update_config_by_annotation).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kata/config/loader.hpp"
#include "kata/config/schema.hpp"

namespace kata::config {

inline constexpr std::string_view annotation_config_prefix = "io.katacontainers.config.";
inline constexpr std::string_view annotation_hypervisor_prefix = "io.katacontainers.config.hypervisor.";
inline constexpr std::string_view annotation_agent_prefix = "io.katacontainers.config.agent.";
inline constexpr std::string_view annotation_runtime_prefix = "io.katacontainers.config.runtime.";

/// Applies the annotations to `config`, then adjusts it again (adjust_config).
///
/// - io.katacontainers.config.runtime.hypervisor_name / agent_name first switch the active
///   section, but only to a section the file has.
/// - A hypervisor key io.katacontainers.config.hypervisor.<suffix> is applied only if <suffix>
///   matches one of the active hypervisor's `enable_annotations` regular expressions (whole-suffix
///   match is NOT required: like upstream's RegexSet, a match anywhere counts; anchor with ^...$).
///   Path values are also checked: `path`, `jailer_path`, `virtio_fs_daemon`,
///   `vhost_user_store_path` and `entropy_source` must match a glob in the matching valid_*
///   list (fnmatch); kernel/image/initrd/firmware/guest_hook_path must exist when
///   options.path_check is resolve.
/// - Agent and runtime keys are applied without an allow-list (upstream behaviour).
/// - Any other io.katacontainers.config.* key (including a hypervisor key that is not enabled)
///   is ignored and a warning naming it is appended; runtime.sandbox_bind_mounts is always
///   refused with a warning (host paths are operator configuration, never workload input).
///
/// Throws Errc::invalid_argument naming the annotation and its value for a malformed value
/// (default_vcpus="abc"), an enabled but unknown hypervisor key, a path outside its allow-list,
/// default_vcpus above the backend's maximum, default_memory below its minimum, more than 16
/// PCIe root or switch ports. `config` may be partly modified when it throws.
void apply_annotations(Config& config, const std::map<std::string, std::string>& annotations,
                       const LoadOptions& options, std::vector<std::string>& warnings);

/// Parses a memory size the way the default_memory annotation accepts it: a plain number is
/// MiB; otherwise a number with a unit B, K/KB, M/MB, G/GB, T/TB (powers of 1000) or
/// Ki/KiB, Mi/MiB, Gi/GiB, Ti/TiB (powers of 1024), case-insensitive, optional space.
/// Returns MiB rounded down; throws Errc::invalid_argument when unparsable or too large.
[[nodiscard]] std::uint32_t parse_memory_mib(std::string_view text);

}  // namespace kata::config
