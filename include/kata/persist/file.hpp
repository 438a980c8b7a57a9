// Small files that must never be seen half written: state.json, and the shim's `address` and
// `shim.pid` in the bundle, which containerd reads back.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace kata::persist {

/// Replaces `path` with `content` atomically: writes a temporary file in the same directory,
/// fsyncs it, renames it over `path` and fsyncs the directory. A crash at any point leaves either
/// the old file or the new one, never a mixture; at worst an unused `.<name>.tmp-XXXXXX` stays
/// behind (readers never look at it). The directory must exist.
///
/// Throws kata::Error "write <path>: <step>: <strerror>" (code from errno); the temporary file is
/// removed on every error path.
void write_file_atomic(const std::filesystem::path& path, std::string_view content, mode_t mode = 0644);

/// The whole content of `path`, or nullopt when it does not exist (ENOENT). Other errors throw
/// kata::Error "read <path>: <strerror>".
[[nodiscard]] std::optional<std::string> read_file_if_exists(const std::filesystem::path& path);

}  // namespace kata::persist
