// Template body of kata::shim::run_ctl (see kata/shim/ctl.hpp).
#pragma once

#include <csignal>
#include <cstdio>
#include <memory>

#include <boost/asio/signal_set.hpp>

#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"
#include "kata/shim/detail/ctl.hpp"

namespace kata::shim {

template <RuntimeFactory Factory>
int run_ctl(int argc, char** argv) {
  int exit_code = 0;
  const auto options = detail::parse_ctl_options(argc, argv, exit_code);
  if (!options) return exit_code;

  constexpr int runtime_failed = 125;
  int status = runtime_failed;
  asio::io_context io;
  auto body = [&]() -> Task<void> {
    const Executor executor = io.get_executor();
    detail::CtlStdio output = detail::CtlStdio::create();
    SandboxSetup setup;
    setup.sandbox_id = options->id;
    setup.bundle = options->bundle;
    setup.namespace_name = options->namespace_name;
    setup.config_path = options->config_path;
    setup.on_oom = [](const std::string& container) { std::fprintf(stderr, "shim-ctl: OOM kill in %s\n", container.c_str()); };
    runtime::ProcessId init;
    init.container_id = options->id;

    std::unique_ptr<typename Factory::runtime_type> runtime;
    std::exception_ptr failure;
    asio::signal_set signals(executor, SIGINT, SIGTERM);
    bool copying = false;
    bool forwarding = false;
    auto copies_done = std::make_shared<AsyncEvent>(executor);
    auto forwarding_done = std::make_shared<AsyncEvent>(executor);
    try {
      runtime = co_await Factory::create(executor, std::move(setup));
      runtime::CreateContainerRequest request;
      request.container_id = options->id;
      request.bundle = options->bundle;
      request.stdio = output.stdio();
      request.config_path = options->config_path;
      request.rootfs = options->rootfs;
      co_await runtime->create_container(std::move(request));
      copying = true;
      asio::co_spawn(executor, output.copy_to_terminal(executor),
                     [copies_done](std::exception_ptr) { copies_done->set(); });
      co_await runtime->start_process(init);

      auto forward_signals = [&]() -> Task<void> {
        for (int received = 0;; ++received) {
          boost::system::error_code error;
          co_await signals.async_wait(asio::redirect_error(asio::use_awaitable, error));
          if (error) co_return;
          const int signal = received == 0 ? SIGTERM : SIGKILL;
          co_await runtime->kill_process(init, signal, false);
        }
      };
      forwarding = true;
      asio::co_spawn(executor, forward_signals(), [forwarding_done](std::exception_ptr) { forwarding_done->set(); });
      const runtime::ExitInfo exit = co_await runtime->wait_process(init);
      status = static_cast<int>(exit.exit_status);
      (void)co_await runtime->delete_process(init);
    } catch (...) {
      failure = std::current_exception();
    }
    boost::system::error_code ignored;
    signals.cancel(ignored);
    // The forwarder uses the runtime: it must be over before the runtime goes.
    if (forwarding) co_await forwarding_done->wait();
    if (runtime) co_await runtime->shutdown();
    if (copying) co_await copies_done->wait();
    if (failure) {
      status = runtime_failed;
      std::fprintf(stderr, "shim-ctl: %s\n", describe(failure).c_str());
    }
  };
  asio::co_spawn(io, body(), asio::detached);
  io.run();
  return status;
}

}  // namespace kata::shim
