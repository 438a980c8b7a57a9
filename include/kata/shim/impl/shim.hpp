// Template bodies of kata/shim/shim.hpp.
#pragma once

#include <memory>
#include <utility>

#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "kata/shim/detail/serve.hpp"

namespace kata::shim {
namespace detail {

template <RuntimeFactory Factory>
int serve(ServeContext&& context) {
  asio::io_context io(1);
  const Executor executor = io.get_executor();

  EventPublisherOptions event_options;
  event_options.ttrpc_address = context.ttrpc_address;
  event_options.namespace_name = context.arguments.namespace_name;
  auto events = std::make_shared<EventPublisher>(executor, std::move(event_options));

  TaskServiceOptions options;
  options.sandbox_id = context.arguments.id;
  options.namespace_name = context.arguments.namespace_name;
  options.default_config_path = context.config_path;
  auto service = std::make_shared<TaskService<Factory>>(executor, std::move(options), events);

  // Declared after the service: destroyed first, releasing its share of the service.
  ttrpc::Server server(executor);
  containerd::task::v2::register_service(server, service);

  ServiceControl control;
  control.wait_for_shutdown_request = [service] { return service->wait_for_shutdown_request(); };
  control.request_shutdown = [service] { service->request_shutdown(); };
  control.stop = [service] { return service->stop(); };
  return serve_until_shutdown(io, server, *events, std::move(control), std::move(context));
}

template <RuntimeFactory Factory>
Task<void> cleanup_after_dead_shim(const DeleteContext& context) {
  return Factory::cleanup_after_dead_shim(context);
}

}  // namespace detail

template <RuntimeFactory Factory>
int run(int argc, char** argv) {
  return detail::run_main(argc, argv, &detail::serve<Factory>, &detail::cleanup_after_dead_shim<Factory>);
}

}  // namespace kata::shim
