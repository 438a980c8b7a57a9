// Template bodies of virt_sandbox.hpp.
#pragma once

#include <unistd.h>

#include <csignal>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kata/agent/oci_conversion.hpp"
#include "kata/core/error.hpp"
#include "kata/log/log.hpp"
#include "kata/persist/process.hpp"

namespace kata::runtime {
namespace detail {

inline log::Logger sandbox_log(const std::string& sandbox_id) {
  return log::Logger("runtime").with("sandbox", sandbox_id);
}

}  // namespace detail

template <hypervisor::Hypervisor H, agent::AgentTransport T>
VirtSandbox<H, T>::VirtSandbox(Executor executor, VirtSandboxSettings settings)
    : executor_(executor),
      settings_(std::move(settings)),
      state_dir_(settings_.state_root / settings_.sandbox_id),
      store_(settings_.state_root),
      vm_(executor,
          hypervisor::VmContext{.sandbox_id = settings_.sandbox_id,
                                .state_dir = settings_.state_root / settings_.sandbox_id,
                                .network_namespace = settings_.network_namespace,
                                .config = settings_.config.active_hypervisor(),
                                .agent_port = settings_.config.active_agent().server_port,
                                .agent_kernel_params = {}}),
      gate_(executor, fmt::format("sandbox {}", settings_.sandbox_id)),
      lifecycle_(executor),
      cpu_mem_(executor, settings_.config.active_hypervisor(), settings_.config.runtime.static_sandbox_resource_mgmt) {}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
VirtSandbox<H, T>::~VirtSandbox() = default;

template <hypervisor::Hypervisor H, agent::AgentTransport T>
agent::KataAgent& VirtSandbox<H, T>::agent() {
  if (!agent_ || state_ != State::running) {
    fail(Errc::unavailable, "sandbox {} is not running", settings_.sandbox_id);
  }
  return *agent_;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
auto VirtSandbox<H, T>::make_process(ProcessId id, Stdio stdio, Executor executor) -> ProcessPtr {
  auto process = std::make_shared<Process>();
  process->id = std::move(id);
  process->stdio = std::move(stdio);
  process->exited = std::make_unique<AsyncEvent>(executor);
  return process;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
auto VirtSandbox<H, T>::find_container(std::string_view id) -> Container& {
  auto it = containers_.find(id);
  if (it == containers_.end()) fail(Errc::not_found, "container {} not found", id);
  return *it->second;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
auto VirtSandbox<H, T>::find_container(std::string_view id) const -> const Container& {
  auto it = containers_.find(id);
  if (it == containers_.end()) fail(Errc::not_found, "container {} not found", id);
  return *it->second;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
auto VirtSandbox<H, T>::find_process(const ProcessId& id) const -> const ProcessPtr& {
  const Container& container = find_container(id.container_id);
  if (id.is_init()) return container.init;
  auto it = container.execs.find(id.exec_id);
  if (it == container.execs.end()) fail(Errc::not_found, "exec {} of container {} not found", id.exec_id, id.container_id);
  return it->second;
}

// ---------------------------------------------------------------------------------------------
// Boot and teardown

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::ensure_running() {
  switch (state_) {
    case State::running: co_return;
    case State::created: co_await boot(); co_return;
    case State::starting: fail(Errc::failed_precondition, "sandbox {} is starting", settings_.sandbox_id);
    case State::stopping:
    case State::stopped: fail(Errc::unavailable, "sandbox {} is stopped", settings_.sandbox_id);
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::boot() {
  const auto generation = ++generation_;
  const std::string& id = settings_.sandbox_id;
  auto log = detail::sandbox_log(id);
  state_ = State::starting;
  std::exception_ptr failure;
  try {
    store_.create_sandbox_dir(id);
    state_dir_created_ = true;
    enter_cgroups();  // cgroups: before any helper process starts

    const auto& hv = settings_.config.active_hypervisor();
    resource::SharedFsOptions share_options;
    share_options.sandbox_id = id;
    share_options.config = hv.shared_fs;
    share_options.disable_guest_selinux = hv.disable_guest_selinux;
    share_options.host_root = settings_.shared_root;
    share_options.daemon_socket = resource::default_virtiofsd_socket(state_dir_);
    shared_fs_.emplace(executor_, std::move(share_options));
    volumes_.emplace(*shared_fs_);  // volumes (resource/volume)
    co_await shared_fs_->start();

    co_await vm_.prepare_vm();
    if (auto share_device = shared_fs_->device()) {
      hypervisor::Device device = std::move(*share_device);
      co_await vm_.add_device(std::move(device));
    }
    // [network] the pod netns's endpoints, each connected to a tap whose NIC is cold-plugged.
    network_ = resource::network::PodNetwork::scan(
        resource::network::network_options(settings_.config, id, settings_.network_namespace));
    co_await resource::network::attach(network_, vm_);
    // [/network]
    co_await vm_.start_vm(settings_.boot_timeout);
    gate_.spawn(watch_vmm(generation), [log](std::exception_ptr e) { log.warn("VMM watcher: {}", describe(e)); });

    const auto deadline = std::chrono::steady_clock::now() + settings_.boot_timeout;
    const auto timeouts = agent::AgentTimeouts::from(settings_.config.active_agent());
    agent_.emplace(co_await agent::KataAgent::connect<T>(executor_, vm_.agent_address(), timeouts, deadline));
    // A phase mark for bench/e2e: the boot ends here, sandbox setup starts.
    log.info("agent answered at {}", agent_->url());
    co_await resource::network::configure_guest(network_, *agent_);  // [network] guest links, ARP, routes

    grpc::CreateSandboxRequest request;
    request.set_hostname(settings_.hostname);
    for (const auto& server : settings_.dns) request.add_dns(server);
    for (auto& storage : shared_fs_->storages()) *request.add_storages() = std::move(storage);
    // /dev/shm of every container binds to this one tmpfs (upstream's sandbox shm).
    *request.add_storages() = resource::sandbox_shm_storage(settings_.shm_size);
    request.set_sandbox_id(id);
    request.set_sandbox_pidns(false);
    co_await agent_->create_sandbox(request);

    // --- cgroups: without sandbox_cgroup_only only the vCPU threads go to the pod's cgroup ---
    if (cgroups_ && !settings_.config.runtime.sandbox_cgroup_only) {
      const std::map<std::uint32_t, pid_t> vcpus = co_await vm_.vcpu_thread_ids();
      std::vector<pid_t> threads;
      for (const auto& [index, tid] : vcpus) threads.push_back(tid);
      with_context("move vCPU threads to the sandbox cgroup", [&] { cgroups_->add_vcpu_threads(threads); });
    }
    // --- end cgroups ---

    state_ = State::running;
    gate_.spawn(watch_oom(generation), [log](std::exception_ptr e) { log.debug("OOM watcher ended: {}", describe(e)); });
    persist_state();
    log.info("sandbox running: VMM pid {}, agent at {}", vm_.vmm_pid(), agent_->url());
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) co_return;

  // Roll back in reverse order; every step is best effort so one failure does not leak the rest.
  log.warn("start failed, rolling back: {}", describe(failure));
  state_ = State::stopping;
  co_await release_vm_resources();
  agent_.reset();
  try {
    co_await vm_.cleanup();
  } catch (const std::exception& e) {
    log.warn("rollback: hypervisor cleanup: {}", describe(e));
  }
  volumes_.reset();
  network_.teardown();  // [network] taps, qdiscs, filters
  if (shared_fs_) {
    try {
      shared_fs_->cleanup();
    } catch (const std::exception& e) {
      log.warn("rollback: shared fs cleanup: {}", describe(e));
    }
    shared_fs_.reset();
  }
  leave_cgroups();
  if (state_dir_created_) {
    try {
      store_.remove(id);
    } catch (const std::exception& e) {
      log.warn("rollback: remove {}: {}", state_dir_.string(), describe(e));
    }
    state_dir_created_ = false;
  }
  state_ = State::created;
  try {
    std::rethrow_exception(failure);
  } catch (...) {
    rethrow_with_context(fmt::format("start sandbox {}", id));
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::release_vm_resources() noexcept {
  auto log = detail::sandbox_log(settings_.sandbox_id);
  // Long polls (ReadStdout, WaitProcess, GetOOMEvent) end when the connection closes.
  if (agent_) agent_->close();
  for (auto& [id, container] : containers_) {
    if (container->init->io) container->init->io->abort();
    for (auto& [exec_id, exec] : container->execs) {
      if (exec->io) exec->io->abort();
    }
  }
  try {
    co_await vm_.stop_vm();
  } catch (const std::exception& e) {
    log.warn("stop VM: {}", describe(e));
  }
  if (shared_fs_) {
    try {
      co_await shared_fs_->stop();
    } catch (const std::exception& e) {
      log.warn("stop shared fs: {}", describe(e));
    }
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::watch_vmm(std::uint64_t generation) {
  const ExitStatus status = co_await vm_.wait_vm();
  if (generation != generation_ || state_ != State::running) co_return;  // an expected stop
  detail::sandbox_log(settings_.sandbox_id).error("VMM exited unexpectedly ({}): every process is reported exited",
                                                  status.as_exit_code());
  vm_gone();
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
void VirtSandbox<H, T>::vm_gone() noexcept {
  state_ = State::stopped;
  if (agent_) agent_->close();
  // Exactly one exit per live process: finish_process ignores processes that already exited, and
  // their waiters (run_process) find the exit recorded when the closed agent fails them.
  for (auto& [id, container] : containers_) {
    for (Process* process : [&] {
           std::vector<Process*> all{container->init.get()};
           for (auto& [exec_id, exec] : container->execs) all.push_back(exec.get());
           return all;
         }()) {
      if (process->io) process->io->abort();
      if (process->status == ProcessStatus::running || process->status == ProcessStatus::paused) {
        finish_process(*process, 255);
      }
    }
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::watch_oom(std::uint64_t generation) {
  while (generation == generation_ && state_ == State::running && agent_ && agent_->is_connected()) {
    const grpc::OOMEvent event = co_await agent_->get_oom_event();
    if (settings_.on_oom && !event.container_id().empty()) settings_.on_oom(event.container_id());
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
void VirtSandbox<H, T>::persist_state() {
  persist::SandboxState state;
  state.hypervisor.hypervisor_type = std::string(H::name);
  state.hypervisor.id = settings_.sandbox_id;
  state.hypervisor.config = vm_.save_state();
  if (!settings_.network_namespace.empty()) state.hypervisor.netns = settings_.network_namespace.string();
  for (pid_t pid : vm_.pids()) {
    try {
      state.cleanup.processes.push_back(persist::record_process("vmm", pid));
    } catch (const Error&) {
      // Exited between pids() and now: nothing to clean up later.
    }
  }
  if (shared_fs_ && shared_fs_->daemon_pid() > 0) {
    try {
      state.cleanup.processes.push_back(persist::record_process("virtiofsd", shared_fs_->daemon_pid()));
    } catch (const Error&) {
    }
  }
  state.resource.endpoint = network_.save();  // [network]
  for (const auto& link : network_.plumbed_links()) {
    state.cleanup.links.push_back(persist::LinkRecord{link, network_.netns_path().string()});
  }
  if (cgroups_) {  // cgroups
    state.resource.cgroup_state = persist::CgroupState{.path = cgroups_->path().string(),
                                                       .overhead_path = cgroups_->overhead_path().string(),
                                                       .sandbox_cgroup_only = settings_.config.runtime.sandbox_cgroup_only,
                                                       .enable_vcpus_pinning = false};
    for (const auto& dir : cgroups_->created_directories()) state.cleanup.directories.push_back(dir.string());
  }
  if (shared_fs_) state.cleanup.directories.push_back(shared_fs_->sandbox_dir().string());
  state.cleanup.directories.push_back(state_dir_.string());
  store_.save(settings_.sandbox_id, state);
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::shutdown() {
  if (shutdown_done_) {
    co_await shutdown_done_->wait();
    co_return;
  }
  shutdown_done_.emplace(executor_);
  auto log = detail::sandbox_log(settings_.sandbox_id);
  auto lock = co_await lifecycle_.lock();
  if (state_ != State::created) {
    state_ = State::stopping;
    co_await release_vm_resources();
  }
  // Processes still waited on are finished now (containerd gets their exits before it deletes).
  for (auto& [id, container] : containers_) {
    if (!container->init->exit) finish_process(*container->init, 255);
    for (auto& [exec_id, exec] : container->execs) {
      if (!exec->exit) finish_process(*exec, 255);
    }
  }
  containers_.clear();  // unshares rootfs and volumes, unmounts snapshot layers
  co_await gate_.close();
  agent_.reset();
  try {
    co_await vm_.cleanup();
  } catch (const std::exception& e) {
    log.warn("hypervisor cleanup: {}", describe(e));
  }
  volumes_.reset();
  network_.teardown();  // [network] taps, qdiscs, filters
  if (shared_fs_) {
    try {
      shared_fs_->cleanup();
    } catch (const std::exception& e) {
      log.warn("shared fs cleanup: {}", describe(e));
    }
    shared_fs_.reset();
  }
  leave_cgroups();
  if (state_dir_created_) {
    try {
      store_.remove(settings_.sandbox_id);
    } catch (const std::exception& e) {
      log.warn("remove state: {}", describe(e));
    }
    state_dir_created_ = false;
  }
  state_ = State::stopped;
  shutdown_done_->set();
}

// --- cgroups ---
template <hypervisor::Hypervisor H, agent::AgentTransport T>
void VirtSandbox<H, T>::enter_cgroups() {
  if (!settings_.host_cgroups) return;
  with_context("sandbox cgroups", [&] {
    resource::cgroups::SandboxCgroupOptions options;
    options.sandbox_id = settings_.sandbox_id;
    options.cgroups_path = settings_.cgroups_path;
    options.sandbox_cgroup_only = settings_.config.runtime.sandbox_cgroup_only;
    options.hierarchies = resource::cgroups::detect_hierarchies();
    cgroups_.emplace(resource::cgroups::SandboxCgroups::create(std::move(options)));
    cgroups_->add_process(::getpid());
  });
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
void VirtSandbox<H, T>::leave_cgroups() noexcept {
  if (cgroups_) cgroups_->remove();
  cgroups_.reset();
}
// --- end cgroups ---

// ---------------------------------------------------------------------------------------------
// Containers and processes

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<pid_t> VirtSandbox<H, T>::create_container(CreateContainerRequest request) {
  auto lock = co_await lifecycle_.lock();
  const std::string id = request.container_id;
  const auto context = fmt::format("create container {}", id);
  if (id.empty()) fail(Errc::invalid_argument, "{}: empty container id", context);
  if (containers_.contains(id)) fail(Errc::already_exists, "container {} already exists", id);

  oci::Spec spec = with_context(context, [&] { return oci::load_spec(request.bundle / "config.json"); });
  try {
    co_await ensure_running();
  } catch (...) {
    rethrow_with_context(context);
  }

  auto container = std::make_unique<Container>();
  container->id = id;
  container->bundle = request.bundle;
  container->init = make_process(ProcessId{id, {}}, request.stdio, executor_);
  with_context(context, [&] {
    const auto rootfs_dir = request.bundle / "rootfs";
    if (request.rootfs.size() > 1) {
      fail(Errc::invalid_argument, "{} rootfs mounts given; one (overlay or bind) is supported", request.rootfs.size());
    }
    // --- volumes (resource/volume): a block-device rootfs (devmapper) is attached, not shared ---
    const bool block_rootfs = resource::classify_rootfs(request.rootfs) == resource::RootfsKind::block;
    // --- end volumes ---
    if (request.rootfs.size() == 1 && !block_rootfs) {
      const RootfsMount& layer = request.rootfs.front();
      std::filesystem::create_directories(rootfs_dir);
      container->rootfs_layer = with_context("mount rootfs", [&] {
        return ScopedMount::mount(layer.source, rootfs_dir, layer.type, layer.options);
      });
    }
    // Shared writable even for root.readonly (CRI's pause container): the guest creates mount
    // points in it first and applies readonly afterwards, as runc does; a read-only share would
    // refuse the mount points ("create mount point proc: Read-only file system").
    if (!block_rootfs) {
      container->rootfs_share = with_context("share rootfs", [&] {
        return shared_fs_->share(rootfs_dir, std::filesystem::path(id) / "rootfs", false);
      });
    }

    // --- volumes (resource/volume): bind, shm, ephemeral, local, block and direct volumes ---
    container->volumes = volumes_->prepare(id, spec.mounts);
    spec.mounts = container->volumes.mounts;
    std::string guest_rootfs = container->rootfs_share.guest_path();
    if (block_rootfs) {
      resource::BlockRootfs rootfs = resource::block_rootfs(id, request.rootfs.front());
      rootfs.device.storage_index = container->volumes.storages.size();
      guest_rootfs = rootfs.storage.mount_point();
      container->volumes.storages.push_back(std::move(rootfs.storage));
      container->volumes.block_devices.push_back(std::move(rootfs.device));
    }
    // --- end volumes ---
    amend_container_spec(spec, guest_rootfs, settings_.config.runtime);
    container->init->io =
        ProcessIo::open(executor_, *agent_, container->init->id, request.stdio, settings_.namespace_name);
  });

  // --- cpu_mem: hotplug for the container's limits before it exists (dynamic mode), and no
  // host cpuset for the guest (host CPU numbers mean nothing there; upstream clears it too) ---
  std::optional<oci::Resources> limits;
  if (spec.linux_spec && spec.linux_spec->resources) {
    limits = spec.linux_spec->resources;
    if (spec.linux_spec->resources->cpu) spec.linux_spec->resources->cpu->cpus.clear();
  }
  try {
    co_await cpu_mem_.apply(vm_, agent(), id, resource::cpu_mem::ResourceOp::add, std::move(limits));
  } catch (...) {
    rethrow_with_context(context);
  }
  // --- end cpu_mem ---

  grpc::CreateContainerRequest create;
  create.set_container_id(id);
  create.set_exec_id(id);
  // --- volumes (resource/volume): devices attached before the agent mounts them ---
  std::exception_ptr failure;
  try {
    *create.mutable_oci() = agent::to_agent_spec(spec);
    create.set_sandbox_pidns(false);
    co_await attach_block_volumes(container->volumes, container->attached_devices);
    for (const auto& storage : container->volumes.storages) *create.add_storages() = storage;
    co_await agent().create_container(create);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    co_await detach_block_volumes(std::move(container->attached_devices));
    co_await release_container_resources(id);  // cpu_mem
    // The guest names the storage it could not mount by its mount point; say which volume that is.
    std::string subject;
    const std::string message = describe(failure);
    for (const auto& block : container->volumes.block_devices) {
      if (message.find(container->volumes.storages.at(block.storage_index).mount_point()) != std::string::npos) {
        subject = block.description;
      }
    }
    try {
      std::rethrow_exception(failure);
    } catch (...) {
      if (subject.empty()) rethrow_with_context(context);
      try {
        rethrow_with_context(subject);
      } catch (...) {
        rethrow_with_context(context);
      }
    }
  }
  // --- end volumes ---
  containers_.emplace(id, std::move(container));
  co_return vm_.vmm_pid();
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::exec_process(ExecProcessRequest request) {
  auto lock = co_await lifecycle_.lock();
  const ProcessId& id = request.process;
  Container& container = find_container(id.container_id);
  if (id.exec_id.empty()) fail(Errc::invalid_argument, "exec in {}: empty exec id", id.container_id);
  if (container.execs.contains(id.exec_id)) fail(Errc::already_exists, "exec {} already exists", id.exec_id);
  if (container.init->exit) fail(Errc::failed_precondition, "container {} has exited", id.container_id);
  with_context(fmt::format("exec {} in {}", id.exec_id, id.container_id), [&] {
    if (request.process_spec_json.empty()) fail(Errc::invalid_argument, "no process spec given");
    oci::Json process_json = oci::Json::parse(request.process_spec_json, nullptr, false);
    if (process_json.is_discarded() || !process_json.is_object()) {
      fail(Errc::invalid_argument, "process spec is not a JSON object");
    }
    (void)oci::spec_from_json(oci::Json{{"process", process_json}}, "exec process spec").process.value();
  });
  auto process = make_process(id, request.stdio, executor_);
  process->exec_spec_json = std::move(request.process_spec_json);
  process->io = with_context(fmt::format("exec {}: open stdio", id.exec_id), [&] {
    return ProcessIo::open(executor_, agent(), process->id, process->stdio, settings_.namespace_name);
  });
  container.execs.emplace(id.exec_id, std::move(process));
  co_return;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<pid_t> VirtSandbox<H, T>::start_process(const ProcessId& id) {
  auto lock = co_await lifecycle_.lock();
  ProcessPtr process = find_process(id);
  const auto context = id.is_init() ? fmt::format("start container {}", id.container_id)
                                    : fmt::format("start exec {} in {}", id.exec_id, id.container_id);
  if (process->status != ProcessStatus::created) fail(Errc::failed_precondition, "{}: already started", context);
  try {
    if (id.is_init()) {
      grpc::StartContainerRequest start;
      start.set_container_id(id.container_id);
      co_await agent().start_container(start);
    } else {
      grpc::ExecProcessRequest exec;
      exec.set_container_id(id.container_id);
      exec.set_exec_id(id.exec_id);
      const oci::Spec holder =
          oci::spec_from_json(oci::Json{{"process", oci::Json::parse(process->exec_spec_json)}}, "exec process spec");
      *exec.mutable_process() = agent::to_agent_process(*holder.process);
      co_await agent().exec_process(exec);
    }
  } catch (...) {
    rethrow_with_context(context);
  }
  process->status = ProcessStatus::running;
  process->io->start(gate_);
  gate_.spawn(run_process(process), [log = detail::sandbox_log(settings_.sandbox_id)](std::exception_ptr e) {
    log.warn("process waiter: {}", describe(e));
  });
  co_return vm_.vmm_pid();
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::run_process(ProcessPtr process) {
  co_await process->io->wait_output_done();
  std::uint32_t status = 255;  // what containerd reports when the exit code cannot be known
  if (!process->exit && agent_ && agent_->is_connected()) {
    grpc::WaitProcessRequest wait;
    wait.set_container_id(process->id.container_id);
    wait.set_exec_id(process->id.is_init() ? std::string() : process->id.exec_id);
    try {
      const grpc::WaitProcessResponse reply = co_await agent_->wait_process(wait);
      status = static_cast<std::uint32_t>(reply.status());
    } catch (const Error& e) {
      detail::sandbox_log(settings_.sandbox_id).warn("wait for {}: {}", process->id.container_id, describe(e));
    }
  }
  finish_process(*process, status);
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
void VirtSandbox<H, T>::finish_process(Process& process, std::uint32_t status) noexcept {
  if (process.exit) return;
  process.exit = ExitInfo{vm_.vmm_pid(), status, std::chrono::system_clock::now()};
  process.status = ProcessStatus::stopped;
  process.exited->set();
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::kill_process(const ProcessId& id, int signal, bool all) {
  const bool terminating = signal == SIGKILL || signal == SIGTERM;
  auto it = containers_.find(id.container_id);
  if (it == containers_.end() && terminating) co_return;  // already gone: the goal is met
  ProcessPtr process = find_process(id);
  if (process->exit || process->status == ProcessStatus::created) {
    if (!terminating) fail(Errc::not_found, "process {} is not running", id.is_init() ? id.container_id : id.exec_id);
    // A created process (never started, or its start failed) ends here, as a created runc
    // container does when killed: waiters get 128 + signal (ctr's `delete -f` kills, then
    // waits). The guest's held process goes with RemoveContainer at delete.
    if (!process->exit) finish_process(*process, 128 + static_cast<std::uint32_t>(signal));
    co_return;
  }
  grpc::SignalProcessRequest request;
  request.set_container_id(id.container_id);
  request.set_exec_id(id.is_init() || all ? std::string() : id.exec_id);
  request.set_signal(static_cast<std::uint32_t>(signal));
  try {
    co_await agent().signal_process(request);
  } catch (const Error& e) {
    // The process may have exited between our check and the guest's: killing it is then done.
    if (terminating && (e.code() == Errc::not_found || e.code() == Errc::unavailable)) co_return;
    rethrow_with_context(fmt::format("signal {} to {}", signal, id.container_id));
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<ExitInfo> VirtSandbox<H, T>::wait_process(const ProcessId& id) {
  ProcessPtr process = find_process(id);  // keeps the record alive across a concurrent delete
  co_await process->exited->wait();
  co_return *process->exit;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<ExitInfo> VirtSandbox<H, T>::delete_process(const ProcessId& id) {
  auto lock = co_await lifecycle_.lock();
  ProcessPtr process = find_process(id);
  if (process->status == ProcessStatus::running || process->status == ProcessStatus::paused) {
    fail(Errc::failed_precondition, "process {} is still running", id.is_init() ? id.container_id : id.exec_id);
  }
  // A process that never ran has no exit code: 255, containerd's "unknown".
  const ExitInfo exit = process->exit.value_or(ExitInfo{vm_.vmm_pid(), 255, std::chrono::system_clock::now()});
  finish_process(*process, exit.exit_status);  // a Wait still pending on it completes
  if (process->io) process->io->abort();
  if (!id.is_init()) {
    find_container(id.container_id).execs.erase(id.exec_id);
    co_return exit;
  }
  if (state_ == State::running && agent_ && agent_->is_connected()) {
    grpc::RemoveContainerRequest remove;
    remove.set_container_id(id.container_id);
    try {
      co_await agent_->remove_container(remove);
    } catch (const Error& e) {
      detail::sandbox_log(settings_.sandbox_id).warn("remove container {} in the guest: {}", id.container_id, describe(e));
    }
  }
  Container& container = find_container(id.container_id);
  for (auto& [exec_id, exec] : container.execs) {
    if (exec->io) exec->io->abort();
    finish_process(*exec, 255);
  }
  // Volumes (resource/volume): the guest has unmounted them with RemoveContainer.
  std::vector<std::string> devices = std::move(container.attached_devices);
  containers_.erase(id.container_id);
  if (state_ == State::running) co_await detach_block_volumes(std::move(devices));
  co_await release_container_resources(id.container_id);  // cpu_mem
  co_return exit;
}

// ---------------------------------------------------------------------------------------------
// Volumes (resource/volume): block and direct volumes are hotplugged into the running VM.

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::attach_block_volumes(resource::ContainerVolumes& volumes, std::vector<std::string>& attached) {
  for (const auto& block : volumes.block_devices) {
    if constexpr (!hypervisor::supports<H, hypervisor::capability::block_device_hotplug>) {
      fail(Errc::not_supported, "volume {}: block device hotplug is not supported by {}", block.host_path.string(), H::name);
    } else {
      hypervisor::BlockDevice device;
      device.id = block.device_id;
      device.path = block.host_path;
      device.read_only = block.read_only;
      const std::string& driver = settings_.config.active_hypervisor().block_device.block_device_driver;
      if (!driver.empty()) device.driver = driver;
      hypervisor::Device any_device(std::move(device));
      const hypervisor::DeviceAttachment attachment = co_await vm_.add_device(std::move(any_device));
      attached.push_back(block.device_id);
      if (attachment.guest_pci_path.empty()) {
        fail(Errc::internal, "volume {}: {} gave no PCI path for device {}", block.host_path.string(), H::name,
             block.device_id);
      }
      volumes.storages.at(block.storage_index).set_source(attachment.guest_pci_path);
    }
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::detach_block_volumes(std::vector<std::string> attached) noexcept {
  for (const auto& device_id : attached) {
    try {
      co_await vm_.remove_device(device_id);
    } catch (const std::exception& e) {
      detail::sandbox_log(settings_.sandbox_id).warn("detach volume device {}: {}", device_id, describe(e));
    }
  }
}

// --- cpu_mem ---
template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::release_container_resources(const std::string& container) noexcept {
  if (state_ != State::running || !agent_ || !agent_->is_connected()) co_return;
  try {
    co_await cpu_mem_.apply(vm_, *agent_, container, resource::cpu_mem::ResourceOp::remove, std::nullopt);
  } catch (const std::exception& e) {
    detail::sandbox_log(settings_.sandbox_id).warn("shrink the VM after container {}: {}", container, describe(e));
  }
}
// --- end cpu_mem ---

template <hypervisor::Hypervisor H, agent::AgentTransport T>
ProcessState VirtSandbox<H, T>::state_process(const ProcessId& id) const {
  const Container& container = find_container(id.container_id);
  const ProcessPtr& process = find_process(id);
  ProcessState state;
  state.process = process->id;
  state.bundle = container.bundle;
  state.pid = task_pid();
  state.status = process->status;
  state.stdio = process->stdio;
  if (process->exit) {
    state.exit_status = process->exit->exit_status;
    state.exited_at = process->exit->exited_at;
  }
  return state;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
std::vector<pid_t> VirtSandbox<H, T>::container_pids(std::string_view container) const {
  (void)find_container(container);
  const pid_t pid = task_pid();
  return pid > 0 ? std::vector<pid_t>{pid} : std::vector<pid_t>{};
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
pid_t VirtSandbox<H, T>::task_pid() const {
  return vm_.vmm_pid();
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::pause_container(std::string_view container) {
  Container& c = find_container(container);
  grpc::PauseContainerRequest request;
  request.set_container_id(std::string(container));
  co_await agent().pause_container(request);
  if (c.init->status == ProcessStatus::running) c.init->status = ProcessStatus::paused;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::resume_container(std::string_view container) {
  Container& c = find_container(container);
  grpc::ResumeContainerRequest request;
  request.set_container_id(std::string(container));
  co_await agent().resume_container(request);
  if (c.init->status == ProcessStatus::paused) c.init->status = ProcessStatus::running;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<std::string> VirtSandbox<H, T>::stats_container(std::string_view container) {
  (void)find_container(container);
  grpc::StatsContainerRequest request;
  request.set_container_id(std::string(container));
  const auto stats = co_await agent().stats_container(request);
  co_return metrics_from_agent_stats(stats);
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::update_container(std::string_view container, std::string resources) {
  (void)find_container(container);
  const auto context = fmt::format("update container {}", container);
  grpc::UpdateContainerRequest request;
  request.set_container_id(std::string(container));
  std::optional<oci::Resources> limits;
  with_context(context, [&] {
    const oci::Json parsed = oci::Json::parse(resources, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) fail(Errc::invalid_argument, "resources are not a JSON object");
    oci::Spec holder = oci::spec_from_json(oci::Json{{"linux", {{"resources", parsed}}}}, "update resources");
    limits = holder.linux_spec->resources.value();
    // cpu_mem: the host's cpuset means nothing in the guest.
    if (holder.linux_spec->resources->cpu) holder.linux_spec->resources->cpu->cpus.clear();
    *request.mutable_resources() = agent::to_agent_resources(holder.linux_spec->resources.value());
  });
  try {
    // --- cpu_mem: grow or shrink the VM for the new limits first (dynamic mode) ---
    co_await cpu_mem_.apply(vm_, agent(), std::string(container), resource::cpu_mem::ResourceOp::update,
                            std::move(limits));
    // --- end cpu_mem ---
    co_await agent().update_container(request);
  } catch (...) {
    rethrow_with_context(context);
  }
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::close_stdin(const ProcessId& id) {
  ProcessPtr process = find_process(id);
  if (process->io) process->io->close_stdin();
  co_return;
}

template <hypervisor::Hypervisor H, agent::AgentTransport T>
Task<void> VirtSandbox<H, T>::resize_pty(const ProcessId& id, std::uint32_t width, std::uint32_t height) {
  ProcessPtr process = find_process(id);
  if (process->status != ProcessStatus::running) co_return;  // containerd resizes right after Start
  grpc::TtyWinResizeRequest request;
  request.set_container_id(id.container_id);
  request.set_exec_id(id.is_init() ? std::string() : id.exec_id);
  request.set_row(height);
  request.set_column(width);
  co_await agent().tty_win_resize(request);
}

}  // namespace kata::runtime
