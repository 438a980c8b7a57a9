// The factory-independent machinery behind kata::shim::run<Factory> (compiled in src/shim/):
// command dispatch, start, delete and the serve loop. The templates in impl/shim.hpp only build
// the TaskService for the factory and hand it over through ServiceControl.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "kata/core/asio.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/shim/cli.hpp"
#include "kata/shim/events.hpp"
#include "kata/shim/runtime_factory.hpp"
#include "kata/ttrpc/server.hpp"

namespace kata::shim::detail {

/// What the serving process starts with, prepared before any factory code runs.
struct ServeContext {
  Arguments arguments;
  std::filesystem::path bundle;       ///< the working directory `start` gave us
  std::filesystem::path socket_path;  ///< removed at exit
  UniqueFd listener;                  ///< inherited through KATA_RUNTIME_BIND_FD
  std::string config_path;            ///< from `start`'s stdin, may be empty
  std::string ttrpc_address;          ///< TTRPC_ADDRESS, may be empty
};

/// The TaskService as the serve loop drives it.
struct ServiceControl {
  std::function<Task<void>()> wait_for_shutdown_request;
  std::function<void()> request_shutdown;
  std::function<Task<void>()> stop;
};

/// Bounds of the exit sequence. A runtime that does not stop in time is abandoned: the process
/// exits anyway (and `shim delete`, which containerd runs for a vanished shim, cleans up).
struct ServeTimeouts {
  std::chrono::milliseconds runtime_stop{10000};
  std::chrono::milliseconds server_drain{2000};
  std::chrono::milliseconds event_drain{2000};
};

/// Serves on context.listener until the service asks for shutdown (or SIGINT), then: stop()
/// (bounded), drain the server, drain the events, remove the socket file. Returns 0 after a
/// clean exit; after an abandoned stop the process exits at once with status 1, without running
/// destructors over state that is still in use.
int serve_until_shutdown(asio::io_context& io, ttrpc::Server& server, EventPublisher& events,
                         ServiceControl control, ServeContext context, ServeTimeouts timeouts = {});

using ServeFunction = int (*)(ServeContext&&);
using CleanupFunction = Task<void> (*)(const DeleteContext&);

/// The binary: parse, then -version, start, delete, or serve (through `serve`). Never throws.
int run_main(int argc, char** argv, ServeFunction serve, CleanupFunction cleanup) noexcept;

}  // namespace kata::shim::detail
