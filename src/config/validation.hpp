// Helpers shared by adjust.cpp, validate.cpp and annotations.cpp.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "kata/config/loader.hpp"

namespace kata::config::detail {

/// "[hypervisor.qemu]" for a section, used as the prefix of every message about one of its keys.
[[nodiscard]] std::string section_label(std::string_view kind, std::string_view name);

/// PathCheck::resolve: an empty value stays empty; otherwise the path must exist and is replaced
/// by its canonical form. Throws Errc::not_found "<section> <key> = "<value>": <reason>".
/// PathCheck::lexical: no effect.
void resolve_path(std::string& value, PathCheck check, std::string_view section, std::string_view key);

/// The same check without rewriting the value.
void require_existing_path(const std::string& value, PathCheck check, std::string_view section, std::string_view key);

/// "a, b, c".
[[nodiscard]] std::string join(std::initializer_list<std::string_view> values);

/// True if `path` matches one of the fnmatch(3) globs.
[[nodiscard]] bool matches_any_glob(const std::vector<std::string>& globs, const std::string& path);

/// Validates "root_hash=..,salt=..,data_blocks=..,data_block_size=..,hash_block_size=.." the way
/// upstream does; throws Errc::invalid_argument naming the first bad field.
void check_kernel_verity_params(std::string_view params);

/// Upstream's rule for block sector sizes: 0, or a power of two in [512, 65536].
[[nodiscard]] bool valid_sector_size(std::uint32_t size);

inline constexpr std::uint32_t max_bridges = 5;
inline constexpr std::uint32_t max_network_queues = 256;

}  // namespace kata::config::detail
