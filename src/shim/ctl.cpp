#include "kata/shim/detail/ctl.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"

namespace kata::shim::detail {
namespace fs = std::filesystem;

std::optional<CtlOptions> parse_ctl_options(int argc, char** argv, int& exit_code) {
  CtlOptions options;
  CLI::App app{"shim-ctl: run an OCI bundle in a VM through the runtime, without containerd"};
  app.add_option("--bundle", options.bundle, "bundle directory (config.json and rootfs/)")->required()->check(CLI::ExistingDirectory);
  app.add_option("--id", options.id, "container and sandbox id (default: the bundle's directory name)");
  app.add_option("--config", options.config_path, "configuration.toml (default: the runtime's search order)");
  app.add_option("--namespace", options.namespace_name, "containerd namespace to report (default: default)");
  std::vector<std::string> rootfs_mounts;
  app.add_option("--rootfs-mount", rootfs_mounts,
                 "TYPE,SOURCE[,OPTION...]: a rootfs mount as a snapshotter gives it (e.g. ext4,/dev/loop0,rw)");
  try {
    app.parse(argc, argv);
    for (const std::string& text : rootfs_mounts) {
      std::vector<std::string> fields;
      std::size_t start = 0;
      for (std::size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1) {
        fields.push_back(text.substr(start, comma - start));
      }
      fields.push_back(text.substr(start));
      if (fields.size() < 2 || fields[0].empty() || fields[1].empty()) {
        throw CLI::ValidationError("--rootfs-mount", "'" + text + "' is not TYPE,SOURCE[,OPTION...]");
      }
      options.rootfs.push_back(runtime::RootfsMount{
          .type = fields[0], .source = fields[1], .target = {}, .options = {fields.begin() + 2, fields.end()}});
    }
  } catch (const CLI::ParseError& error) {
    exit_code = app.exit(error);
    return std::nullopt;
  }
  options.bundle = fs::absolute(options.bundle).lexically_normal();
  if (options.id.empty()) options.id = options.bundle.has_filename() ? options.bundle.filename().string()
                                                                     : options.bundle.parent_path().filename().string();
  return options;
}

CtlStdio CtlStdio::create() {
  std::string pattern = (fs::temp_directory_path() / "kata-shim-ctl.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) fail_errno(errno, "create a directory for the stdio FIFOs");
  CtlStdio stdio{fs::path(pattern)};
  for (const char* name : {"stdout", "stderr"}) {
    const fs::path fifo = stdio.dir_ / name;
    if (::mkfifo(fifo.c_str(), 0600) != 0) fail_errno(errno, "mkfifo {}", fifo.string());
  }
  // Read ends first: the runtime opens the write ends non-blocking, which needs a reader.
  stdio.stdout_reader_.reset(::open((stdio.dir_ / "stdout").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  stdio.stderr_reader_.reset(::open((stdio.dir_ / "stderr").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!stdio.stdout_reader_ || !stdio.stderr_reader_) fail_errno(errno, "open the stdio FIFOs in {}", stdio.dir_.string());
  return stdio;
}

CtlStdio::~CtlStdio() {
  if (dir_.empty()) return;
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

runtime::Stdio CtlStdio::stdio() const {
  runtime::Stdio stdio;
  stdio.stdout_path = (dir_ / "stdout").string();
  stdio.stderr_path = (dir_ / "stderr").string();
  return stdio;
}

namespace {

Task<void> copy_fifo(asio::posix::stream_descriptor fifo, int out_fd) {
  std::array<char, 16 * 1024> buffer{};
  for (;;) {
    boost::system::error_code error;
    const std::size_t got =
        co_await fifo.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, error));
    if (error) co_return;  // end of file: every writer is gone
    for (std::size_t written = 0; written < got;) {
      const ssize_t n = ::write(out_fd, buffer.data() + written, got - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) co_return;  // our own stdout is gone; nothing left to show it to
      written += static_cast<std::size_t>(n);
    }
  }
}

}  // namespace

Task<void> CtlStdio::copy_to_terminal(Executor executor) {
  asio::posix::stream_descriptor out(executor, stdout_reader_.release());
  asio::posix::stream_descriptor err(executor, stderr_reader_.release());
  auto stderr_done = std::make_shared<AsyncEvent>(executor);
  asio::co_spawn(executor, copy_fifo(std::move(err), STDERR_FILENO),
                 [stderr_done](std::exception_ptr) { stderr_done->set(); });
  co_await copy_fifo(std::move(out), STDOUT_FILENO);
  co_await stderr_done->wait();
}

}  // namespace kata::shim::detail
