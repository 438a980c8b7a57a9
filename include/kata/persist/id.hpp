// Identifiers that become path components (sandbox, container and exec ids, containerd
// namespaces). containerd already restricts them, but the shim turns them into directories
// under /run/kata and socket names, so it checks again rather than trust its caller.
#pragma once

#include <string_view>

namespace kata::persist {

/// True when `id` matches ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$ (upstream kata-sys-util verify_id, ASCII
/// only): at least two characters, no '/', no leading '.', so "..", "a/b" and ".hidden" are out.
[[nodiscard]] bool is_valid_id(std::string_view id) noexcept;

/// Throws kata::Error(invalid_argument) `invalid ID "<id>": ...` naming the rule when
/// !is_valid_id(id). Callers add what the id was for with with_context.
void verify_id(std::string_view id);

}  // namespace kata::persist
