#include "kata/persist/store.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <system_error>

#include "kata/core/error.hpp"
#include "kata/persist/file.hpp"
#include "kata/persist/id.hpp"

namespace kata::persist {

namespace fs = std::filesystem;

namespace {

void make_directory(const fs::path& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0 || errno == EEXIST) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) fail_errno(errno, "stat {}", path.string());
    if (!S_ISDIR(st.st_mode)) fail(Errc::already_exists, "{} exists and is not a directory", path.string());
    return;
  }
  fail_errno(errno, "create directory {}", path.string());
}

}  // namespace

Store::Store(fs::path root) : root_(std::move(root)) {}

fs::path Store::sandbox_dir(std::string_view sandbox_id) const {
  with_context("sandbox id", [&] { verify_id(sandbox_id); });
  return root_ / sandbox_id;
}

fs::path Store::state_path(std::string_view sandbox_id) const { return sandbox_dir(sandbox_id) / state_file_name; }

fs::path Store::create_sandbox_dir(std::string_view sandbox_id) const {
  const fs::path directory = sandbox_dir(sandbox_id);
  with_context([&] { return "create state directory of sandbox " + std::string(sandbox_id); }, [&] {
    fs::path partial;
    for (const auto& part : root_) {
      partial /= part;
      if (partial == partial.root_path()) continue;
      make_directory(partial, 0755);
    }
    make_directory(directory, 0750);
  });
  return directory;
}

void Store::save(std::string_view sandbox_id, const SandboxState& state) const {
  const fs::path directory = create_sandbox_dir(sandbox_id);
  with_context([&] { return "save state of sandbox " + std::string(sandbox_id); }, [&] {
    write_file_atomic(directory / state_file_name, to_json(state).dump(2) + "\n", 0600);
  });
}

std::optional<LoadedState> Store::load(std::string_view sandbox_id) const {
  const fs::path path = state_path(sandbox_id);
  std::optional<std::string> text;
  try {
    text = read_file_if_exists(path);
  } catch (const Error& e) {
    if (e.code() != Errc::invalid_argument) throw;  // ENOTDIR: the sandbox "directory" is a file
    return std::nullopt;
  }
  if (!text) return std::nullopt;
  nlohmann::json document = nlohmann::json::parse(*text, nullptr, false);
  if (document.is_discarded()) fail(Errc::data_loss, "{}: not valid JSON", path.string());
  LoadedState loaded;
  loaded.state = state_from_json(document, loaded.warnings);
  for (auto& warning : loaded.warnings) warning = path.string() + ": " + warning;
  return loaded;
}

bool Store::remove(std::string_view sandbox_id) const {
  const fs::path directory = sandbox_dir(sandbox_id);
  std::error_code error;
  const auto removed = fs::remove_all(directory, error);
  if (error) {
    fail_errno(error.value(), "remove state directory {}", directory.string());
  }
  return removed > 0;
}

}  // namespace kata::persist
