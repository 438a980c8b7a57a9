// Private seam between the loader and toml++: only toml_document.cpp and render.cpp include
// toml++ (header-only build, see CMakeLists.txt), everything else sees plain text and Config.
#pragma once

#include <string>
#include <vector>

#include "kata/config/schema.hpp"

namespace kata::config::detail {

/// One TOML text and the name it is reported under (its file path).
struct TomlSource {
  std::string name;
  std::string text;
};

/// Parses every source, deep-merges them in order onto the first (tables merged recursively,
/// scalars and arrays replaced), then reads the typed Config. Unknown keys are appended to
/// `warnings` as "<file>:<line>: unknown key ... ignored". Throws Errc::invalid_argument with
/// "<file>:<line>:<col>: <what>" for syntax errors, "<file>: [section] key: expected X, got Y" for
/// wrong types, and for [hypervisor.<name>] sections this project does not know.
Config read_config(const std::vector<TomlSource>& sources, std::vector<std::string>& warnings);

}  // namespace kata::config::detail
