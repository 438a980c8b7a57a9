// grpc.AgentService: the registry of containers and processes, and one handler per RPC.
#include "kata/agent_guest/agent_service.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>

#include "kata/agent/network_conversion.hpp"
#include "kata/agent/oci_conversion.hpp"
#include "kata/agent_guest/cgroup.hpp"
#include "kata/agent_guest/container_process.hpp"
#include "kata/agent_guest/container_spec.hpp"
#include "kata/agent_guest/hotplug.hpp"
#include "kata/agent_guest/log.hpp"
#include "kata/agent_guest/network.hpp"
#include "kata/agent_guest/storage.hpp"
#include "kata/build_info.hpp"
#include "kata/core/async_event.hpp"
#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

using Empty = google::protobuf::Empty;
using Stream = asio::posix::stream_descriptor;
using namespace std::chrono_literals;

constexpr std::size_t max_read_chunk = 1 << 20;
constexpr std::size_t default_read_chunk = 32 << 10;
constexpr auto cpu_online_timeout = 30s;
constexpr std::chrono::seconds default_remove_timeout = 30s;

// One process of a container: its init or an exec. Lives on the executor's thread.
struct Process {
  Process(Executor executor, std::string container, std::string exec) :
      container_id(std::move(container)), exec_id(std::move(exec)), exited(std::move(executor)) {}

  [[nodiscard]] std::string name() const {
    return exec_id.empty() ? fmt::format("container {}", container_id)
                           : fmt::format("exec {} of container {}", exec_id, container_id);
  }

  std::string container_id;
  std::string exec_id;  ///< empty for the container's init
  ContainerProcess process;
  // With a terminal, input and output are the same pty master (a dup of the one the process
  // keeps for resizing); stderr is merged into it.
  std::shared_ptr<Stream> input;
  std::shared_ptr<Stream> output;
  std::shared_ptr<Stream> error;
  bool terminal = false;
  bool waited = false;  ///< a WaitProcess has returned its exit
  std::optional<ExitStatus> exit;
  AsyncEvent exited;
};
using ProcessPtr = std::shared_ptr<Process>;

// Follows memory.events of one container's cgroup; the kernel counts each OOM kill there.
struct OomWatch {
  std::string container_id;
  Stream events;
  std::uint64_t oom_kills = 0;
};

struct Container {
  enum class State { created, running, paused };

  std::string id;
  Cgroup cgroup;
  // Shared with the other containers that name the same mount point (a pod's emptyDir).
  std::vector<std::shared_ptr<StorageMount>> storages;
  ProcessPtr init;
  std::map<std::string, ProcessPtr, std::less<>> execs;
  std::set<std::string, std::less<>> execs_starting;
  std::shared_ptr<OomWatch> oom;
  State state = State::created;
  bool removing = false;
};
using ContainerPtr = std::shared_ptr<Container>;

std::shared_ptr<Stream> adopt_stream(Executor executor, UniqueFd fd) {
  if (!fd) return nullptr;
  return std::make_shared<Stream>(executor, fd.release());
}

void close_stream(const std::shared_ptr<Stream>& stream) noexcept {
  if (!stream) return;
  boost::system::error_code ignored;
  stream->close(ignored);
}

using agent::from_proto;
using agent::to_proto;

types::Interface to_proto(const NetworkInterface& link) {
  types::Interface out;
  out.set_device(link.name);
  out.set_name(link.name);
  for (const auto& address : link.addresses) *out.add_ipaddresses() = to_proto(address);
  out.set_mtu(link.mtu);
  out.set_hwaddr(link.hw_address);
  return out;
}

grpc::CgroupStats to_proto(const CgroupStats& stats) {
  grpc::CgroupStats out;
  auto* cpu = out.mutable_cpu_stats();
  // The host reports nanoseconds, as cgroup v1's cpuacct did; v2 counts microseconds.
  cpu->mutable_cpu_usage()->set_total_usage(stats.cpu_usage_usec * 1000);
  cpu->mutable_cpu_usage()->set_usage_in_kernelmode(stats.cpu_system_usec * 1000);
  cpu->mutable_cpu_usage()->set_usage_in_usermode(stats.cpu_user_usec * 1000);
  cpu->mutable_throttling_data()->set_throttled_periods(stats.cpu_throttled_periods);
  cpu->mutable_throttling_data()->set_throttled_time(stats.cpu_throttled_usec * 1000);
  auto* memory = out.mutable_memory_stats();
  memory->set_cache(stats.memory_file);
  memory->mutable_usage()->set_usage(stats.memory_usage.value_or(0));
  memory->mutable_usage()->set_max_usage(stats.memory_max_usage.value_or(0));
  memory->mutable_usage()->set_limit(stats.memory_limit.value_or(0));
  memory->mutable_usage()->set_failcnt(stats.oom_events);
  (*memory->mutable_stats())["anon"] = stats.memory_anon;
  (*memory->mutable_stats())["file"] = stats.memory_file;
  (*memory->mutable_stats())["oom_kill"] = stats.oom_events;
  out.mutable_pids_stats()->set_current(stats.pids_current.value_or(0));
  out.mutable_pids_stats()->set_limit(stats.pids_limit.value_or(0));
  return out;
}

void check_container_id(const std::string& id) {
  if (id.empty()) fail(Errc::invalid_argument, "container_id is empty");
  if (id.find('/') != std::string::npos || id == "." || id == "..") {
    fail(Errc::invalid_argument, "container_id '{}' must not contain '/' or be '.' or '..'", id);
  }
}

// CopyFile: the host sends a file in chunks; it is written next to its destination and renamed
// into place with the last chunk, so nobody sees a half-copied file.
void copy_file_chunk(const grpc::CopyFileRequest& request) {
  const std::filesystem::path path = request.path();
  if (!path.is_absolute()) fail(Errc::invalid_argument, "path '{}' is not absolute", request.path());
  if (request.offset() < 0 || request.file_size() < 0) {
    fail(Errc::invalid_argument, "{}: negative offset or size", request.path());
  }
  const mode_t dir_mode = request.dir_mode() != 0 ? request.dir_mode() & 07777 : 0755;
  std::filesystem::path dir;
  for (const auto& part : path.parent_path()) {
    dir /= part;
    if (::mkdir(dir.c_str(), dir_mode) != 0 && errno != EEXIST) fail_errno(errno, "mkdir {}", dir.string());
  }
  const mode_t type = request.file_mode() & S_IFMT;
  if (type == S_IFDIR) {
    if (::mkdir(path.c_str(), request.file_mode() & 07777) != 0 && errno != EEXIST) {
      fail_errno(errno, "mkdir {}", path.string());
    }
  } else if (type == S_IFLNK) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    if (::symlink(request.data().c_str(), path.c_str()) != 0) fail_errno(errno, "symlink {}", path.string());
    if (::lchown(path.c_str(), request.uid(), request.gid()) != 0) fail_errno(errno, "chown {}", path.string());
    return;
  } else if (type != 0 && type != S_IFREG) {
    fail(Errc::invalid_argument, "{}: file mode {:o} is not a regular file, directory or symlink", request.path(),
         request.file_mode());
  } else {
    const std::filesystem::path partial = path.string() + ".kata-copy";
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (request.offset() == 0 ? O_TRUNC : 0);
    UniqueFd fd(::open(partial.c_str(), flags, 0600));
    if (!fd) fail_errno(errno, "open {}", partial.string());
    const std::string& data = request.data();
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::pwrite(fd.get(), data.data() + done, data.size() - done, request.offset() + done);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno(errno, "write {}", partial.string());
      }
      done += static_cast<std::size_t>(n);
    }
    if (request.offset() + static_cast<std::int64_t>(data.size()) < request.file_size()) return;
    if (::fchmod(fd.get(), request.file_mode() & 07777) != 0) fail_errno(errno, "chmod {}", partial.string());
    if (::fchown(fd.get(), request.uid(), request.gid()) != 0) fail_errno(errno, "chown {}", partial.string());
    if (::rename(partial.c_str(), path.c_str()) != 0) fail_errno(errno, "rename {} to {}", partial.string(), path.string());
    return;
  }
  if (::chown(path.c_str(), request.uid(), request.gid()) != 0) fail_errno(errno, "chown {}", path.string());
}

std::uint64_t memory_block_size() {
  std::ifstream in("/sys/devices/system/memory/block_size_bytes");
  std::string text;
  if (!(in >> text)) return 0;
  return std::stoull(text, nullptr, 16);
}

class AgentServiceImpl final : public grpc::AgentService, public std::enable_shared_from_this<AgentServiceImpl> {
 public:
  AgentServiceImpl(Executor executor, asio::thread_pool& blocking, AgentServiceOptions options) :
      executor_(std::move(executor)),
      blocking_(blocking),
      options_(std::move(options)),
      oom_arrived_(std::make_shared<AsyncEvent>(executor_)) {}

  // --- sandbox ---------------------------------------------------------------------------

  Task<Empty> create_sandbox(const grpc::CreateSandboxRequest& request, const ttrpc::CallContext&) override {
    if (sandbox_created_) fail(Errc::already_exists, "the sandbox {} was already created", sandbox_id_);
    if (request.sandbox_pidns()) fail(Errc::not_supported, "sandbox_pidns is not supported by this agent");
    if (!request.guest_hook_path().empty()) fail(Errc::not_supported, "guest hooks are not supported by this agent");
    if (request.kernel_modules_size() > 0) {
      fail(Errc::not_supported, "loading kernel modules on request is not supported by this agent (module {})",
           request.kernel_modules(0).name());
    }
    std::vector<StorageMount> storages;
    co_await blocking([&] {
      if (!request.hostname().empty() &&
          ::sethostname(request.hostname().data(), request.hostname().size()) != 0) {
        fail_errno(errno, "set hostname '{}'", request.hostname());
      }
      if (request.dns_size() > 0) {
        write_resolv_conf({request.dns().begin(), request.dns().end()}, options_.resolv_conf);
      }
      for (const auto& storage : request.storages()) storages.push_back(mount_storage(storage));
    });
    sandbox_storages_ = std::move(storages);
    sandbox_id_ = request.sandbox_id();
    sandbox_created_ = true;
    log(LogLevel::info, "sandbox {} created ({} storages)", sandbox_id_, sandbox_storages_.size());
    co_return Empty();
  }

  Task<Empty> destroy_sandbox(const grpc::DestroySandboxRequest&, const ttrpc::CallContext&) override {
    std::vector<std::string> ids;
    for (const auto& [id, container] : containers_) ids.push_back(id);
    for (const auto& id : ids) {
      if (containers_.contains(id)) co_await remove(id, default_remove_timeout);
    }
    std::vector<StorageMount> storages = std::move(sandbox_storages_);
    co_await blocking([&] { storages.clear(); });
    sandbox_created_ = false;
    log(LogLevel::info, "sandbox {} destroyed", sandbox_id_);
    co_return Empty();
  }

  // --- containers ------------------------------------------------------------------------

  Task<Empty> create_container(const grpc::CreateContainerRequest& request, const ttrpc::CallContext&) override {
    const std::string id = request.container_id();
    check_container_id(id);
    if (containers_.contains(id) || containers_creating_.contains(id)) {
      fail(Errc::already_exists, "container {} already exists", id);
    }
    if (!request.has_oci()) fail(Errc::invalid_argument, "container {}: the request carries no OCI spec", id);
    const oci::Spec spec =
        with_context([&] { return fmt::format("container {}: OCI spec", id); }, [&] { return agent::from_agent_spec(request.oci()); });
    containers_creating_.insert(id);
    struct Unreserve {
      AgentServiceImpl* self;
      std::string id;
      ~Unreserve() { self->containers_creating_.erase(id); }
    } unreserve{this, id};

    auto container = std::make_shared<Container>();
    container->id = id;
    // Storages already mounted for another container of the pod are shared, not mounted again.
    std::vector<const grpc::Storage*> to_mount;
    std::erase_if(storages_, [](const auto& entry) { return entry.second.expired(); });
    for (const auto& storage : request.storages()) {
      if (auto existing = storages_[storage.mount_point()].lock()) {
        container->storages.push_back(std::move(existing));
      } else {
        to_mount.push_back(&storage);
      }
    }
    std::optional<ContainerProcess> init;
    co_await blocking([&] {
      with_context([&] { return fmt::format("create container {}", id); }, [&] {
        // On a failure the container's members unwind the rest: a spawned process goes before
        // the cgroup it ran in and the mounts it used.
        for (const grpc::Storage* storage : to_mount) {
          container->storages.push_back(std::make_shared<StorageMount>(mount_storage(*storage)));
        }
        const SpawnRequest spawn = container_spawn_request(spec, options_.cgroup_root / "kata" / id);
        container->cgroup = Cgroup::create(options_.cgroup_root, "kata/" + id);
        if (spec.linux_spec && spec.linux_spec->resources) {
          container->cgroup.apply(cgroup_resources(*spec.linux_spec->resources));
        }
        init.emplace(ContainerProcess::spawn(spawn));
      });
    });
    for (const auto& storage : container->storages) {
      auto& known = storages_[storage->mount_point().string()];
      if (known.expired()) known = storage;
    }
    container->init = adopt_process(id, "", std::move(*init));
    container->oom = watch_oom(*container);
    containers_.emplace(id, container);
    log(LogLevel::info, "container {} created: pid {}", id, container->init->process.pid());
    co_return Empty();
  }

  Task<Empty> start_container(const grpc::StartContainerRequest& request, const ttrpc::CallContext&) override {
    const ContainerPtr container = find_container(request.container_id());
    if (container->state != Container::State::created || container->init->process.started()) {
      fail(Errc::failed_precondition, "container {} was already started", container->id);
    }
    container->state = Container::State::running;
    try {
      co_await blocking([&] { container->init->process.start(); });
    } catch (...) {
      rethrow_with_context(fmt::format("start container {}", container->id));
    }
    log(LogLevel::info, "container {} started", container->id);
    co_return Empty();
  }

  Task<Empty> remove_container(const grpc::RemoveContainerRequest& request, const ttrpc::CallContext&) override {
    (void)find_container(request.container_id());
    const std::chrono::seconds timeout = request.timeout() == 0 ? default_remove_timeout : std::chrono::seconds(request.timeout());
    co_await remove(request.container_id(), timeout);
    co_return Empty();
  }

  Task<Empty> exec_process(const grpc::ExecProcessRequest& request, const ttrpc::CallContext&) override {
    const ContainerPtr container = find_container(request.container_id());
    const std::string exec_id = request.exec_id();
    if (exec_id.empty() || exec_id == container->id) {
      fail(Errc::invalid_argument, "exec in container {}: exec_id '{}' is empty or the container's own id", container->id, exec_id);
    }
    if (container->execs.contains(exec_id) || container->execs_starting.contains(exec_id)) {
      fail(Errc::already_exists, "exec {} already exists in container {}", exec_id, container->id);
    }
    if (container->init->exit || container->removing) {
      fail(Errc::failed_precondition, "container {} is not running", container->id);
    }
    if (!request.has_process()) fail(Errc::invalid_argument, "exec {}: the request carries no process", exec_id);
    const oci::Process process = agent::from_agent_process(request.process());
    container->execs_starting.insert(exec_id);
    struct Unreserve {
      Container& container;
      std::string id;
      ~Unreserve() { container.execs_starting.erase(id); }
    } unreserve{*container, exec_id};
    const pid_t init_pid = container->init->process.pid();
    std::optional<ContainerProcess> spawned;
    co_await blocking([&] {
      with_context([&] { return fmt::format("exec {} in container {}", exec_id, container->id); }, [&] {
        spawned.emplace(ContainerProcess::spawn(exec_spawn_request(process, init_pid, container->cgroup.path())));
      });
    });
    container->execs.emplace(exec_id, adopt_process(container->id, exec_id, std::move(*spawned)));
    co_return Empty();
  }

  Task<Empty> signal_process(const grpc::SignalProcessRequest& request, const ttrpc::CallContext&) override {
    const ProcessPtr process = find_process(request.container_id(), request.exec_id());
    if (request.signal() == 0 || request.signal() > static_cast<unsigned>(SIGRTMAX)) {
      fail(Errc::invalid_argument, "signal {} is not a valid signal number", request.signal());
    }
    if (process->exit) fail(Errc::not_found, "{} has already exited", process->name());
    process->process.signal(static_cast<int>(request.signal()));
    co_return Empty();
  }

  Task<grpc::WaitProcessResponse> wait_process(const grpc::WaitProcessRequest& request,
                                               const ttrpc::CallContext&) override {
    const ProcessPtr process = find_process(request.container_id(), request.exec_id());
    co_await process->exited.wait();
    log(LogLevel::debug, "WaitProcess of {} answered: status {}", process->name(), process->exit->as_exit_code());
    process->waited = true;
    forget_if_done(process);
    grpc::WaitProcessResponse response;
    response.set_status(process->exit->as_exit_code());
    co_return response;
  }

  Task<Empty> update_container(const grpc::UpdateContainerRequest& request, const ttrpc::CallContext&) override {
    const ContainerPtr container = find_container(request.container_id());
    const CgroupResources resources = cgroup_resources(agent::from_agent_resources(request.resources()));
    co_await blocking([&] {
      with_context(fmt::format("update container {}", container->id), [&] { container->cgroup.apply(resources); });
    });
    co_return Empty();
  }

  Task<grpc::StatsContainerResponse> stats_container(const grpc::StatsContainerRequest& request,
                                                     const ttrpc::CallContext&) override {
    const ContainerPtr container = find_container(request.container_id());
    grpc::StatsContainerResponse response;
    *response.mutable_cgroup_stats() = to_proto(container->cgroup.stats());
    co_return response;
  }

  Task<Empty> pause_container(const grpc::PauseContainerRequest& request, const ttrpc::CallContext&) override {
    const ContainerPtr container = find_container(request.container_id());
    if (container->state != Container::State::running) {
      fail(Errc::failed_precondition, "container {} is not running", container->id);
    }
    co_await blocking([&] { container->cgroup.freeze(); });
    container->state = Container::State::paused;
    co_return Empty();
  }

  Task<Empty> resume_container(const grpc::ResumeContainerRequest& request, const ttrpc::CallContext&) override {
    const ContainerPtr container = find_container(request.container_id());
    if (container->state != Container::State::paused) {
      fail(Errc::failed_precondition, "container {} is not paused", container->id);
    }
    co_await blocking([&] { container->cgroup.thaw(); });
    container->state = Container::State::running;
    co_return Empty();
  }

  // --- stdio -----------------------------------------------------------------------------

  Task<grpc::WriteStreamResponse> write_stdin(const grpc::WriteStreamRequest& request,
                                              const ttrpc::CallContext&) override {
    const ProcessPtr process = find_process(request.container_id(), request.exec_id());
    const std::shared_ptr<Stream> input = process->input;
    if (!input || !input->is_open()) fail(Errc::failed_precondition, "stdin of {} is closed", process->name());
    boost::system::error_code error;
    const std::size_t written =
        co_await asio::async_write(*input, asio::buffer(request.data()), asio::redirect_error(asio::use_awaitable, error));
    if (error) fail(Errc::failed_precondition, "write stdin of {}: {}", process->name(), error.message());
    grpc::WriteStreamResponse response;
    response.set_len(static_cast<std::uint32_t>(written));
    co_return response;
  }

  Task<grpc::ReadStreamResponse> read_stdout(const grpc::ReadStreamRequest& request,
                                             const ttrpc::CallContext&) override {
    const ProcessPtr process = find_process(request.container_id(), request.exec_id());
    co_return co_await read_stream(process, process->output, "stdout", request.len());
  }

  Task<grpc::ReadStreamResponse> read_stderr(const grpc::ReadStreamRequest& request,
                                             const ttrpc::CallContext&) override {
    const ProcessPtr process = find_process(request.container_id(), request.exec_id());
    if (process->terminal) fail(Errc::failed_precondition, "{} has a terminal: stderr is merged into stdout", process->name());
    co_return co_await read_stream(process, process->error, "stderr", request.len());
  }

  Task<Empty> close_stdin(const grpc::CloseStdinRequest& request, const ttrpc::CallContext&) override {
    const ProcessPtr process = find_process(request.container_id(), request.exec_id());
    if (process->terminal) {
      // A terminal has no separate input to close: the end of input is the EOF character, as
      // when a user types it, which the line discipline turns into a zero-length read.
      if (process->input && process->input->is_open()) {
        static constexpr char eof_character = 0x04;
        boost::system::error_code error;
        co_await asio::async_write(*process->input, asio::buffer(&eof_character, 1),
                                   asio::redirect_error(asio::use_awaitable, error));
      }
    } else {
      close_stream(process->input);
      process->input.reset();
    }
    co_return Empty();
  }

  Task<Empty> tty_win_resize(const grpc::TtyWinResizeRequest& request, const ttrpc::CallContext&) override {
    const ProcessPtr process = find_process(request.container_id(), request.exec_id());
    if (request.row() > 0xffff || request.column() > 0xffff) {
      fail(Errc::invalid_argument, "terminal size {}x{} is out of range", request.row(), request.column());
    }
    process->process.resize_terminal(static_cast<unsigned short>(request.row()),
                                     static_cast<unsigned short>(request.column()));
    co_return Empty();
  }

  // --- OOM -------------------------------------------------------------------------------

  Task<grpc::OOMEvent> get_oom_event(const grpc::GetOOMEventRequest&, const ttrpc::CallContext& context) override {
    while (oom_queue_.empty()) {
      const std::shared_ptr<AsyncEvent> arrived = oom_arrived_;
      co_await arrived->wait();
      // A poll left behind by a host that went away must not take the event from the next one.
      if (context.cancelled()) fail(Errc::cancelled, "GetOOMEvent: the caller is gone");
    }
    grpc::OOMEvent event;
    event.set_container_id(std::move(oom_queue_.front()));
    oom_queue_.pop_front();
    co_return event;
  }

  // --- guest -----------------------------------------------------------------------------

  Task<Empty> online_cpu_mem(const grpc::OnlineCPUMemRequest& request, const ttrpc::CallContext&) override {
    const unsigned cpus = request.nb_cpus();
    const bool memory = !request.cpu_only();
    auto work = [cpus, memory] {
      if (cpus > 0) online_cpus(cpus, cpu_online_timeout);
      if (memory) online_memory();
    };
    if (request.wait()) {
      co_await blocking(work);
    } else {
      asio::post(blocking_, [work] {
        try {
          work();
        } catch (const std::exception& error) {
          log(LogLevel::warn, "online CPUs and memory: {}", describe(error));
        }
      });
    }
    co_return Empty();
  }

  Task<grpc::GuestDetailsResponse> get_guest_details(const grpc::GuestDetailsRequest& request,
                                                     const ttrpc::CallContext&) override {
    grpc::GuestDetailsResponse response;
    if (request.mem_block_size()) response.set_mem_block_size_bytes(memory_block_size());
    if (request.mem_hotplug_probe()) {
      std::error_code ignored;
      response.set_support_mem_hotplug_probe(std::filesystem::exists("/sys/devices/system/memory/probe", ignored));
    }
    auto* details = response.mutable_agent_details();
    details->set_version(std::string(build_info::version));
    details->set_init_daemon(options_.init_daemon);
    for (const char* driver : supported_storage_drivers) details->add_storage_handlers(driver);
    details->set_supports_seccomp(false);
    co_return response;
  }

  Task<Empty> set_guest_date_time(const grpc::SetGuestDateTimeRequest& request, const ttrpc::CallContext&) override {
    if (request.usec() < 0 || request.usec() >= 1'000'000) {
      fail(Errc::invalid_argument, "Usec {} is not in [0, 1000000)", request.usec());
    }
    const timespec now{static_cast<time_t>(request.sec()), static_cast<long>(request.usec() * 1000)};
    if (::clock_settime(CLOCK_REALTIME, &now) != 0) fail_errno(errno, "set the guest clock");
    co_return Empty();
  }

  Task<Empty> copy_file(const grpc::CopyFileRequest& request, const ttrpc::CallContext&) override {
    co_await blocking([&] { with_context(fmt::format("copy file {}", request.path()), [&] { copy_file_chunk(request); }); });
    co_return Empty();
  }

  // --- network ---------------------------------------------------------------------------

  Task<types::Interface> update_interface(const grpc::UpdateInterfaceRequest& request,
                                          const ttrpc::CallContext&) override {
    const types::Interface& wanted = request.interface();
    if (wanted.hwaddr().empty()) fail(Errc::invalid_argument, "interface '{}' has no hwAddr", wanted.name());
    NetworkInterface link;
    link.name = wanted.name().empty() ? wanted.device() : wanted.name();
    link.hw_address = wanted.hwaddr();
    link.mtu = wanted.mtu();
    for (const auto& address : wanted.ipaddresses()) link.addresses.push_back(from_proto(address));
    co_return to_proto(Netlink::open().update_interface(link));
  }

  Task<grpc::Routes> update_routes(const grpc::UpdateRoutesRequest& request, const ttrpc::CallContext&) override {
    std::vector<NetworkRoute> routes;
    for (const auto& route : request.routes().routes()) routes.push_back(from_proto(route));
    Netlink netlink = Netlink::open();
    netlink.update_routes(routes);
    grpc::Routes response;
    for (const auto& route : netlink.list_routes()) *response.add_routes() = to_proto(route);
    co_return response;
  }

  Task<grpc::Interfaces> list_interfaces(const grpc::ListInterfacesRequest&, const ttrpc::CallContext&) override {
    grpc::Interfaces response;
    for (const auto& link : Netlink::open().list_interfaces()) *response.add_interfaces() = to_proto(link);
    co_return response;
  }

  Task<grpc::Routes> list_routes(const grpc::ListRoutesRequest&, const ttrpc::CallContext&) override {
    grpc::Routes response;
    for (const auto& route : Netlink::open().list_routes()) *response.add_routes() = to_proto(route);
    co_return response;
  }

  Task<Empty> add_arp_neighbors(const grpc::AddARPNeighborsRequest& request, const ttrpc::CallContext&) override {
    std::vector<ArpNeighbor> neighbors;
    for (const auto& neighbor : request.neighbors().arpneighbors()) {
      if (!neighbor.has_toipaddress() || neighbor.toipaddress().address().empty()) {
        fail(Errc::invalid_argument, "ARP neighbor on '{}' has no IP address", neighbor.device());
      }
      neighbors.push_back({neighbor.toipaddress().address(), neighbor.device(), neighbor.lladdr(), neighbor.state(),
                           neighbor.flags()});
    }
    Netlink::open().add_arp_neighbors(neighbors);
    co_return Empty();
  }

  // --- not served by this agent (docs/agent.md) -------------------------------------------

  Task<Empty> update_ephemeral_mounts(const grpc::UpdateEphemeralMountsRequest&, const ttrpc::CallContext&) override {
    unsupported("UpdateEphemeralMounts");
  }
  Task<Empty> remove_stale_virtiofs_share_mounts(const grpc::RemoveStaleVirtiofsShareMountsRequest&,
                                                 const ttrpc::CallContext&) override {
    unsupported("RemoveStaleVirtiofsShareMounts");
  }
  Task<grpc::GetDiagnosticDataResponse> get_diagnostic_data(const grpc::GetDiagnosticDataRequest&,
                                                            const ttrpc::CallContext&) override {
    unsupported("GetDiagnosticData");
  }
  Task<grpc::GetIPTablesResponse> get_ip_tables(const grpc::GetIPTablesRequest&, const ttrpc::CallContext&) override {
    unsupported("GetIPTables");
  }
  Task<grpc::SetIPTablesResponse> set_ip_tables(const grpc::SetIPTablesRequest&, const ttrpc::CallContext&) override {
    unsupported("SetIPTables");
  }
  Task<grpc::Metrics> get_metrics(const grpc::GetMetricsRequest&, const ttrpc::CallContext&) override {
    unsupported("GetMetrics");
  }
  Task<Empty> mem_agent_memcg_set(const grpc::MemAgentMemcgConfig&, const ttrpc::CallContext&) override {
    unsupported("MemAgentMemcgSet");
  }
  Task<Empty> mem_agent_compact_set(const grpc::MemAgentCompactConfig&, const ttrpc::CallContext&) override {
    unsupported("MemAgentCompactSet");
  }
  Task<Empty> reseed_random_dev(const grpc::ReseedRandomDevRequest&, const ttrpc::CallContext&) override {
    unsupported("ReseedRandomDev");
  }
  Task<Empty> mem_hotplug_by_probe(const grpc::MemHotplugByProbeRequest&, const ttrpc::CallContext&) override {
    unsupported("MemHotplugByProbe");
  }
  Task<Empty> add_swap(const grpc::AddSwapRequest&, const ttrpc::CallContext&) override { unsupported("AddSwap"); }
  Task<Empty> add_swap_path(const grpc::AddSwapPathRequest&, const ttrpc::CallContext&) override {
    unsupported("AddSwapPath");
  }
  Task<grpc::VolumeStatsResponse> get_volume_stats(const grpc::VolumeStatsRequest&, const ttrpc::CallContext&) override {
    unsupported("GetVolumeStats");
  }
  Task<Empty> resize_volume(const grpc::ResizeVolumeRequest&, const ttrpc::CallContext&) override {
    unsupported("ResizeVolume");
  }
  Task<Empty> set_policy(const grpc::SetPolicyRequest&, const ttrpc::CallContext&) override { unsupported("SetPolicy"); }

 private:
  [[noreturn]] static void unsupported(std::string_view rpc) {
    fail(Errc::not_supported, "{} is not supported by this agent", rpc);
  }

  // Runs `work` on the blocking pool; the caller resumes on the executor with its result or
  // exception. `work` may refer to the caller's locals: the caller is suspended until it ends.
  template <class Work>
  Task<void> blocking(Work work) {
    co_await asio::co_spawn(
        blocking_.get_executor(),
        [&work]() -> Task<void> {
          work();
          co_return;
        },
        asio::use_awaitable);
  }

  ContainerPtr find_container(const std::string& id) const {
    if (id.empty()) fail(Errc::invalid_argument, "container_id is empty");
    const auto it = containers_.find(id);
    if (it == containers_.end()) fail(Errc::not_found, "container {} not found", id);
    return it->second;
  }

  // The host names a container's init by an empty exec id or the container id itself.
  ProcessPtr find_process(const std::string& container_id, const std::string& exec_id) const {
    const ContainerPtr container = find_container(container_id);
    if (exec_id.empty() || exec_id == container_id) return container->init;
    const auto it = container->execs.find(exec_id);
    if (it == container->execs.end()) fail(Errc::not_found, "exec {} not found in container {}", exec_id, container_id);
    return it->second;
  }

  // An exec is dropped from its container once the host has its exit and has read its output
  // to the end, so a long-lived container does not collect one entry (and its descriptors) per
  // exec. The init stays until RemoveContainer.
  void forget_if_done(const ProcessPtr& process) {
    if (process->exec_id.empty() || !process->waited) return;
    for (const auto* stream : {&process->output, &process->error}) {
      if (*stream && (*stream)->is_open()) return;
    }
    close_stream(process->input);
    const auto container = containers_.find(process->container_id);
    if (container == containers_.end()) return;
    const auto exec = container->second->execs.find(process->exec_id);
    if (exec != container->second->execs.end() && exec->second == process) container->second->execs.erase(exec);
  }

  ProcessPtr adopt_process(const std::string& container_id, const std::string& exec_id, ContainerProcess spawned) {
    auto process = std::make_shared<Process>(executor_, container_id, exec_id);
    process->process = std::move(spawned);
    ContainerProcess& child = process->process;
    process->terminal = static_cast<bool>(child.pty_master);
    if (process->terminal) {
      UniqueFd master(::fcntl(child.pty_master.get(), F_DUPFD_CLOEXEC, 0));
      if (!master) fail_errno(errno, "dup terminal of {}", process->name());
      process->output = adopt_stream(executor_, std::move(master));
      process->input = process->output;
    } else {
      process->input = adopt_stream(executor_, std::move(child.stdin_writer));
      process->output = adopt_stream(executor_, std::move(child.stdout_reader));
      process->error = adopt_stream(executor_, std::move(child.stderr_reader));
    }
    child.exit_state()->on_exit([weak = std::weak_ptr<Process>(process), executor = executor_](ExitStatus status) {
      asio::post(executor, [weak, status] {
        if (const auto owner = weak.lock()) {
          log(LogLevel::info, "{} exited: status {}", owner->name(), status.as_exit_code());
          owner->exit = status;
          owner->exited.set();
        }
      });
    });
    return process;
  }

  Task<grpc::ReadStreamResponse> read_stream(ProcessPtr process, std::shared_ptr<Stream> stream, std::string_view what,
                                             std::uint32_t length) {
    if (!stream || !stream->is_open()) fail(Errc::out_of_range, "{} of {}: end of stream", what, process->name());
    std::string data(std::clamp<std::size_t>(length == 0 ? default_read_chunk : length, 1, max_read_chunk), '\0');
    boost::system::error_code error;
    const std::size_t got =
        co_await stream->async_read_some(asio::buffer(data), asio::redirect_error(asio::use_awaitable, error));
    // EOF for a pipe, EIO for a pty whose last slave descriptor closed: the stream is over, as
    // upstream's agent reports it, with an error.
    if (error) {
      close_stream(stream);
      forget_if_done(process);
      fail(Errc::out_of_range, "{} of {}: end of stream", what, process->name());
    }
    data.resize(got);
    grpc::ReadStreamResponse response;
    response.set_data(std::move(data));
    co_return response;
  }

  std::shared_ptr<OomWatch> watch_oom(const Container& container) {
    auto watch = std::make_shared<OomWatch>(OomWatch{container.id, Stream(executor_), 0});
    watch->events.assign(container.cgroup.watch_memory_events().release());
    watch->oom_kills = container.cgroup.stats().oom_events;
    asio::co_spawn(executor_, follow_oom(weak_from_this(), watch, container.cgroup.path()), asio::detached);
    return watch;
  }

  static Task<void> follow_oom(std::weak_ptr<AgentServiceImpl> weak_self, std::shared_ptr<OomWatch> watch,
                               std::filesystem::path cgroup_path) {
    char buffer[4096];
    for (;;) {
      boost::system::error_code error;
      co_await watch->events.async_wait(Stream::wait_read, asio::redirect_error(asio::use_awaitable, error));
      if (error) co_return;
      while (::read(watch->events.native_handle(), buffer, sizeof buffer) > 0) {
      }
      const auto self = weak_self.lock();
      if (!self) co_return;
      std::uint64_t kills = 0;
      try {
        std::ifstream events(cgroup_path / "memory.events");
        for (std::string key; events >> key;) {
          std::uint64_t value = 0;
          events >> value;
          if (key == "oom_kill") kills = value;
        }
      } catch (const std::exception&) {
        co_return;
      }
      if (kills > watch->oom_kills) {
        watch->oom_kills = kills;
        log(LogLevel::info, "container {}: OOM kill", watch->container_id);
        self->oom_queue_.push_back(watch->container_id);
        self->oom_arrived_->set();
        self->oom_arrived_ = std::make_shared<AsyncEvent>(self->executor_);
      }
    }
  }

  Task<void> remove(const std::string& id, std::chrono::seconds timeout) {
    const ContainerPtr container = find_container(id);
    if (container->removing) fail(Errc::failed_precondition, "container {} is being removed", id);
    container->removing = true;
    struct Unmark {
      Container& container;
      ~Unmark() { container.removing = false; }
    } unmark{*container};
    std::vector<ProcessPtr> processes{container->init};
    for (const auto& [exec_id, exec] : container->execs) processes.push_back(exec);
    const bool running = std::any_of(processes.begin(), processes.end(), [](const auto& p) { return !p->exit; });
    if (running) co_await blocking([&] { container->cgroup.kill(); });
    for (const ProcessPtr& process : processes) {
      if (!co_await process->exited.wait_for(timeout)) {
        fail(Errc::deadline_exceeded, "remove container {}: {} did not exit within {} s after SIGKILL", id,
             process->name(), timeout.count());
      }
    }
    containers_.erase(id);
    for (const ProcessPtr& process : processes) {
      close_stream(process->input);
      close_stream(process->output);
      close_stream(process->error);
    }
    if (container->oom) {
      boost::system::error_code ignored;
      container->oom->events.close(ignored);
    }
    // Removing the cgroup and unmounting may wait on the kernel: not on the executor's thread.
    Cgroup cgroup = std::move(container->cgroup);
    std::vector<std::shared_ptr<StorageMount>> storages = std::move(container->storages);
    co_await blocking([&] {
      cgroup = Cgroup();
      storages.clear();  // unmounts what no other container uses
    });
    log(LogLevel::info, "container {} removed", id);
  }

  Executor executor_;
  asio::thread_pool& blocking_;
  AgentServiceOptions options_;

  bool sandbox_created_ = false;
  std::string sandbox_id_;
  std::vector<StorageMount> sandbox_storages_;
  // Containers' storages by mount point, while any container uses them.
  std::map<std::string, std::weak_ptr<StorageMount>, std::less<>> storages_;

  std::map<std::string, ContainerPtr, std::less<>> containers_;
  std::set<std::string, std::less<>> containers_creating_;

  std::deque<std::string> oom_queue_;
  std::shared_ptr<AsyncEvent> oom_arrived_;
};

class HealthImpl final : public grpc::Health {
 public:
  Task<grpc::HealthCheckResponse> check(const grpc::CheckRequest&, const ttrpc::CallContext&) override {
    grpc::HealthCheckResponse response;
    response.set_status(grpc::HealthCheckResponse::SERVING);
    co_return response;
  }

  Task<grpc::VersionCheckResponse> version(const grpc::CheckRequest&, const ttrpc::CallContext&) override {
    grpc::VersionCheckResponse response;
    response.set_agent_version(std::string(build_info::version));
    // The ttRPC "grpc version" upstream reports is its protocol crate's; ours speaks the same wire.
    response.set_grpc_version("ttrpc");
    co_return response;
  }
};

}  // namespace

AgentServices make_agent_services(Executor executor, asio::thread_pool& blocking, AgentServiceOptions options) {
  return {std::make_shared<AgentServiceImpl>(std::move(executor), blocking, std::move(options)),
          std::make_shared<HealthImpl>()};
}

void register_agent_services(ttrpc::Server& server, const AgentServices& services) {
  grpc::register_service(server, services.agent);
  grpc::register_service(server, services.health);
}

}  // namespace kata::agent_guest
