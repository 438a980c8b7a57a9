// Per-sandbox state directories: <root>/<sandbox-id>/state.json, root /run/kata by default
// (upstream's KATA_PATH). The directory also holds the sandbox's sockets (see docs/persist.md);
// remove() takes all of it away.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kata/persist/state.hpp"

namespace kata::persist {

inline constexpr std::string_view default_root = "/run/kata";
inline constexpr std::string_view state_file_name = "state.json";

/// A state read from disk and what had to be skipped to read it.
struct LoadedState {
  SandboxState state;
  std::vector<std::string> warnings;
};

/// Access to the state directories under one root. Holds only the root path; cheap to copy.
/// Every function taking a sandbox id throws kata::Error(invalid_argument) for an id rejected
/// by verify_id, before touching the filesystem.
class Store {
 public:
  /// `root` is injectable for tests; nothing is created until a sandbox directory is.
  explicit Store(std::filesystem::path root = std::filesystem::path(default_root));

  [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }
  [[nodiscard]] std::filesystem::path sandbox_dir(std::string_view sandbox_id) const;
  [[nodiscard]] std::filesystem::path state_path(std::string_view sandbox_id) const;

  /// Creates <root>/<id> (mode 0750; parents 0755). Idempotent. Returns its path.
  std::filesystem::path create_sandbox_dir(std::string_view sandbox_id) const;

  /// Writes state.json atomically (write_file_atomic, mode 0600), creating the directory first.
  /// Throws kata::Error "save state of sandbox <id>: ..." on failure; the previous file is then
  /// unchanged.
  void save(std::string_view sandbox_id, const SandboxState& state) const;

  /// Reads state.json. nullopt when the directory or the file does not exist. Throws
  /// kata::Error(data_loss) "<path>: not valid JSON: ..." when the file is not JSON at all; a
  /// document with missing or mistyped keys loads with warnings (state_from_json).
  [[nodiscard]] std::optional<LoadedState> load(std::string_view sandbox_id) const;

  /// Removes <root>/<id> and everything below it without following symlinks. Idempotent:
  /// returns false when there was nothing to remove. Throws kata::Error on failure (e.g. EBUSY
  /// for a mount point still mounted inside).
  bool remove(std::string_view sandbox_id) const;

 private:
  std::filesystem::path root_;
};

}  // namespace kata::persist
