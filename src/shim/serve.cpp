// The serving shim's main loop and its exit sequence.
#include <csignal>
#include <cstdlib>
#include <memory>
#include <system_error>

#include <boost/asio/signal_set.hpp>

#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"
#include "kata/log/log.hpp"
#include "kata/shim/detail/serve.hpp"

namespace kata::shim::detail {
namespace {

// Runs `work` as a coroutine of its own and waits at most `timeout` for it. On timeout the work
// keeps its frame (it is abandoned, not destroyed) and false is returned.
Task<bool> run_with_deadline(Task<void> work, std::chrono::milliseconds timeout, const log::Logger& logger,
                             std::string_view what) {
  const auto executor = co_await asio::this_coro::executor;
  auto done = std::make_shared<AsyncEvent>(executor);
  asio::co_spawn(executor, std::move(work), [done, logger, what](std::exception_ptr error) {
    if (error) logger.error("{} failed: {}", what, describe(error));
    done->set();
  });
  const bool finished = co_await done->wait_for(timeout);
  if (!finished) logger.error("{} did not finish within {} ms; exiting anyway", what, timeout.count());
  co_return finished;
}

}  // namespace

int serve_until_shutdown(asio::io_context& io, ttrpc::Server& server, EventPublisher& events,
                         ServiceControl control, ServeContext context, ServeTimeouts timeouts) {
  const log::Logger logger = log::Logger("shim");
  server.serve_listener(std::move(context.listener));
  logger.info("serving on {}", context.socket_path.string());

  asio::signal_set interrupts(io, SIGINT);
  interrupts.async_wait([&](const boost::system::error_code& error, int) {
    if (error) return;
    logger.info("SIGINT: shutting down");
    control.request_shutdown();
  });

  bool clean = false;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        co_await control.wait_for_shutdown_request();
        logger.info("shutting down");
        const bool stopped = co_await run_with_deadline(control.stop(), timeouts.runtime_stop, logger, "stopping the runtime");
        co_await server.shutdown(timeouts.server_drain);
        co_await events.close(timeouts.event_drain);
        std::error_code ignored;
        std::filesystem::remove(context.socket_path, ignored);
        boost::system::error_code cancel_error;
        interrupts.cancel(cancel_error);
        clean = stopped;
        // An abandoned stop may still hold timers or sockets: the loop must end regardless.
        io.stop();
      },
      [&](std::exception_ptr error) {
        if (error) logger.error("exit sequence failed: {}", describe(error));
        io.stop();
      });

  io.run();
  if (!clean) {
    std::error_code ignored;
    std::filesystem::remove(context.socket_path, ignored);
    logger.error("exiting with runtime work still pending");
    std::_Exit(1);
  }
  logger.info("shim exits");
  return 0;
}

}  // namespace kata::shim::detail
