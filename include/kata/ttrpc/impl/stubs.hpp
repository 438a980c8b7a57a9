// Template bodies for kata/ttrpc/stubs.hpp.
#pragma once

#include <utility>

namespace kata::ttrpc {

namespace stubs::detail {

template <class Message>
Message parse_or_fail(std::string_view bytes, Errc code, std::string_view what) {
  Message message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    fail(code, "ttrpc {}: malformed {}", what, message.GetTypeName());
  }
  return message;
}

template <class Response>
Task<Response> finish_unary(Task<std::string> call, std::string_view method) {
  const std::string bytes = co_await std::move(call);
  co_return parse_or_fail<Response>(bytes, Errc::internal, method);
}

template <class Request, class Response, class Impl, class Handler>
Task<std::string> serve_unary(std::shared_ptr<Impl> implementation, Handler handler, std::string_view bytes,
                              const CallContext& context) {
  const Request request = parse_or_fail<Request>(bytes, Errc::invalid_argument, context.method());
  const Response response = co_await ((*implementation).*handler)(request, context);
  co_return response.SerializeAsString();
}

template <class Request, class Response, class Impl, class Handler>
Task<std::optional<std::string>> serve_stream(std::shared_ptr<Impl> implementation, Handler handler,
                                              ServerStream& stream, const CallContext& context) {
  TypedServerStream<Request, Response> typed(stream);
  const std::optional<Response> last = co_await ((*implementation).*handler)(typed, context);
  if (!last) co_return std::nullopt;
  co_return last->SerializeAsString();
}

}  // namespace stubs::detail

template <class Send, class Receive>
Task<void> TypedClientStream<Send, Receive>::send(const Send& message) {
  return stream_.send(message.SerializeAsString());
}

template <class Send, class Receive>
Task<std::optional<Receive>> TypedClientStream<Send, Receive>::recv() {
  std::optional<std::string> bytes = co_await stream_.recv();
  if (!bytes) co_return std::nullopt;
  co_return stubs::detail::parse_or_fail<Receive>(*bytes, Errc::internal, "stream");
}

template <class Receive, class Send>
Task<std::optional<Receive>> TypedServerStream<Receive, Send>::recv() {
  std::optional<std::string> bytes = co_await stream_->recv();
  if (!bytes) co_return std::nullopt;
  co_return stubs::detail::parse_or_fail<Receive>(*bytes, Errc::invalid_argument, "stream");
}

template <class Receive, class Send>
Task<void> TypedServerStream<Receive, Send>::send(const Send& message) {
  return stream_->send(message.SerializeAsString());
}

namespace stubs {

template <class Response, class Request>
Task<Response> unary_call(Client& client, std::string_view service, std::string_view method, const Request& request,
                          CallOptions options) {
  return detail::finish_unary<Response>(client.call(service, method, request.SerializeAsString(), std::move(options)),
                                        method);
}

template <class Request, class Response>
Task<TypedClientStream<Request, Response>> open_stream(Client& client, std::string_view service,
                                                       std::string_view method, StreamDesc desc, const Request* first,
                                                       CallOptions options) {
  std::optional<std::string> first_bytes;
  if (first != nullptr) first_bytes = first->SerializeAsString();
  ClientStream stream = co_await client.open_stream(service, method, desc, std::move(first_bytes), std::move(options));
  co_return TypedClientStream<Request, Response>(std::move(stream));
}

template <class Impl, class Request, class Response>
void add_unary(ServiceDefinition& definition, std::string method, std::shared_ptr<Impl> implementation,
               Task<Response> (Impl::*handler)(const Request&, const CallContext&)) {
  definition.add_unary(std::move(method), [implementation = std::move(implementation), handler](
                                              std::string_view bytes, const CallContext& context) {
    return detail::serve_unary<Request, Response>(implementation, handler, bytes, context);
  });
}

template <class Impl, class Request, class Response>
void add_stream(ServiceDefinition& definition, std::string method, StreamDesc desc,
                std::shared_ptr<Impl> implementation,
                Task<std::optional<Response>> (Impl::*handler)(TypedServerStream<Request, Response>&,
                                                               const CallContext&)) {
  definition.add_stream(std::move(method), desc,
                        [implementation = std::move(implementation), handler](ServerStream& stream,
                                                                              const CallContext& context) {
                          return detail::serve_stream<Request, Response>(implementation, handler, stream, context);
                        });
}

}  // namespace stubs
}  // namespace kata::ttrpc
