// The shim v2 command line and the files the `start` step leaves in the bundle: the pure parts,
// without any process or socket handling.
//
// containerd runs `containerd-shim-kata-v2 -namespace <ns> -address <containerd.sock>
// -publish-binary <containerd> -id <id> [-debug] [-bundle <dir>] start|delete` with the bundle as
// working directory; with no action the binary serves ttRPC (the daemon `start` launched).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace kata::shim {

enum class Action {
  serve,   ///< no positional argument: run the ttRPC server (upstream's "run")
  start,   ///< print the address of the (possibly shared) shim, starting it if needed
  delete_, ///< clean up after a dead shim and print a DeleteResponse
};

[[nodiscard]] std::string_view to_string(Action action) noexcept;

/// Parsed command line. Flags follow Go's `flag` package: `-name value`, `-name=value`,
/// `--name value`, `--name=value`; boolean flags take no separate value (`-debug`,
/// `-debug=false`). Parsing stops at the first non-flag argument or at `--`.
struct Arguments {
  std::string id;
  std::string namespace_name;  ///< -namespace
  std::string address;         ///< -address: containerd's main socket, verbatim
  std::string publish_binary;  ///< -publish-binary
  std::string bundle;          ///< -bundle (delete); start uses the working directory
  bool debug = false;
  bool version = false;  ///< -v / -version: print version and exit
  bool info = false;     ///< -info: print runtime info and exit
  Action action = Action::serve;
};

/// Parses argv[1..]. Throws kata::Error(invalid_argument) naming the offending flag:
/// "flag provided but not defined: -foo", "flag needs an argument: -id",
/// "invalid boolean value \"maybe\" for -debug", "unknown action \"stop\": expected start or
/// delete", "unexpected argument \"x\" after start".
[[nodiscard]] Arguments parse_arguments(std::span<const std::string_view> arguments);
[[nodiscard]] Arguments parse_arguments(int argc, const char* const* argv);

/// Checks what every action needs, like upstream's Args::validate: -id, -namespace and
/// -publish-binary present (-address may be empty), -id and -namespace valid ids
/// (persist::verify_id). With `require_bundle` (delete), -bundle must name an existing
/// directory; it is then replaced by its canonical path. Throws kata::Error(invalid_argument)
/// "-<flag>: ..." for the first problem found.
void validate(Arguments& arguments, bool require_bundle);

/// Where shims put their sockets (containerd's <state>/s directory for the default state dir).
inline constexpr std::string_view default_socket_dir = "/run/containerd/s";

/// Lower-case hexadecimal SHA-256 of `data`.
[[nodiscard]] std::string sha256_hex(std::string_view data);

/// The path of the shim socket for (address, namespace, id):
/// <socket_dir>/<sha256_hex("<address>/<namespace>/<id>")>. Every container of a pod must
/// compute the same value from the sandbox id, so the sandbox's shim is found again.
[[nodiscard]] std::filesystem::path socket_path(std::string_view containerd_address, std::string_view namespace_name,
                                                std::string_view id,
                                                const std::filesystem::path& socket_dir = default_socket_dir);

/// "unix://" + socket_path(...): the string `start` prints and writes to <bundle>/address.
[[nodiscard]] std::string socket_address(std::string_view containerd_address, std::string_view namespace_name,
                                         std::string_view id,
                                         const std::filesystem::path& socket_dir = default_socket_dir);

/// The path part of a "unix://..." address (what `delete` removes). Throws
/// kata::Error(invalid_argument) for any other scheme.
[[nodiscard]] std::filesystem::path socket_path_of(std::string_view address);

/// Writes <bundle>/address (the address, no newline) atomically. Throws kata::Error naming the
/// file.
void write_address_file(const std::filesystem::path& bundle, std::string_view address);

/// Writes <bundle>/shim.pid (decimal pid, no newline) atomically. Throws kata::Error naming the
/// file.
void write_pid_file(const std::filesystem::path& bundle, pid_t pid);

/// Reads <bundle>/shim.pid; 0 when it does not exist. Throws kata::Error(data_loss) when it does
/// not hold a positive decimal pid.
[[nodiscard]] pid_t read_pid_file(const std::filesystem::path& bundle);

}  // namespace kata::shim
