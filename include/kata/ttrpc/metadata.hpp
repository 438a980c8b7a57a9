// Per-call metadata (ttrpc.Request.metadata: repeated KeyValue{key, value}).
//
// Kept as an ordered list rather than a map: keys may repeat (Go's MD is map[string][]string and
// sends one KeyValue per value), and the order a caller chose is the order on the wire.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kata::ttrpc {

struct MetadataEntry {
  std::string key;
  std::string value;

  friend bool operator==(const MetadataEntry&, const MetadataEntry&) = default;
};

using Metadata = std::vector<MetadataEntry>;

/// The first value stored under `key`, if any.
[[nodiscard]] inline std::optional<std::string_view> find_metadata(const Metadata& metadata,
                                                                   std::string_view key) noexcept {
  for (const auto& entry : metadata) {
    if (entry.key == key) return std::string_view(entry.value);
  }
  return std::nullopt;
}

}  // namespace kata::ttrpc
