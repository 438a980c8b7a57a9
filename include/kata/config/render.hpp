// The effective configuration as text, for `kata-ctl env` and for logs: every key the schema
// knows, with its value after drop-ins, adjustment and annotations. Unset optional keys are
// omitted; create_container_timeout is printed in seconds, as it is written.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "kata/config/schema.hpp"

namespace kata::config {

/// {"agent": {"kata": {...}}, "hypervisor": {"qemu": {...}}, "runtime": {...}} with keys in
/// schema order.
[[nodiscard]] nlohmann::ordered_json to_json(const Config& config);

/// The same as a TOML document that load_config_text reads back to an equal Config.
[[nodiscard]] std::string to_toml(const Config& config);

}  // namespace kata::config
