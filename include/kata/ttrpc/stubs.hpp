// The typed layer that protoc-gen-kata-ttrpc's generated stubs are written against: protobuf
// messages in and out of the byte-level Client and Server. Generated code calls these; hand
// written code normally uses the generated classes instead.
//
// Requirements on message types (named requirement "ProtoMessage"): a protobuf-generated C++
// message class (full or lite runtime): default constructible, ParseFromArray,
// SerializeToString, GetTypeName.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kata/core/asio.hpp"
#include "kata/core/error.hpp"
#include "kata/ttrpc/client.hpp"
#include "kata/ttrpc/server.hpp"

namespace kata::ttrpc {

/// A streaming call's client end with typed messages. Send: the request type; Receive: the
/// response type. Errors as ClientStream's; a message that does not parse is Errc::internal.
template <class Send, class Receive>
class TypedClientStream {
 public:
  explicit TypedClientStream(ClientStream stream) noexcept : stream_(std::move(stream)) {}

  [[nodiscard]] Task<void> send(const Send& message);
  [[nodiscard]] Task<void> close_send() { return stream_.close_send(); }
  /// std::nullopt once the server finished the stream.
  [[nodiscard]] Task<std::optional<Receive>> recv();

 private:
  ClientStream stream_;
};

/// A streaming call's server end with typed messages. Receive: the request type; Send: the
/// response type. A client message that does not parse is Errc::invalid_argument.
template <class Receive, class Send>
class TypedServerStream {
 public:
  explicit TypedServerStream(ServerStream& stream) noexcept : stream_(&stream) {}

  /// std::nullopt once the client closed its side.
  [[nodiscard]] Task<std::optional<Receive>> recv();
  [[nodiscard]] Task<void> send(const Send& message);

 private:
  ServerStream* stream_;
};

namespace stubs {

/// Serializes `request` at once (so it need not outlive the call), calls, parses the response.
/// `client` must outlive the returned task; `service` and `method` must be static strings.
template <class Response, class Request>
[[nodiscard]] Task<Response> unary_call(Client& client, std::string_view service, std::string_view method,
                                        const Request& request, CallOptions options);

/// Opens a streaming call; `first` (may be null) travels in the Request.
template <class Request, class Response>
[[nodiscard]] Task<TypedClientStream<Request, Response>> open_stream(Client& client, std::string_view service,
                                                                     std::string_view method, StreamDesc desc,
                                                                     const Request* first, CallOptions options);

/// Adds `method` to `definition`, dispatching to `(implementation.get()->*handler)`. The
/// implementation is shared by every call, so it lives as long as any call uses it.
template <class Impl, class Request, class Response>
void add_unary(ServiceDefinition& definition, std::string method, std::shared_ptr<Impl> implementation,
               Task<Response> (Impl::*handler)(const Request&, const CallContext&));

template <class Impl, class Request, class Response>
void add_stream(ServiceDefinition& definition, std::string method, StreamDesc desc,
                std::shared_ptr<Impl> implementation,
                Task<std::optional<Response>> (Impl::*handler)(TypedServerStream<Request, Response>&,
                                                               const CallContext&));

}  // namespace stubs
}  // namespace kata::ttrpc

#include "kata/ttrpc/impl/stubs.hpp"
