#include "kata/resource/share_fs/virtiofsd.hpp"

#include <fcntl.h>

#include "kata/core/child_process.hpp"
#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"
#include "resource/share_fs/pipe_reader.hpp"

namespace kata::resource {

std::string_view to_string(VirtiofsdFlavor flavor) noexcept {
  switch (flavor) {
    case VirtiofsdFlavor::qemu_c:
      return "QEMU C virtiofsd";
    case VirtiofsdFlavor::rust:
      return "Rust virtiofsd";
  }
  return "unknown virtiofsd";
}

VirtiofsdFlavor virtiofsd_flavor_from_help(std::string_view help_text) {
  // Checked first: the Rust daemon's help also mentions its C-compatible "-o" options.
  if (help_text.find("--shared-dir") != std::string_view::npos) return VirtiofsdFlavor::rust;
  if (help_text.find("source=") != std::string_view::npos) return VirtiofsdFlavor::qemu_c;
  fail(Errc::failed_precondition,
       "its --help documents neither --shared-dir (Rust virtiofsd) nor -o source= (QEMU's C virtiofsd)");
}

Task<VirtiofsdFlavor> detect_virtiofsd_flavor(Executor executor, std::filesystem::path daemon,
                                              std::chrono::milliseconds timeout) {
  const std::string what = fmt::format("probe {} --help", daemon.string());
  try {
    Pipe output = make_pipe();
    if (::fcntl(output.read_end.get(), F_SETFL, O_NONBLOCK) != 0) fail_errno(errno, "set O_NONBLOCK");
    SpawnOptions options;
    options.program = daemon;
    options.arguments = {"--help"};
    options.stdout_fd = output.write_end.get();
    options.stderr_fd = output.write_end.get();
    ChildProcess probe = ChildProcess::spawn(options);
    output.write_end.reset();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto help = co_await detail::read_pipe_until(executor, output.read_end.get(), std::string_view(), deadline, what);
    co_await probe.wait(executor);
    co_return virtiofsd_flavor_from_help(help.text);
  } catch (...) {
    rethrow_with_context(what);
  }
}

std::vector<std::string> virtiofsd_arguments(VirtiofsdFlavor flavor, const VirtiofsdSettings& settings) {
  std::vector<std::string> arguments;
  if (flavor == VirtiofsdFlavor::qemu_c) {
    std::string cache = settings.cache;
    if (cache == "never") cache = "none";
    if (cache != "none" && cache != "auto" && cache != "always") {
      fail(Errc::invalid_argument, "virtio_fs_cache = \"{}\" is not supported by {}; allowed: never, auto, always",
           settings.cache, to_string(flavor));
    }
    arguments = {"--socket-path=" + settings.socket.string(), "-o", "source=" + settings.shared_dir.string(), "-o",
                 "cache=" + cache};
  } else {
    const std::string& cache = settings.cache;
    if (cache != "never" && cache != "auto" && cache != "always" && cache != "metadata") {
      fail(Errc::invalid_argument,
           "virtio_fs_cache = \"{}\" is not supported by {}; allowed: never, auto, always, metadata", cache,
           to_string(flavor));
    }
    arguments = {"--socket-path", settings.socket.string(), "--shared-dir", settings.shared_dir.string(), "--cache",
                 cache};
  }
  arguments.insert(arguments.end(), settings.extra_args.begin(), settings.extra_args.end());
  if (settings.xattr) {
    if (flavor == VirtiofsdFlavor::qemu_c) {
      arguments.insert(arguments.end(), {"-o", "xattr"});
    } else {
      arguments.emplace_back("--xattr");
    }
  }
  return arguments;
}

}  // namespace kata::resource
