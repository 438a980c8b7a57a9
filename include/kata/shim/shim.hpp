// The shim v2 binary protocol: what `containerd-shim-kata-v2` does for each way containerd runs
// it. A variant's main() is one line:
//
//     int main(int argc, char** argv) { return kata::shim::run<QemuFactory>(argc, argv); }
//
// ## start (`... -id <id> start`, cwd = bundle)
// Prints the ttRPC address of the shim that serves this container and exits 0:
//   - reads runtimeoptions.v1.Options (a protobuf Any) from stdin when stdin is not a terminal;
//     its config_path is handed to the server (used when a Create carries no options);
//   - a pod container (CRI annotations, kata/oci/k8s.hpp) joins its sandbox: the address is
//     computed from the sandbox id, nothing is started;
//   - otherwise, when a shim already serves the address (a repeated start), that address;
//   - otherwise binds the socket <socket dir>/<sha256(address/namespace/id)>, starts this same
//     binary in serve mode (cwd = bundle, stdio = /dev/null, own session, the listener inherited
//     as fd 3 named by KATA_RUNTIME_BIND_FD), writes <bundle>/address and <bundle>/shim.pid.
//   Nothing else is initialised first: containerd waits for this output (target <= 10 ms).
//   containerd reads stdout and stderr together as the address, so `start` writes nothing to
//   stderr unless it fails (then it exits 1 with the error there).
//
// ## serve (no action; the process `start` launched)
// Logs to the bundle's `log` FIFO and syslog (identifier `kata`); ignores SIGPIPE and SIGTERM
// (like upstream: only a Shutdown RPC ends a serving shim; SIGINT does too, for development);
// serves containerd.task.v2.Task on the inherited listener with one io_context thread, and keeps
// serving new connections when containerd reconnects after a restart. Events go to
// TTRPC_ADDRESS (events.hpp). After Shutdown: the runtime is shut down, in-flight calls and
// queued events are drained (bounded), the socket file is removed and the process exits 0.
//
// ## delete (`... -id <id> -bundle <dir> delete`, after the shim died)
// Writes DeleteResponse{pid 0, exit_status 137, exited_at now} (binary protobuf) on stdout and
// exits 0, also when everything is already gone (idempotent): removes the socket file, SIGKILLs
// the shim recorded in <bundle>/shim.pid if it is still alive and really is this binary serving
// this id, and (for a sandbox or single container, not for a pod container) runs
// Factory::cleanup_after_dead_shim, waiting at most a few seconds (containerd allows 5).
//
// ## -v / -version
// "<project> containerd shim (C++): id: io.containerd.kata.v2, version: X, commit: Y".
// -info (containerd 2.x's RuntimeInfo) is not supported: there is no RuntimeInfo message in our
// protocol set, so it fails with an error naming the flag.
//
// Environment: TTRPC_ADDRESS (containerd's event socket), KATA_RUNTIME_BIND_FD (start -> serve),
// KATA_SHIM_SOCKET_DIR (where sockets go instead of /run/containerd/s; for containerd instances
// run without root, and for tests; must be the same for start, serve and delete).
#pragma once

#include <string_view>

#include "kata/shim/runtime_factory.hpp"
#include "kata/shim/task_service.hpp"

namespace kata::shim {

inline constexpr std::string_view bind_fd_env = "KATA_RUNTIME_BIND_FD";
inline constexpr std::string_view socket_dir_env = "KATA_SHIM_SOCKET_DIR";
/// config_path that `start` read on stdin, passed to the serving process.
inline constexpr std::string_view start_config_path_env = "KATA_SHIM_START_CONFIG_PATH";

/// The whole shim binary: parses the command line and performs start, delete, serve or
/// -version. Returns the process exit code.
template <RuntimeFactory Factory>
int run(int argc, char** argv);

}  // namespace kata::shim

#include "kata/shim/impl/shim.hpp"
