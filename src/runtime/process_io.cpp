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

UniqueFd open_output(const std::string& uri) {
  const Target target = parse_target(uri);
  const int flags = target.kind == Target::Kind::file ? O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC
                                                      : O_WRONLY | O_NONBLOCK | O_CLOEXEC;
  UniqueFd fd(::open(target.path.c_str(), flags, 0640));
  if (!fd) fail_errno(errno, "open stdio {}", target.path);
  return fd;
}

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
    stdin_hold_.reset(::open(target.path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (!stdin_hold_) fail_errno(errno, "open stdin {} for writing", target.path);
    stdin_.emplace(executor_, read_end.release());
  }
  if (parse_target(stdio.stdout_path).kind == Target::Kind::binary) {
    start_logger(stdio.stdout_path, namespace_name);
    return;
  }
  if (!stdio.stdout_path.empty()) stdout_.emplace(executor_, open_output(stdio.stdout_path).release());
  // With a terminal the guest merges stderr into the pty: there is no separate stream to copy.
  if (!stdio.stderr_path.empty() && !stdio.terminal) stderr_.emplace(executor_, open_output(stdio.stderr_path).release());
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
  outputs_running_ = (stdout_ ? 1 : 0) + (stderr_ ? 1 : 0);
  if (outputs_running_ == 0) output_done_.set();
  auto log_failure = [container = process_.container_id](std::exception_ptr error) {
    log::Logger("io").with("container", container).warn("stdio copy ended: {}", describe(error));
  };
  if (stdout_) gate.spawn(copy_output(shared_from_this(), false), log_failure);
  if (stderr_) gate.spawn(copy_output(shared_from_this(), true), log_failure);
  if (stdin_) gate.spawn(copy_input(shared_from_this()), log_failure);
  if (logger_) gate.spawn(finish_logger(shared_from_this()), log_failure);
}

Task<void> ProcessIo::wait_output_done() { co_await output_done_.wait(); }

void ProcessIo::close_stdin() noexcept { stdin_hold_.reset(); }

void ProcessIo::abort() noexcept {
  aborted_ = true;
  stdin_hold_.reset();
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
  Descriptor& out = is_stderr ? *self->stderr_ : *self->stdout_;
  bool reader_gone = false;
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
    co_await asio::async_write(out, asio::buffer(chunk.data()), asio::redirect_error(asio::use_awaitable, error));
    if (error) reader_gone = true;
  }
}

Task<void> ProcessIo::copy_input(std::shared_ptr<ProcessIo> self) {
  std::string buffer(kChunk, '\0');
  grpc::WriteStreamRequest request;
  request.set_container_id(self->process_.container_id);
  request.set_exec_id(self->process_.is_init() ? std::string() : self->process_.exec_id);
  for (;;) {
    boost::system::error_code error;
    const std::size_t got =
        co_await self->stdin_->async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, error));
    if (error || got == 0 || self->aborted_) break;
    std::string_view pending(buffer.data(), got);
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
