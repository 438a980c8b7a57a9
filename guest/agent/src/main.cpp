// kata-agent: the guest side. As /init of the initramfs it brings the VM up (early mounts,
// modules, reaping), finds its virtio-serial channel, and serves the host over it.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/thread_pool.hpp>

#include "kata/agent_guest/agent_options.hpp"
#include "kata/agent_guest/agent_service.hpp"
#include "kata/agent_guest/channel_sessions.hpp"
#include "kata/agent_guest/cgroup.hpp"
#include "kata/agent_guest/container_process.hpp"
#include "kata/agent_guest/log.hpp"
#include "kata/agent_guest/network.hpp"
#include "kata/agent_guest/reaper.hpp"
#include "kata/agent_guest/system_init.hpp"
#include "kata/agent_guest/virtio_port.hpp"
#include "kata/agent_guest/vsock.hpp"
#include "kata/core/error.hpp"
#include "kata/ttrpc/server.hpp"

namespace {

using namespace std::chrono_literals;
namespace ag = kata::agent_guest;

constexpr auto channel_appear_timeout = 10s;
// Handlers that block (spawn, start, mounts, freeze, CPU onlining) run here, never on the
// executor; two cores' worth of concurrent blocking calls is more than a pod makes.
constexpr std::size_t blocking_threads = 4;

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void open_console_log() {
  kata::UniqueFd console(::open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC));
  if (console) ag::add_log_sink(std::move(console), ag::LogFormat::text);
}

// The log port is optional (the shim adds it only when it forwards guest logs).
void open_log_port(const ag::AgentOptions& options) {
  if (options.log_port_name.empty()) return;
  const auto device = ag::find_virtio_port(options.log_port_name);
  if (!device) return;
  kata::UniqueFd fd(::open(device->c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    ag::log(ag::LogLevel::warn, "open log port {}: {}", device->string(), std::strerror(errno));
    return;
  }
  ag::add_log_sink(std::move(fd), ag::LogFormat::json);
}

// Smoke mode: containers from the guest's own busybox through the same path CreateContainer
// takes (new namespaces, OCI mounts, pivot_root, a limited cgroup), so a boot test proves the
// guest can run one, enforce its limits and see its OOM kill. Each result is one marker word.
ag::SpawnRequest smoke_request(const std::string& script, const std::filesystem::path& cgroup) {
  const std::filesystem::path rootfs = "/run/kata-smoke/rootfs";
  for (const char* dir : {"bin", "proc", "dev"}) std::filesystem::create_directories(rootfs / dir);
  ag::SpawnRequest request;
  request.process.args = {"/bin/sh", "-c", script};
  request.process.env = {"PATH=/bin"};
  request.rootfs = ag::RootfsSpec{};
  request.rootfs->path = rootfs;
  request.rootfs->hostname = "smoke";
  request.rootfs->mounts = {{"/bin", "bind", "/bin", {"rbind", "ro"}},
                            {"/proc", "proc", "proc", {"nosuid", "nodev", "noexec"}},
                            {"/dev", "tmpfs", "tmpfs", {"nosuid", "mode=755"}}};
  request.rootfs->devices = {"/dev/null", "/dev/zero"};
  request.namespaces = {{CLONE_NEWNS, {}}, {CLONE_NEWPID, {}}, {CLONE_NEWUTS, {}}, {CLONE_NEWIPC, {}}};
  request.cgroup = cgroup;
  return request;
}

std::string run_smoke(const ag::SpawnRequest& request, kata::ExitStatus& status) {
  ag::ContainerProcess process = ag::ContainerProcess::spawn(request);
  process.stdin_writer.reset();
  std::string out;
  char buffer[256];
  for (ssize_t n; (n = ::read(process.stdout_reader.get(), buffer, sizeof buffer)) > 0;) out.append(buffer, n);
  status = process.exit_state()->wait_blocking();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string smoke_containers() {
  std::string report;
  try {
    const ag::Cgroup limited = ag::Cgroup::create("/sys/fs/cgroup", "kata-smoke");
    limited.apply({.memory_limit = 32 << 20, .cpu_quota = 50000, .cpu_period = 100000, .pids_limit = 64});
    kata::ExitStatus status;
    const std::string out = run_smoke(
        smoke_request("echo $(hostname)/pid=$$/$(cat /proc/self/cgroup)",
                      limited.path()),
        status);
    const ag::CgroupStats stats = limited.stats();
    report = fmt::format("container={} exit={} cgroup=mem:{},pids:{}", out, status.as_exit_code(),
                         stats.memory_limit.value_or(0), stats.pids_limit.value_or(0));

    const ag::Cgroup small = ag::Cgroup::create("/sys/fs/cgroup", "kata-smoke-oom");
    small.apply({.memory_limit = 16 << 20, .memory_swap = 16 << 20});
    const kata::UniqueFd events = small.watch_memory_events();
    (void)run_smoke(smoke_request("a=$(head -c 64000000 /dev/zero | tr '\\0' x); echo survived", small.path()),
                    status);
    pollfd changed{events.get(), POLLIN, 0};
    const bool notified = ::poll(&changed, 1, 1000) == 1;
    report += fmt::format(" oom=exit:{},events:{},notified:{}", status.as_exit_code(), small.stats().oom_events,
                          notified ? 1 : 0);
    std::vector<std::string> links;
    for (const auto& link : ag::Netlink::open().list_interfaces()) links.push_back(link.name);
    report += fmt::format(" links={}", fmt::join(links, ","));
  } catch (const std::exception& error) {
    report += " smoke-error=\"" + kata::describe(error) + "\"";
  }
  return report;
}

[[noreturn]] void serve(const ag::VirtioPort& port, std::optional<kata::UniqueFd> vsock, bool is_init) {
  kata::asio::io_context io;
  kata::asio::thread_pool blocking(blocking_threads);
  ag::AgentServiceOptions options;
  options.init_daemon = is_init;
  const ag::AgentServices services = ag::make_agent_services(io.get_executor(), blocking, options);
  kata::ttrpc::Server channel_server(io.get_executor());
  ag::register_agent_services(channel_server, services);
  std::optional<kata::ttrpc::Server> vsock_server;
  if (vsock) {
    vsock_server.emplace(io.get_executor());
    ag::register_agent_services(*vsock_server, services);
    vsock_server->serve_listener(std::move(*vsock));
  }
  std::exception_ptr failure;
  ag::ChannelSessions channel(io.get_executor(), channel_server, port);
  kata::asio::co_spawn(io, channel.run(), [&](std::exception_ptr error) {
    failure = error;
    io.stop();
  });
  io.run();
  std::rethrow_exception(failure);
}

int run() {
  const bool is_init = ::getpid() == 1;
  if (is_init) {
    ag::leave_initramfs_root();
    ag::mount_early_filesystems("/");
    ag::enable_cgroup_controllers("/sys/fs/cgroup");
  } else {
    ag::become_subreaper();
  }
  open_console_log();
  const ag::AgentOptions options = ag::parse_agent_options(read_file("/proc/cmdline"));
  ag::set_log_level(options.log_level);
  for (const auto& word : options.ignored) ag::log(ag::LogLevel::warn, "ignoring unknown option {}", word);

  const ag::ModuleLoadReport modules = ag::load_modules("/etc/modules.order", "/lib/modules");
  ag::log(ag::LogLevel::info, "modules: {} loaded, {} already present, {} failed", modules.loaded.size(),
          modules.already.size(), modules.failed.size());
  (void)ag::Reaper::instance();

  const auto channel = ag::wait_for_virtio_port(options.channel_name, channel_appear_timeout);
  open_log_port(options);
  const ag::VirtioPort port = ag::VirtioPort::open(channel);
  auto vsock = ag::listen_vsock(options.vsock_port);
  ag::log(ag::LogLevel::info, "channel {} on {}; vsock port {} {}", options.channel_name, channel.string(),
          options.vsock_port, vsock ? "listening" : "unavailable");

  if (options.smoke_test) {
    // The marker the image smoke test (guest/test/boot-smoke.sh) waits for, on the console
    // whatever the log level.
    const std::string marker = fmt::format(
        "KATA-GUEST-SMOKE init=agent modules_loaded={} modules_failed={} channel={} {} loaded=[{}]\n",
        modules.loaded.size() + modules.already.size(), modules.failed.size(), channel.string(), smoke_containers(),
        fmt::join(ag::loaded_module_names(), ","));
    kata::UniqueFd console(::open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC));
    [[maybe_unused]] auto written = ::write(console ? console.get() : 1, marker.data(), marker.size());
    if (is_init) ag::power_off();
    return modules.failed.empty() ? 0 : 1;
  }
  serve(port, std::move(vsock), is_init);
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& error) {
    ag::log(ag::LogLevel::error, "kata-agent: {}", kata::describe(error));
    // As PID 1, returning would panic the kernel with nothing on the console but "attempted to
    // kill init"; power off after the cause has been logged instead.
    if (::getpid() == 1) ag::power_off();
    return 1;
  }
}
