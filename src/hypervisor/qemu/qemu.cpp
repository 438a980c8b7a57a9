#include "kata/hypervisor/qemu/qemu.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include "kata/core/async_event.hpp"
#include "kata/core/child_process.hpp"
#include "kata/core/error.hpp"
#include "kata/log/log.hpp"

namespace kata::hypervisor::qemu {

/// What exists while (and after) QEMU runs. Shared with the exit watcher, which may outlive the
/// Qemu object by one resumption.
struct Qemu::Runtime {
  explicit Runtime(const Executor& executor) : exited(executor) {}

  ChildProcess process;
  bool spawned = false;
  pid_t pid = -1;
  std::uint64_t start_time = 0;
  std::shared_ptr<QmpClient> qmp;
  AsyncEvent exited;
  ExitStatus status{};
  bool stop_requested = false;
};

namespace {

const log::Logger& logger() {
  static const log::Logger instance("qemu");
  return instance;
}

std::string describe_status(const ExitStatus& status) {
  return status.signal != 0 ? fmt::format("signal {}", status.signal) : fmt::format("code {}", status.exit_code);
}

/// /proc/<pid>/stat field 22 (starttime, clock ticks since boot). The command name (field 2) may
/// contain spaces and parentheses, so counting starts after its last ')'.
std::uint64_t process_start_time(pid_t pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 1));
  std::string field;
  for (int index = 3; fields >> field; ++index) {
    if (index == 22) return std::stoull(field);
  }
  return 0;
}

UniqueFd bind_listener(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path.string();
  if (text.size() >= sizeof address.sun_path) {
    fail(Errc::invalid_argument, "QMP socket path {} is longer than {} bytes", text, sizeof address.sun_path - 1);
  }
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) fail_errno(errno, "create QMP socket");
  ::unlink(text.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) fail_errno(errno, "bind {}", text);
  if (::listen(fd.get(), 1) != 0) fail_errno(errno, "listen on {}", text);
  return fd;
}

/// The last lines QEMU wrote to stderr, on one line, for error messages.
std::string stderr_tail(const std::filesystem::path& path) {
  constexpr std::streamoff limit = 1024;
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return {};
  const std::streamoff size = file.tellg();
  file.seekg(std::max<std::streamoff>(0, size - limit));
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::string out;
  for (char c : text) out.push_back(c == '\n' ? ' ' : c);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// <linux/vhost.h> drags in virtio_ring.h, which is not valid C++; the request number is ABI.
constexpr unsigned long vhost_vsock_set_guest_cid = _IOW(0xAF, 0x60, std::uint64_t);

/// Claims a random guest CID on a vhost-vsock descriptor (EADDRINUSE means another VM has it).
std::optional<std::uint32_t> claim_vsock_cid(int fd) {
  std::random_device seed;
  std::mt19937 random(seed());
  // 0-2 are reserved (hypervisor, local, host); keep clear of VMADDR_CID_ANY (0xffffffff).
  std::uniform_int_distribution<std::uint32_t> cids(3, 0xfffffffeU);
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::uint64_t cid = cids(random);
    if (::ioctl(fd, vhost_vsock_set_guest_cid, &cid) == 0) return static_cast<std::uint32_t>(cid);
    if (errno != EADDRINUSE) return std::nullopt;
  }
  return std::nullopt;
}

void require_file(std::string_view key, const std::string& path) {
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) {
    fail(Errc::not_found, "[hypervisor.qemu] {}: {} does not exist", key, path);
  }
  if (std::filesystem::is_directory(status)) fail(Errc::invalid_argument, "[hypervisor.qemu] {}: {} is a directory", key, path);
}

// ceil, tolerant of binary rounding as kata::resource::cpu_mem::boot_vcpus (static sizing's
// 2 plus rounding noise must boot 2 vCPUs, the default_maxvcpus it set).
std::uint32_t boot_vcpus(const config::HypervisorConfig& config) {
  return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::ceil(config.cpu.default_vcpus - 1e-6)));
}

std::string device_id(const Device& device) {
  return std::visit(
      [](const auto& d) -> std::string {
        if constexpr (requires { d.id; }) {
          return d.id;
        } else {
          return d.mount_tag;
        }
      },
      device);
}

Task<void> send_quit(std::shared_ptr<QmpClient> qmp) {
  try {
    co_await qmp->execute("quit", nlohmann::json::object(), Qemu::stop_grace);
  } catch (const std::exception& error) {
    // QEMU may close the connection before replying to quit; SIGKILL follows if it lingers.
    logger().debug("QMP quit: {}", error.what());
  }
}

std::string pci_slot(unsigned slot) { return fmt::format("{:02x}", slot); }

std::uint32_t align_up(std::uint32_t value, std::uint32_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

}  // namespace

Task<void> Qemu::watch_exit(std::shared_ptr<Runtime> runtime, Executor executor) {
  ExitStatus status{};
  try {
    status = co_await runtime->process.wait(executor);
  } catch (const std::exception& error) {
    logger().error("wait for qemu (pid {}): {}", runtime->pid, error.what());
    status = ExitStatus{0, SIGKILL};
  }
  runtime->status = status;
  if (runtime->qmp) runtime->qmp->close();
  runtime->exited.set();
}

Qemu::Qemu(Executor executor, VmContext context) : Qemu(executor, std::move(context), HostFeatures::probe()) {}

Qemu::Qemu(Executor executor, VmContext context, HostFeatures host)
    : executor_(std::move(executor)),
      context_(std::move(context)),
      host_(host),
      sequence_lock_(executor_),
      runtime_(std::make_shared<Runtime>(executor_)) {
  qmp_socket_ = context_.state_dir / "qmp.sock";
  console_log_ = context_.state_dir / "console.log";
  stderr_log_ = context_.state_dir / "qemu.log";
  std::optional<std::uint32_t> cid;
  if (host_.vhost_vsock) {
    vhost_vsock_.reset(::open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC));
    if (vhost_vsock_) cid = claim_vsock_cid(vhost_vsock_.get());
    if (!cid) vhost_vsock_.reset();
  }
  if (cid) {
    channel_ = VsockChannel{.guest_cid = *cid, .vhost_fd = -1};
  } else {
    SerialChannel serial{context_.state_dir / "agent.sock", std::nullopt};
    if (context_.config.debug.enable_debug) serial.log_socket = context_.state_dir / "agent-log.sock";
    channel_ = std::move(serial);
  }
  const std::uint32_t ports = context_.config.device.pcie_root_port != 0 ? context_.config.device.pcie_root_port
                                                                          : default_root_ports;
  for (std::uint32_t i = 0; i < ports && last_root_port_slot - i >= first_cold_plug_slot; ++i) {
    root_ports_.push_back(RootPort{fmt::format("rp{}", i), last_root_port_slot - i});
  }
  root_port_busy_.assign(root_ports_.size(), false);
}

Qemu::~Qemu() {
  if (runtime_->spawned && !runtime_->process.try_wait()) {
    runtime_->process.signal(SIGKILL);
    try {
      runtime_->process.terminate_blocking(std::chrono::milliseconds(0));
    } catch (const std::exception& error) {
      logger().error("reap qemu (pid {}): {}", runtime_->pid, error.what());
    }
  }
  if (runtime_->qmp) runtime_->qmp->close();
}

// ---------------------------------------------------------------------------------------------

Task<void> Qemu::prepare_vm() {
  if (phase_ != Phase::created) fail(Errc::failed_precondition, "prepare qemu VM {}: already prepared", context_.sandbox_id);
  with_context(fmt::format("prepare qemu VM {}", context_.sandbox_id), [&] {
    const auto& config = context_.config;
    if (config.path.empty()) fail(Errc::invalid_argument, "[hypervisor.qemu] path: no QEMU binary configured");
    require_file("path", config.path);
    if (::access(config.path.c_str(), X_OK) != 0) fail_errno(errno, "[hypervisor.qemu] path: {}", config.path);
    if (config.boot.kernel.empty()) fail(Errc::invalid_argument, "[hypervisor.qemu] kernel: no guest kernel configured");
    require_file("kernel", config.boot.kernel);
    if (!config.boot.initrd.empty() && !config.boot.image.empty()) {
      fail(Errc::invalid_argument, "[hypervisor.qemu] initrd and image are both set ({} and {}); choose one",
           config.boot.initrd, config.boot.image);
    }
    if (!config.boot.initrd.empty()) require_file("initrd", config.boot.initrd);
    if (!config.boot.image.empty()) {
      require_file("image", config.boot.image);
      rootfs_image_bytes_ = std::filesystem::file_size(config.boot.image);
    }
    if (!config.machine.machine_type.empty() && config.machine.machine_type != "q35") {
      fail(Errc::not_supported, "[hypervisor.qemu] machine_type: {} is not supported by qemu backend (only q35)",
           config.machine.machine_type);
    }
    if (config.memory.default_memory == 0) fail(Errc::invalid_argument, "[hypervisor.qemu] default_memory: must be above 0");
    std::filesystem::create_directories(context_.state_dir);
  });
  // Same sandbox id after a failed start or a crashed shim: stale sockets would make QEMU's
  // chardev servers fail to bind.
  remove_files();
  phase_ = Phase::prepared;
  co_return;
}

// ---------------------------------------------------------------------------------------------
// Devices

unsigned Qemu::take_cold_slot(std::string_view id) {
  const unsigned lowest_port = root_ports_.empty() ? last_root_port_slot + 1 : root_ports_.back().slot;
  if (next_cold_slot_ >= lowest_port) {
    fail(Errc::resource_exhausted, "add device {}: no free PCI slot on pcie.0 ({} root ports reserved)", id,
         root_ports_.size());
  }
  return next_cold_slot_++;
}

Task<DeviceAttachment> Qemu::add_device(Device device) {
  std::string id = device_id(device);
  if (id.empty()) fail(Errc::invalid_argument, "add device to qemu VM {}: the device has no id", context_.sandbox_id);
  if (std::holds_alternative<VfioDevice>(device)) {
    fail(Errc::not_supported, "add device {}: VFIO passthrough is not supported by {}", id, name);
  }
  if (phase_ == Phase::starting) fail(Errc::unavailable, "add device {}: the qemu VM is starting", id);
  if (phase_ == Phase::stopped) fail(Errc::failed_precondition, "add device {}: the qemu VM has stopped", id);
  if (auto* block = std::get_if<BlockDevice>(&device); block && !block->driver.empty() && block->driver != "virtio-blk-pci") {
    fail(Errc::not_supported, "add device {}: block driver {} is not supported by {}", id, block->driver, name);
  }
  // Reserved before any suspension, so a concurrent add of the same id fails at once.
  if (!ids_.insert(id).second) fail(Errc::already_exists, "add device {}: a device with this id already exists", id);
  try {
    if (phase_ != Phase::running) co_return co_await queue_device(std::move(device), id);
    if (auto* block = std::get_if<BlockDevice>(&device)) co_return co_await hotplug_block(std::move(*block), id);
    if (auto* network = std::get_if<NetworkDevice>(&device)) co_return co_await hotplug_network(std::move(*network), id);
    fail(Errc::not_supported, "add device {}: hotplug of a shared filesystem is not supported by {}", id, name);
  } catch (...) {
    ids_.erase(id);
    throw;
  }
}

Task<DeviceAttachment> Qemu::queue_device(Device device, const std::string& id) {
  const std::uint32_t number = next_number_++;
  if (auto* block = std::get_if<BlockDevice>(&device)) {
    struct stat info {};
    if (::stat(block->path.c_str(), &info) != 0) fail_errno(errno, "add block device {}: {}", id, block->path.string());
    const unsigned slot = take_cold_slot(id);
    cold_devices_.emplace(id, fmt::format("blk{}", number));
    cold_blocks_.push_back(PlannedBlock{.qdev_id = fmt::format("blk{}", number),
                                        .node_name = fmt::format("drive-blk{}", number),
                                        .path = block->path,
                                        .read_only = block->read_only,
                                        .host_device = S_ISBLK(info.st_mode),
                                        .slot = slot});
    co_return DeviceAttachment{id, pci_slot(slot), ""};
  }
  if (auto* network = std::get_if<NetworkDevice>(&device)) {
    if (network->tap_fds.empty()) fail(Errc::invalid_argument, "add network device {}: no tap descriptor", id);
    const unsigned slot = take_cold_slot(id);
    cold_devices_.emplace(id, fmt::format("net{}", number));
    QueuedNetwork queued;
    queued.plan = PlannedNetwork{.qdev_id = fmt::format("net{}", number),
                                 .netdev_id = fmt::format("netdev-net{}", number),
                                 .mac = network->guest_mac,
                                 .tap_fds = {},
                                 .slot = slot};
    queued.tap_fds = std::move(network->tap_fds);
    cold_networks_.push_back(std::move(queued));
    co_return DeviceAttachment{id, pci_slot(slot), ""};
  }
  auto& fs = std::get<ShareFsDevice>(device);
  if (fs.kind == ShareFsDevice::Kind::virtio_fs && fs.daemon_socket.empty()) {
    fail(Errc::invalid_argument, "add virtio-fs device {}: no virtiofsd socket", id);
  }
  if (fs.kind == ShareFsDevice::Kind::virtio_9p && fs.shared_dir.empty()) {
    fail(Errc::invalid_argument, "add virtio-9p device {}: no shared directory", id);
  }
  const unsigned slot = take_cold_slot(id);
  cold_devices_.emplace(id, fmt::format("fs{}", number));
  cold_share_fs_.push_back(PlannedShareFs{.id = fmt::format("fs{}", number),
                                          .kind = fs.kind,
                                          .mount_tag = fs.mount_tag,
                                          .daemon_socket = fs.daemon_socket,
                                          .shared_dir = fs.shared_dir,
                                          .queue_size = fs.queue_size,
                                          .slot = slot});
  co_return DeviceAttachment{id, pci_slot(slot), ""};
}

namespace {
std::optional<std::size_t> take_root_port(std::vector<bool>& busy) {
  for (std::size_t i = 0; i < busy.size(); ++i) {
    if (!busy[i]) {
      busy[i] = true;
      return i;
    }
  }
  return std::nullopt;
}
}  // namespace


Task<DeviceAttachment> Qemu::hotplug_block(BlockDevice device, std::string id) {
  const auto port = take_root_port(root_port_busy_);
  if (!port) fail(Errc::resource_exhausted, "hotplug block device {}: all {} root ports are in use", id, root_ports_.size());
  const std::uint32_t number = next_number_++;
  const std::string qdev = fmt::format("blk{}", number);
  const std::string node = fmt::format("drive-blk{}", number);
  std::exception_ptr failure;
  bool node_added = false;
  auto lock = co_await sequence_lock_.lock();
  auto qmp = runtime_->qmp;
  try {
    require_running("hotplug block device");
    struct stat info {};
    if (::stat(device.path.c_str(), &info) != 0) fail_errno(errno, "stat {}", device.path.string());
    nlohmann::json file = {{"driver", S_ISBLK(info.st_mode) ? "host_device" : "file"}, {"filename", device.path.string()}};
    nlohmann::json blockdev = {{"driver", "raw"}, {"node-name", node}, {"read-only", device.read_only}, {"file", file}};
    co_await qmp->execute("blockdev-add", std::move(blockdev));
    node_added = true;
    nlohmann::json arguments = {{"driver", "virtio-blk-pci"}, {"id", qdev}, {"drive", node}, {"bus", root_ports_[*port].id}};
    co_await qmp->execute("device_add", std::move(arguments));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    root_port_busy_[*port] = false;
    if (node_added) {
      try {
        nlohmann::json del = {{"node-name", node}};
        co_await qmp->execute("blockdev-del", std::move(del));
      } catch (const std::exception& error) {
        logger().warn("roll back block node {}: {}", node, error.what());
      }
    }
    try {
      std::rethrow_exception(failure);
    } catch (...) {
      rethrow_with_context(fmt::format("hotplug block device {} ({})", id, device.path.string()));
    }
  }
  hotplugged_.emplace(id, Hotplugged{Hotplugged::Kind::block, qdev, node, *port});
  co_return DeviceAttachment{id, fmt::format("{}/00", pci_slot(root_ports_[*port].slot)), ""};
}

Task<DeviceAttachment> Qemu::hotplug_network(NetworkDevice device, std::string id) {
  if (device.tap_fds.empty()) fail(Errc::invalid_argument, "hotplug network device {}: no tap descriptor", id);
  const auto port = take_root_port(root_port_busy_);
  if (!port) fail(Errc::resource_exhausted, "hotplug network device {}: all {} root ports are in use", id, root_ports_.size());
  const std::uint32_t number = next_number_++;
  const std::string qdev = fmt::format("net{}", number);
  const std::string netdev = fmt::format("netdev-net{}", number);
  std::exception_ptr failure;
  std::vector<std::string> passed_fds;  // named in QEMU, not yet consumed by a netdev
  bool netdev_added = false;
  auto lock = co_await sequence_lock_.lock();
  auto qmp = runtime_->qmp;
  try {
    require_running("hotplug network device");
    for (std::size_t i = 0; i < device.tap_fds.size(); ++i) {
      std::string fd_name = fmt::format("fd-{}-{}", qdev, i);
      nlohmann::json arguments = {{"fdname", fd_name}};
      co_await qmp->execute_with_fd("getfd", std::move(arguments), device.tap_fds[i].get());
      passed_fds.push_back(std::move(fd_name));
    }
    nlohmann::json tap = {{"type", "tap"}, {"id", netdev}, {"vhost", false}};
    if (passed_fds.size() == 1) {
      tap["fd"] = passed_fds.front();
    } else {
      tap["fds"] = fmt::format("{}", fmt::join(passed_fds, ":"));
    }
    co_await qmp->execute("netdev_add", std::move(tap));
    passed_fds.clear();
    netdev_added = true;
    nlohmann::json nic = {{"driver", "virtio-net-pci"}, {"id", qdev}, {"netdev", netdev}, {"mac", device.guest_mac},
                          {"romfile", ""}, {"bus", root_ports_[*port].id}};
    if (device.tap_fds.size() > 1) {
      nic["mq"] = true;
      nic["vectors"] = 2 * device.tap_fds.size() + 2;
    }
    co_await qmp->execute("device_add", std::move(nic));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    root_port_busy_[*port] = false;
    for (const auto& fd_name : passed_fds) {
      try {
        nlohmann::json arguments = {{"fdname", fd_name}};
        co_await qmp->execute("closefd", std::move(arguments));
      } catch (const std::exception& error) {
        logger().warn("roll back QMP fd {}: {}", fd_name, error.what());
      }
    }
    if (netdev_added) {
      try {
        nlohmann::json arguments = {{"id", netdev}};
        co_await qmp->execute("netdev_del", std::move(arguments));
      } catch (const std::exception& error) {
        logger().warn("roll back netdev {}: {}", netdev, error.what());
      }
    }
    try {
      std::rethrow_exception(failure);
    } catch (...) {
      rethrow_with_context(fmt::format("hotplug network device {} ({})", id, device.host_interface));
    }
  }
  hotplugged_.emplace(id, Hotplugged{Hotplugged::Kind::network, qdev, netdev, *port});
  co_return DeviceAttachment{id, fmt::format("{}/00", pci_slot(root_ports_[*port].slot)), ""};
}

Task<void> Qemu::remove_device(std::string_view id) {
  const std::string key(id);
  if (phase_ == Phase::created || phase_ == Phase::prepared) {
    // Not started: take it out of the cold-plug queue. Its slot stays used, so the PCI paths
    // already handed out for other devices remain true.
    const auto cold = cold_devices_.find(key);
    if (cold == cold_devices_.end()) fail(Errc::not_found, "remove device {}: no such device", key);
    const std::string internal = cold->second;
    std::erase_if(cold_blocks_, [&](const PlannedBlock& b) { return b.qdev_id == internal; });
    std::erase_if(cold_networks_, [&](const QueuedNetwork& n) { return n.plan.qdev_id == internal; });
    std::erase_if(cold_share_fs_, [&](const PlannedShareFs& f) { return f.id == internal; });
    cold_devices_.erase(cold);
    ids_.erase(key);
    co_return;
  }
  const auto it = hotplugged_.find(key);
  if (it == hotplugged_.end()) {
    if (ids_.contains(key)) {
      fail(Errc::not_supported, "remove device {}: hot-unplug of a cold-plugged device is not supported by {}", key, name);
    }
    fail(Errc::not_found, "remove device {}: no such device", key);
  }
  const Hotplugged record = it->second;
  auto lock = co_await sequence_lock_.lock();
  std::exception_ptr failure;
  try {
    require_running("remove device");
    auto qmp = runtime_->qmp;
    // Subscribed before device_del: the event may arrive before its reply.
    auto deleted = qmp->subscribe("DEVICE_DELETED");
    nlohmann::json arguments = {{"id", record.qdev_id}};
    co_await qmp->execute("device_del", std::move(arguments));
    const auto deadline = std::chrono::steady_clock::now() + unplug_timeout;
    for (;;) {
      auto event = co_await deleted.next(deadline);
      if (!event) {
        fail(Errc::deadline_exceeded, "the guest did not release {} within {} ms", record.qdev_id, unplug_timeout.count());
      }
      if (event->data.value("device", std::string()) == record.qdev_id) break;
    }
    if (record.kind == Hotplugged::Kind::network) {
      nlohmann::json netdev = {{"id", record.backend_id}};
      co_await qmp->execute("netdev_del", std::move(netdev));  // QEMU closes the tap descriptors
    } else {
      nlohmann::json node = {{"node-name", record.backend_id}};
      co_await qmp->execute("blockdev-del", std::move(node));
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (...) {
      rethrow_with_context(fmt::format("remove device {}", key));
    }
  }
  root_port_busy_[record.root_port] = false;
  hotplugged_.erase(key);
  ids_.erase(key);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

void Qemu::require_running(std::string_view operation) const {
  if (phase_ != Phase::running || !runtime_->qmp || runtime_->exited.is_set()) {
    fail(Errc::failed_precondition, "{}: the qemu VM of sandbox {} is not running", operation, context_.sandbox_id);
  }
}

bool Qemu::shares_memory() const {
  return std::any_of(cold_share_fs_.begin(), cold_share_fs_.end(),
                     [](const PlannedShareFs& fs) { return fs.kind == ShareFsDevice::Kind::virtio_fs; }) ||
         context_.config.memory.enable_hugepages;
}

std::vector<std::filesystem::path> Qemu::owned_files() const {
  std::vector<std::filesystem::path> files = {qmp_socket_, console_log_, stderr_log_};
  if (const auto* serial = std::get_if<SerialChannel>(&channel_)) {
    files.push_back(serial->socket);
    if (serial->log_socket) files.push_back(*serial->log_socket);
  }
  return files;
}

void Qemu::remove_files() noexcept {
  for (const auto& file : owned_files()) {
    std::error_code error;
    std::filesystem::remove(file, error);
    if (error) logger().warn("remove {}: {}", file.string(), error.message());
  }
}

Task<void> Qemu::start_vm(std::chrono::milliseconds timeout) {
  if (phase_ != Phase::prepared) {
    fail(Errc::failed_precondition, "start qemu VM {}: {}", context_.sandbox_id,
         phase_ == Phase::created ? "prepare_vm has not run" : "it was already started");
  }
  phase_ = Phase::starting;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::exception_ptr failure;
  try {
    co_await launch(deadline);
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) {
    phase_ = Phase::running;
    co_return;
  }

  // Roll back: nothing of this attempt may survive it (kata #13564 leaked QEMU after a QMP error).
  auto runtime = runtime_;
  if (runtime->spawned) {
    runtime->process.signal(SIGKILL);
    co_await runtime->exited.wait();
  }
  const std::string tail = stderr_tail(stderr_log_);
  remove_files();
  vhost_vsock_.reset();
  cold_networks_.clear();
  phase_ = Phase::stopped;
  const std::string context = fmt::format("start qemu VM {}", context_.sandbox_id);
  if (runtime->spawned && runtime->status.signal != SIGKILL) {
    // QEMU ended on its own: its stderr says why, whatever the shim was doing at that moment.
    try {
      fail(Errc::internal, "qemu exited with {} during startup{}{}", describe_status(runtime->status),
           tail.empty() ? "" : ": ", tail);
    } catch (...) {
      rethrow_with_context(context);
    }
  }
  try {
    std::rethrow_exception(failure);
  } catch (...) {
    rethrow_with_context(tail.empty() ? context : fmt::format("{} (qemu stderr: {})", context, tail));
  }
}

Task<void> Qemu::launch(std::chrono::steady_clock::time_point deadline) {
  const auto& config = context_.config;
  UniqueFd listener = bind_listener(qmp_socket_);
  UniqueFd stderr_log(::open(stderr_log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
  if (!stderr_log) fail_errno(errno, "create {}", stderr_log_.string());

  // Descriptor numbers in the child, in a fixed order: QMP, vhost-vsock, taps.
  SpawnOptions options;
  int next_fd = 3;
  LaunchPlan plan;
  plan.accelerator = choose_accelerator(host_);
  plan.qmp_fd = next_fd++;
  options.extra_fds.push_back({listener.get(), plan.qmp_fd});
  plan.agent_channel = channel_;
  if (auto* vsock = std::get_if<VsockChannel>(&plan.agent_channel)) {
    vsock->vhost_fd = next_fd++;
    options.extra_fds.push_back({vhost_vsock_.get(), vsock->vhost_fd});
  }
  plan.console_log = console_log_;
  plan.rootfs_image_bytes = rootfs_image_bytes_;
  plan.root_ports = root_ports_;
  plan.block_devices = cold_blocks_;
  for (auto& network : cold_networks_) {
    PlannedNetwork planned = network.plan;
    for (const auto& fd : network.tap_fds) {
      planned.tap_fds.push_back(next_fd);
      options.extra_fds.push_back({fd.get(), next_fd++});
    }
    plan.network_devices.push_back(std::move(planned));
  }
  plan.share_fs = cold_share_fs_;

  options.program = config.path;
  options.arguments = build_command_line(context_, plan);
  options.working_directory = context_.state_dir;
  options.stderr_fd = stderr_log.get();
  options.network_namespace = context_.network_namespace;
  logger().info("launch {} {}", config.path, fmt::join(options.arguments, " "));

  auto runtime = runtime_;
  runtime->process = with_context("launch qemu", [&] { return ChildProcess::spawn(options); });
  runtime->spawned = true;
  runtime->pid = runtime->process.pid();
  runtime->start_time = process_start_time(runtime->pid);
  asio::co_spawn(executor_, watch_exit(runtime, executor_), asio::detached);
  // QEMU holds the only copies now: if it dies, the listener closes and our QMP connection sees EOF.
  listener.reset();
  vhost_vsock_.reset();
  cold_networks_.clear();

  asio::local::stream_protocol::socket socket(executor_);
  boost::system::error_code error;
  socket.connect(asio::local::stream_protocol::endpoint(qmp_socket_.string()), error);
  if (error) fail(Errc::unavailable, "connect to QMP socket {}: {}", qmp_socket_.string(), error.message());
  runtime->qmp = std::make_shared<QmpClient>(std::move(socket));
  if (runtime->exited.is_set()) runtime->qmp->close();
  const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  co_await runtime->qmp->handshake(std::max(remaining, std::chrono::milliseconds(1)));
}

Task<void> Qemu::stop_vm() {
  auto runtime = runtime_;
  if (!runtime->spawned) co_return;
  if (!runtime->exited.is_set() && !runtime->stop_requested) {
    runtime->stop_requested = true;
    // quit runs on its own, so a QMP exchange stuck behind a slow command cannot delay the kill.
    if (runtime->qmp && runtime->qmp->is_open()) asio::co_spawn(executor_, send_quit(runtime->qmp), asio::detached);
    if (!co_await runtime->exited.wait_for(stop_grace)) {
      logger().warn("qemu (pid {}) still running {} ms after quit; killing it", runtime->pid, stop_grace.count());
      runtime->process.signal(SIGKILL);
    }
  }
  co_await runtime->exited.wait();
  if (phase_ == Phase::running) phase_ = Phase::stopped;
}

Task<ExitStatus> Qemu::wait_vm() {
  auto runtime = runtime_;
  co_await runtime->exited.wait();
  if (phase_ == Phase::running) phase_ = Phase::stopped;
  co_return runtime->status;
}

Task<void> Qemu::pause_vm() {
  require_running("pause VM");
  auto qmp = runtime_->qmp;
  co_await qmp->execute("stop");
}

Task<void> Qemu::resume_vm() {
  require_running("resume VM");
  auto qmp = runtime_->qmp;
  co_await qmp->execute("cont");
}

Task<nlohmann::json> Qemu::query(std::string command) {
  if (!command.starts_with("query-")) {
    fail(Errc::invalid_argument, "QMP {}: only query-* commands are allowed here", command);
  }
  require_running(command);
  auto qmp = runtime_->qmp;
  co_return co_await qmp->execute(std::move(command));
}

// ---------------------------------------------------------------------------------------------
// Resizing

Task<VcpuResize> Qemu::resize_vcpus(std::uint32_t count) {
  require_running("resize vCPUs");
  auto lock = co_await sequence_lock_.lock();
  require_running("resize vCPUs");
  auto qmp = runtime_->qmp;
  const auto& config = context_.config;
  const std::uint32_t boot = boot_vcpus(config);
  std::uint32_t target = std::clamp(count, boot, std::max(boot, config.cpu.default_maxvcpus));

  const nlohmann::json slots = co_await qmp->execute("query-hotpluggable-cpus");
  std::vector<nlohmann::json> free_slots, plugged;
  for (const auto& slot : slots) {
    if (!slot.contains("qom-path")) {
      free_slots.push_back(slot);
    } else if (slot["qom-path"].get<std::string>().starts_with("/machine/peripheral/")) {
      plugged.push_back(slot);
    }
  }
  const auto present = static_cast<std::uint32_t>(slots.size() - free_slots.size());
  // QEMU 7.2 under TCG corrupts its heap ("corrupted double-linked list", abort) when a vCPU is
  // plugged into a slot an earlier unplug emptied: a pod that shrinks and grows again would lose
  // its VM. Without KVM the VM keeps its vCPUs instead (docs/resources.md).
  if (target < present && choose_accelerator(host_) != Accelerator::kvm) {
    logger().info("resize vCPUs to {}: keeping {} (vCPU unplug is disabled under TCG)", target, present);
    target = present;
  }
  // Plug in topology order, unplug in reverse: QEMU lists slots highest first.
  auto topology = [](const nlohmann::json& slot) {
    const auto& p = slot["props"];
    return std::tuple(p.value("socket-id", 0), p.value("core-id", 0), p.value("thread-id", 0));
  };
  std::sort(free_slots.begin(), free_slots.end(), [&](const auto& a, const auto& b) { return topology(a) < topology(b); });
  std::sort(plugged.begin(), plugged.end(), [&](const auto& a, const auto& b) { return topology(a) > topology(b); });

  std::uint32_t now = present;
  try {
    for (std::size_t i = 0; now < target && i < free_slots.size(); ++i, ++now) {
      const auto [socket, core, thread] = topology(free_slots[i]);
      nlohmann::json arguments = free_slots[i]["props"];
      arguments["driver"] = free_slots[i]["type"];
      arguments["id"] = fmt::format("cpu-{}-{}-{}", socket, core, thread);
      co_await qmp->execute("device_add", std::move(arguments));
    }
    for (std::size_t i = 0; now > target && i < plugged.size(); ++i, --now) {
      const std::string path = plugged[i]["qom-path"];
      nlohmann::json arguments = {{"id", path.substr(path.rfind('/') + 1)}};
      co_await qmp->execute("device_del", std::move(arguments));
    }
  } catch (...) {
    rethrow_with_context(fmt::format("resize vCPUs from {} to {} (at {})", present, target, now));
  }
  co_return VcpuResize{present, now};
}

Task<MemoryResize> Qemu::resize_memory(std::uint32_t mib) {
  require_running("resize memory");
  auto lock = co_await sequence_lock_.lock();
  require_running("resize memory");
  auto qmp = runtime_->qmp;
  const auto& config = context_.config;
  const std::uint32_t boot = config.memory.default_memory;
  const std::uint32_t maximum = config.memory.default_maxmemory;
  const std::uint32_t current = boot + hotplugged_mib_;
  if (maximum <= boot) {
    fail(Errc::not_supported, "resize memory to {} MiB: default_maxmemory ({} MiB) leaves no room above the boot size in {}",
         mib, maximum, name);
  }
  if (config.memory.enable_virtio_mem) {
    const std::uint32_t region = maximum - boot;
    const std::uint32_t wanted = std::min(align_up(std::max(mib, boot) - boot, memory_block_mib), region / 2 * 2);
    nlohmann::json arguments = {{"path", "/machine/peripheral/virtiomem0"},
                                {"property", "requested-size"},
                                {"value", static_cast<std::uint64_t>(wanted) << 20}};
    std::exception_ptr failure;
    try {
      co_await qmp->execute("qom-set", std::move(arguments));
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      try {
        std::rethrow_exception(failure);
      } catch (...) {
        rethrow_with_context(fmt::format("resize virtio-mem from {} to {} MiB", current, boot + wanted));
      }
    }
    hotplugged_mib_ = wanted;
    co_return MemoryResize{current, boot + wanted};
  }
  if (mib <= current) co_return MemoryResize{current, current};
  std::uint32_t delta = align_up(mib - current, memory_block_mib);
  if (current + delta > maximum) delta = (maximum - current) / memory_block_mib * memory_block_mib;
  if (delta == 0) {
    fail(Errc::out_of_range, "resize memory to {} MiB: {} MiB are in use and default_maxmemory is {} MiB", mib, current,
         maximum);
  }
  if (dimm_count_ >= config.memory.memory_slots) {
    fail(Errc::resource_exhausted, "resize memory to {} MiB: all {} memory_slots are in use", mib, config.memory.memory_slots);
  }
  const std::uint32_t number = dimm_count_;
  const std::string backend = fmt::format("mem-dimm{}", number);
  const bool shared = shares_memory();
  nlohmann::json object = {{"qom-type", shared ? "memory-backend-memfd" : "memory-backend-ram"},
                           {"id", backend},
                           {"size", static_cast<std::uint64_t>(delta) << 20}};
  if (shared) object["share"] = true;
  std::exception_ptr failure;
  bool backend_added = false;
  try {
    co_await qmp->execute("object-add", std::move(object));
    backend_added = true;
    nlohmann::json dimm = {{"driver", "pc-dimm"}, {"id", fmt::format("dimm{}", number)}, {"memdev", backend}};
    co_await qmp->execute("device_add", std::move(dimm));
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    if (backend_added) {
      try {
        nlohmann::json del = {{"id", backend}};
        co_await qmp->execute("object-del", std::move(del));
      } catch (const std::exception& error) {
        logger().warn("roll back memory backend {}: {}", backend, error.what());
      }
    }
    try {
      std::rethrow_exception(failure);
    } catch (...) {
      rethrow_with_context(fmt::format("resize memory from {} to {} MiB", current, current + delta));
    }
  }
  ++dimm_count_;
  hotplugged_mib_ += delta;
  co_return MemoryResize{current, current + delta};
}

Task<std::map<std::uint32_t, pid_t>> Qemu::vcpu_thread_ids() {
  require_running("list vCPU threads");
  auto qmp = runtime_->qmp;
  const nlohmann::json cpus = co_await qmp->execute("query-cpus-fast");
  std::map<std::uint32_t, pid_t> threads;
  for (const auto& cpu : cpus) threads[cpu.at("cpu-index").get<std::uint32_t>()] = cpu.at("thread-id").get<pid_t>();
  co_return threads;
}

Task<void> Qemu::cleanup() {
  if (runtime_->spawned && !runtime_->exited.is_set()) co_await stop_vm();
  remove_files();
  vhost_vsock_.reset();
  cold_networks_.clear();
}

// ---------------------------------------------------------------------------------------------
// Observers

AgentAddress Qemu::agent_address() const {
  if (const auto* vsock = std::get_if<VsockChannel>(&channel_)) return VsockAddress{vsock->guest_cid, context_.agent_port};
  return SerialPortAddress{std::get<SerialChannel>(channel_).socket};
}

bool Qemu::is_running() const { return runtime_->spawned && !runtime_->exited.is_set(); }

pid_t Qemu::vmm_pid() const { return runtime_->spawned ? runtime_->pid : -1; }

std::vector<pid_t> Qemu::pids() const {
  if (!is_running()) return {};
  return {runtime_->pid};
}

nlohmann::json Qemu::save_state() const {
  nlohmann::json sockets = {{"qmp", qmp_socket_.string()}};
  if (const auto* serial = std::get_if<SerialChannel>(&channel_)) {
    sockets["agent"] = serial->socket.string();
    if (serial->log_socket) sockets["agent_log"] = serial->log_socket->string();
  }
  nlohmann::json state = {{"hypervisor_type", std::string(name)},
                          {"id", context_.sandbox_id},
                          {"pid", runtime_->spawned ? nlohmann::json(runtime_->pid) : nlohmann::json()},
                          {"pid_start_time", runtime_->start_time},
                          {"state_dir", context_.state_dir.string()},
                          {"netns", context_.network_namespace.string()},
                          {"agent_address", to_url(agent_address())},
                          {"console_log", console_log_.string()},
                          {"sockets", sockets}};
  return state;
}

}  // namespace kata::hypervisor::qemu
