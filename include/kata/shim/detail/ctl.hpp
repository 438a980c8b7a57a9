// The parts of shim-ctl (kata/shim/ctl.hpp) that do not depend on the runtime factory.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kata/core/asio.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/runtime/task_runtime.hpp"

namespace kata::shim::detail {

struct CtlOptions {
  std::filesystem::path bundle;
  std::string id;           ///< default: the bundle directory's name
  std::string config_path;  ///< empty: the runtime's search order (KATA_CONF_FILE, /etc, ...)
  std::string namespace_name = "default";
  /// Rootfs mounts handed to the runtime as containerd would (a snapshotter's mounts), from
  /// --rootfs-mount TYPE,SOURCE[,OPTION...]; empty: the bundle's rootfs/ as it is.
  std::vector<runtime::RootfsMount> rootfs;
};

/// Parses shim-ctl's command line. nullopt means "exit now with `exit_code`" (--help, or a usage
/// error already printed).
std::optional<CtlOptions> parse_ctl_options(int argc, char** argv, int& exit_code);

/// What containerd does for a task's output: FIFOs in a private directory whose read ends this
/// process holds, copied to its own stdout and stderr. Removes the directory on destruction.
class CtlStdio {
 public:
  static CtlStdio create();
  CtlStdio(CtlStdio&&) noexcept = default;
  CtlStdio& operator=(CtlStdio&&) = delete;
  ~CtlStdio();

  [[nodiscard]] runtime::Stdio stdio() const;

  /// Copies both FIFOs until their writers are gone (the runtime's process I/O released).
  /// Start it after create_container opened the write ends, or an unopened FIFO reads as EOF.
  Task<void> copy_to_terminal(Executor executor);

 private:
  explicit CtlStdio(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
  UniqueFd stdout_reader_;
  UniqueFd stderr_reader_;
};

}  // namespace kata::shim::detail
