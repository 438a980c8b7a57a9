#include "kata/runtime/process_io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "kata/core/error.hpp"
#include "kata/log/log.hpp"

namespace kata::runtime {
namespace {

constexpr std::uint32_t kChunk = 32 * 1024;
// containerd's shims wait for a logger without a bound; a logger that never gets ready must
// not hold a Create forever.
constexpr auto logger_ready_timeout = std::chrono::seconds(10);
// A logger that does not exit after end-of-file on its input is killed after this.
constexpr auto logger_exit_grace = std::chrono::seconds(5);

// containerd passes plain FIFO paths, fifo:// or file:// URIs, or binary:// logger commands.
struct Target {
  enum class Kind { fifo, file, binary } kind;
  std::string path;
};

Target parse_target(const std::string& uri) {
  constexpr std::string_view fifo = "fifo://";
  constexpr std::string_view file = "file://";
  constexpr std::string_view binary = "binary://";
  if (uri.starts_with(fifo)) return {Target::Kind::fifo, uri.substr(fifo.size())};
  if (uri.starts_with(file)) return {Target::Kind::file, uri.substr(file.size())};
  if (uri.starts_with(binary)) return {Target::Kind::binary, uri.substr(binary.size())};
  return {Target::Kind::fifo, uri};
}

// binary:///path/to/logger?key=value&flag -> program and its arguments ("key" "value" "flag").
std::pair<std::string, std::vector<std::string>> parse_logger(const std::string& uri, std::string_view rest) {
  const auto query_at = rest.find('?');
  std::string program(rest.substr(0, query_at));
  if (program.empty() || program.front() != '/') {
    fail(Errc::invalid_argument, "stdio {}: the logger must be an absolute path", uri);
  }
  std::vector<std::string> arguments;
  if (query_at != std::string_view::npos) {
    std::string_view query = rest.substr(query_at + 1);
    while (!query.empty()) {
      const auto end = query.find('&');
      const std::string_view pair = query.substr(0, end);
      const auto equals = pair.find('=');
      if (!pair.empty()) arguments.emplace_back(pair.substr(0, equals));
      if (equals != std::string_view::npos && equals + 1 < pair.size()) arguments.emplace_back(pair.substr(equals + 1));
      query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    }
  }
  return {std::move(program), std::move(arguments)};
}

// A FIFO whose reader has not opened yet (containerd opens an exec's readers concurrently with
// the Exec call) gives ENXIO: nullopt, and the copy opens it later.
std::optional<UniqueFd> open_output(const std::string& uri) {
  const Target target = parse_target(uri);
  const int flags = target.kind == Target::Kind::file ? O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC
                                                      : O_WRONLY | O_NONBLOCK | O_CLOEXEC;
  UniqueFd fd(::open(target.path.c_str(), flags, 0640));
  if (!fd && errno == ENXIO && target.kind == Target::Kind::fifo) return std::nullopt;
  if (!fd) fail_errno(errno, "open stdio {}", target.path);
  return fd;
}

// How long an output FIFO may stay without a reader before its output is drained unread.
constexpr auto reader_wait = std::chrono::seconds(10);

}  // namespace

std::shared_ptr<ProcessIo> ProcessIo::open(Executor executor, agent::KataAgent& agent, ProcessId process,
                                           const Stdio& stdio, const std::string& namespace_name) {
  return std::make_shared<ProcessIo>(executor, agent, std::move(process), stdio, namespace_name);
}

ProcessIo::ProcessIo(Executor executor, agent::KataAgent& agent, ProcessId process, const Stdio& stdio,
                     const std::string& namespace_name)
    : executor_(executor), agent_(agent), process_(std::move(process)), output_done_(executor) {
  if (!stdio.stdin_path.empty()) {
    const Target target = parse_target(stdio.stdin_path);
    if (target.kind != Target::Kind::fifo) fail(Errc::not_supported, "stdin {}: only FIFOs are supported", stdio.stdin_path);
    UniqueFd read_end(::open(target.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!read_end) fail_errno(errno, "open stdin {}", target.path);
    stdin_.emplace(executor_, read_end.release());
  }
  if (parse_target(stdio.stdout_path).kind == Target::Kind::binary) {
    start_logger(stdio.stdout_path, namespace_name);
    return;
  }
  auto open_or_defer = [&](const std::string& uri, std::optional<Descriptor>& descriptor, std::string& deferred) {
    if (auto fd = open_output(uri)) {
      descriptor.emplace(executor_, fd->release());
    } else {
      deferred = parse_target(uri).path;
    }
  };
  if (!stdio.stdout_path.empty()) {
    open_or_defer(stdio.stdout_path, stdout_, stdout_deferred_);
  } else {
    discard_stdout_ = true;
  }
  // With a terminal the guest merges stderr into the pty: there is no separate stream to copy.
  if (!stdio.terminal) {
    if (!stdio.stderr_path.empty()) {
      open_or_defer(stdio.stderr_path, stderr_, stderr_deferred_);
    } else {
      discard_stderr_ = true;
    }
  }
}

void ProcessIo::start_logger(const std::string& uri, const std::string& namespace_name) {
  with_context(fmt::format("start logger {}", uri), [&] {
    auto [program, arguments] = parse_logger(uri, parse_target(uri).path);
    Pipe out = make_pipe();
    Pipe err = make_pipe();
    Pipe ready = make_pipe();
    SpawnOptions options;
    options.program = program;
    options.arguments = std::move(arguments);
    std::vector<std::string> environment;
    for (char** variable = environ; *variable != nullptr; ++variable) environment.emplace_back(*variable);
    environment.push_back("CONTAINER_ID=" + process_.container_id);
    environment.push_back("CONTAINER_NAMESPACE=" + namespace_name);
    options.environment = std::move(environment);
    options.extra_fds = {{out.read_end.get(), 3}, {err.read_end.get(), 4}, {ready.write_end.get(), 5}};
    logger_.emplace(ChildProcess::spawn(options));
    ready.write_end.reset();
    // Ready is the logger closing fd 5 (or exiting): end-of-file on our read end.
    pollfd waiting{ready.read_end.get(), POLLIN, 0};
    const int polled = ::poll(&waiting, 1, static_cast<int>(std::chrono::milliseconds(logger_ready_timeout).count()));
    if (polled == 0) fail(Errc::deadline_exceeded, "not ready within {} s", logger_ready_timeout.count());
    if (const auto exited = logger_->try_wait()) {
      fail(Errc::internal, "exited before it was ready (exit status {})", exited->as_exit_code());
    }
    stdout_.emplace(executor_, out.write_end.release());
    stderr_.emplace(executor_, err.write_end.release());
  });
}

Task<void> ProcessIo::finish_logger(std::shared_ptr<ProcessIo> self) {
  co_await self->output_done_.wait();
  boost::system::error_code ignored;
  for (auto* descriptor : {&self->stdout_, &self->stderr_}) {
    if (*descriptor) (*descriptor)->close(ignored);
  }
  asio::steady_timer grace(self->executor_, logger_exit_grace);
  grace.async_wait([logger = &*self->logger_](const boost::system::error_code& error) {
    if (!error) logger->signal(SIGKILL);
  });
  co_await self->logger_->wait(self->executor_);
  grace.cancel();
}

ProcessIo::~ProcessIo() = default;

void ProcessIo::start(Gate& gate) {
  if (started_) return;
  started_ = true;
  const bool has_stdout = stdout_ || !stdout_deferred_.empty() || discard_stdout_;
  const bool has_stderr = stderr_ || !stderr_deferred_.empty() || discard_stderr_;
  outputs_running_ = (has_stdout ? 1 : 0) + (has_stderr ? 1 : 0);
  if (outputs_running_ == 0) output_done_.set();
  auto log_failure = [container = process_.container_id](std::exception_ptr error) {
    log::Logger("io").with("container", container).warn("stdio copy ended: {}", describe(error));
  };
  if (has_stdout) gate.spawn(copy_output(shared_from_this(), false), log_failure);
  if (has_stderr) gate.spawn(copy_output(shared_from_this(), true), log_failure);
  if (stdin_) gate.spawn(copy_input(shared_from_this()), log_failure);
  if (logger_) gate.spawn(finish_logger(shared_from_this()), log_failure);
}

Task<void> ProcessIo::wait_output_done() { co_await output_done_.wait(); }

void ProcessIo::close_stdin() noexcept {
  stdin_close_requested_ = true;
  // Wakes a copy waiting for input; it forwards what is already in the FIFO and finishes.
  boost::system::error_code ignored;
  if (stdin_) stdin_->cancel(ignored);
}

void ProcessIo::abort() noexcept {
  aborted_ = true;
  boost::system::error_code ignored;
  for (auto* descriptor : {&stdin_, &stdout_, &stderr_}) {
    if (*descriptor) (*descriptor)->close(ignored);
  }
  output_done_.set();
}

void ProcessIo::output_finished() noexcept {
  if (--outputs_running_ <= 0) output_done_.set();
}

Task<void> ProcessIo::copy_output(std::shared_ptr<ProcessIo> self, bool is_stderr) {
  struct Finish {
    ProcessIo& io;
    ~Finish() { io.output_finished(); }
  } finish{*self};
  std::optional<Descriptor>& out = is_stderr ? self->stderr_ : self->stdout_;
  const std::string& deferred = is_stderr ? self->stderr_deferred_ : self->stdout_deferred_;
  if (!out && !deferred.empty()) {
    const auto give_up = std::chrono::steady_clock::now() + reader_wait;
    while (!self->aborted_ && std::chrono::steady_clock::now() < give_up) {
      UniqueFd fd(::open(deferred.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
      if (fd) {
        out.emplace(self->executor_, fd.release());
        break;
      }
      if (errno != ENXIO) break;
      asio::steady_timer retry(self->executor_, std::chrono::milliseconds(10));
      co_await retry.async_wait(asio::use_awaitable);
    }
    if (!out) {
      log::Logger("io")
          .with("container", self->process_.container_id)
          .warn("{}: no reader within {} s; the output is discarded", deferred, reader_wait.count());
    }
  }
  bool reader_gone = !out;
  grpc::ReadStreamRequest request;
  request.set_container_id(self->process_.container_id);
  request.set_exec_id(self->process_.is_init() ? std::string() : self->process_.exec_id);
  request.set_len(kChunk);
  while (!self->aborted_) {
    grpc::ReadStreamResponse chunk;
    try {
      // Not a ?: with a co_await in each branch: GCC 12 mis-destroys the temporaries of that form.
      if (is_stderr) {
        chunk = co_await self->agent_.read_stderr(request);
      } else {
        chunk = co_await self->agent_.read_stdout(request);
      }
    } catch (const Error&) {
      // The guest closed the stream (upstream's agent answers EOF with an error) or the VM is
      // gone; either way this stream is over.
      break;
    }
    if (chunk.data().empty()) break;
    if (reader_gone || self->aborted_) continue;  // keep draining the guest so it never blocks
    boost::system::error_code error;
    co_await asio::async_write(*out, asio::buffer(chunk.data()), asio::redirect_error(asio::use_awaitable, error));
    if (error) reader_gone = true;
  }
  // End-of-file for the reader now, not when the process record goes: CRI's ExecSync waits for
  // it before it deletes the exec.
  boost::system::error_code ignored;
  if (out && !self->logger_) out->close(ignored);
}

Task<void> ProcessIo::copy_input(std::shared_ptr<ProcessIo> self) {
  std::string buffer(kChunk, '\0');
  grpc::WriteStreamRequest request;
  request.set_container_id(self->process_.container_id);
  request.set_exec_id(self->process_.is_init() ? std::string() : self->process_.exec_id);
  // Readiness first, then a read of our own: a FIFO whose writer has not connected yet reads as
  // end-of-file, and Asio's speculative read would take that for the end of the input. Linux
  // reports a FIFO reader readable only once a writer has come (with data, or gone again:
  // POLLHUP is suppressed until a writer was seen), so a 0-byte read after readiness is the
  // real end. Clients that close their end before a Create finished never send CloseIO (ctr
  // sets its closer only after NewTask returns); this sees their end-of-file all the same.
  // Readiness is the level from poll(2), checked before every wait: Asio's epoll is
  // edge-triggered and its waits are not speculative, so an edge that came while no wait was
  // queued (input written before Start) would otherwise be lost.
  const int fd = self->stdin_->native_handle();
  bool draining = false;
  while (!self->aborted_) {
    if (!draining) {
      pollfd level{fd, POLLIN, 0};
      if (::poll(&level, 1, 0) == 0) {
        boost::system::error_code error;
        co_await self->stdin_->async_wait(Descriptor::wait_read, asio::redirect_error(asio::use_awaitable, error));
        // CloseIO: forward what the FIFO holds now, then end.
        draining = self->stdin_close_requested_;
        if (error && !draining) break;
        continue;
      }
    }
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) {
      if (draining) break;
      continue;
    }
    if (got <= 0) break;
    std::string_view pending(buffer.data(), static_cast<std::size_t>(got));
    while (!pending.empty()) {
      request.set_data(std::string(pending));
      const auto written = co_await self->agent_.write_stdin(request);
      if (written.len() == 0) fail(Errc::unavailable, "agent accepted no stdin bytes for {}", self->process_.container_id);
      pending.remove_prefix(std::min<std::size_t>(written.len(), pending.size()));
    }
  }
  if (self->aborted_) co_return;
  grpc::CloseStdinRequest close;
  close.set_container_id(self->process_.container_id);
  close.set_exec_id(self->process_.is_init() ? std::string() : self->process_.exec_id);
  co_await self->agent_.close_stdin(close);
}

}  // namespace kata::runtime
