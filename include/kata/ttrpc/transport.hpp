// The byte stream a ttRPC connection runs over.
//
// ttRPC needs nothing from its transport but a reliable, ordered, full-duplex byte stream, so a
// Transport is built from any connected stream file descriptor:
//   - a unix stream socket (containerd <-> shim, shim <-> a virtio-serial chardev socket, hybrid
//     vsock after its "CONNECT <port>" handshake),
//   - an AF_VSOCK stream socket (shim <-> agent on QEMU),
//   - a character device or pipe pair end such as the guest's /dev/vport*p* (virtio-serial).
// Sockets are driven with send/recv (MSG_NOSIGNAL, so a vanished peer is an EPIPE error and never
// a SIGPIPE); other descriptors with read/write.
//
// Requirements on the descriptor (named requirement "TransportFd"):
//   - open, connected, in stream mode (SOCK_STREAM for sockets);
//   - ownership passes to the Transport, which puts it in non-blocking mode and closes it;
//   - nobody else reads from or writes to it afterwards.
//
// Thread-safety: a Transport is used from one executor at a time (one thread or a strand).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <system_error>
#include <vector>

#include <boost/asio/buffer.hpp>

#include "kata/core/asio.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::ttrpc {

class Transport {
 public:
  /// Takes ownership of a TransportFd. Throws kata::Error if the descriptor is not usable
  /// (closed, a listening socket, a datagram socket).
  Transport(Executor executor, UniqueFd fd);
  Transport(Transport&&) noexcept;
  Transport& operator=(Transport&&) noexcept;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  ~Transport();

  [[nodiscard]] Executor get_executor() const noexcept;

  /// Completes when at least one byte was read. Throws boost::system::system_error (eof when the
  /// peer closed, operation_aborted after close() or cancel()).
  [[nodiscard]] Task<std::size_t> read_some(asio::mutable_buffer buffer);

  /// Completes when all of `buffer` was written. Throws boost::system::system_error. The buffer
  /// must stay valid and unchanged until completion.
  [[nodiscard]] Task<void> write_all(asio::const_buffer buffer);

  /// Gathering form of write_all: the buffers are written in order, as one stream of bytes.
  [[nodiscard]] Task<void> write_all(std::vector<asio::const_buffer> buffers);

  /// One non-blocking write attempt; returns the bytes written (0 with `error` set to
  /// would_block when the kernel buffer is full). Never suspends.
  std::size_t try_write(asio::const_buffer buffer, boost::system::error_code& error) noexcept;
  /// Gathering form of try_write (one writev/sendmsg).
  std::size_t try_write(const std::vector<asio::const_buffer>& buffers, boost::system::error_code& error) noexcept;

  /// Aborts pending read_some/write_all with operation_aborted; the descriptor stays open.
  void cancel() noexcept;

  /// Closes the descriptor; pending operations complete with operation_aborted. Idempotent.
  void close() noexcept;

  [[nodiscard]] bool is_open() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Connects a unix stream socket to `path` (CLOEXEC). Throws kata::Error
/// ("connect <path>: <errno text>").
[[nodiscard]] Task<UniqueFd> connect_unix(Executor executor, const std::filesystem::path& path);

/// Creates a listening unix stream socket at `path` (a stale socket file left by a dead process
/// is replaced; any other existing file is an error). Throws kata::Error.
[[nodiscard]] UniqueFd listen_unix(const std::filesystem::path& path, int backlog = 128);

}  // namespace kata::ttrpc
