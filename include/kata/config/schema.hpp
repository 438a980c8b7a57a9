// The typed configuration: what configuration.toml (plus config.d/ drop-ins and annotations) says.
//
// Plain structs, one per upstream TOML table, with upstream's *code* defaults as member
// initializers (a key absent from the file keeps the value written here; shipped files set most
// of them explicitly). Member names equal the TOML key names, except where a comment says
// otherwise, so `grep default_vcpus` finds both. Upstream flattens its hypervisor sub-structs
// (#[serde(flatten)]): every key of a HypervisorConfig group lives directly in
// [hypervisor.<name>]; the grouping here is for readers only.
//
// Loading, adjusting and validating live in kata/config/loader.hpp; annotation overrides in
// kata/config/annotations.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kata::config {

/// Section names of [hypervisor.<name>] that this project understands ("clh" is Cloud Hypervisor).
inline constexpr std::string_view hypervisor_qemu = "qemu";
inline constexpr std::string_view hypervisor_clh = "clh";
inline constexpr std::string_view hypervisor_dragonball = "dragonball";
inline constexpr std::string_view hypervisor_firecracker = "firecracker";
inline constexpr std::string_view hypervisor_remote = "remote";

/// The only agent name upstream knows ([agent.kata]).
inline constexpr std::string_view agent_kata = "kata";

// ---------------------------------------------------------------------------------------------
// [hypervisor.<name>] groups (all keys flat in the section)

/// Guest boot assets (upstream BootInfo).
struct BootInfo {
  std::string kernel;
  std::string kernel_params;
  /// dm-verity parameters "root_hash=..,salt=..,data_blocks=..,data_block_size=..,hash_block_size=..".
  std::string kernel_verity_params;
  std::string initrd;
  std::string image;
  /// Filesystem of `image` (qemu default "ext4").
  std::string rootfs_type;
  std::string firmware;
  /// How `image` is attached: virtio-pmem, virtio-blk-pci, virtio-blk-ccw, virtio-blk-mmio, virtio-scsi.
  std::string vm_rootfs_driver;
};

/// One extra block image attached read-only to the guest ([[hypervisor.X.guest_extension_images]]).
struct GuestExtensionImage {
  std::string name;
  std::string path;
  std::string verity_params;
};

/// vCPUs (upstream CpuInfo). default_vcpus is fractional: 0.75 means "a share of one CPU"; the VM
/// boots with ceil(default_vcpus) vCPUs.
struct CpuInfo {
  std::string cpu_features;
  double default_vcpus = 0.0;
  /// Added to the workload's CPU limit in static sizing (kata/resource/cpu_mem/initial_size.hpp).
  double overhead_vcpus = 0.0;
  std::uint32_t default_maxvcpus = 0;
  /// Cloud Hypervisor only; absent means "do not tell CH".
  std::optional<bool> disable_nested_virtualization;
};

/// Guest memory, MiB (upstream MemoryInfo).
struct MemoryInfo {
  std::uint32_t default_memory = 0;
  /// Added to the workload's memory limit in static sizing.
  std::uint32_t overhead_memory = 0;
  std::uint32_t default_maxmemory = 0;
  std::uint32_t memory_slots = 0;
  bool enable_mem_prealloc = false;
  bool enable_hugepages = false;
  /// "hugetlbfs" or "thp".
  std::string hugepage_type = "hugetlbfs";
  bool enable_virtio_mem = false;
  bool enable_guest_swap = false;
  std::string guest_swap_path = "/run/kata-containers/swap";
  std::uint64_t guest_swap_size_percent = 100;
  std::uint64_t guest_swap_create_threshold_secs = 60;
};

/// Block devices (upstream BlockDeviceInfo).
struct BlockDeviceInfo {
  bool disable_block_device_use = false;
  /// virtio-scsi, virtio-blk-pci, virtio-blk-ccw, virtio-blk-mmio, virtio-pmem ("" -> virtio-blk-pci).
  std::string block_device_driver;
  /// io_uring, threads, native ("" -> io_uring).
  std::string block_device_aio;
  bool block_device_cache_set = false;
  bool block_device_cache_direct = false;
  bool block_device_cache_noflush = false;
  std::uint32_t block_device_logical_sector_size = 0;
  std::uint32_t block_device_physical_sector_size = 0;
  bool disable_image_nvdimm = false;
  std::uint64_t memory_offset = 0;
  bool enable_vhost_user_store = false;
  std::string vhost_user_store_path;
  std::vector<std::string> valid_vhost_user_store_paths;
  std::uint64_t disk_rate_limiter_bw_max_rate = 0;
  std::optional<std::uint64_t> disk_rate_limiter_bw_one_time_burst;
  std::uint64_t disk_rate_limiter_ops_max_rate = 0;
  std::optional<std::uint64_t> disk_rate_limiter_ops_one_time_burst;
  std::uint32_t queue_size = 0;
  std::uint32_t num_queues = 0;
};

/// PCI topology (upstream DeviceInfo).
struct DeviceInfo {
  std::uint32_t default_bridges = 0;
  /// "no-port" (default), "root-port", "bridge-port", "switch-port".
  std::string cold_plug_vfio;
  std::uint32_t pcie_root_port = 0;
  std::uint32_t pcie_switch_port = 0;
  bool enable_iommu = false;
  bool enable_iommu_platform = false;
  bool reclaim_guest_freed_memory = false;
};

/// Network devices (upstream NetworkInfo).
struct NetworkInfo {
  bool disable_vhost_net = false;
  std::uint64_t rx_rate_limiter_max_rate = 0;
  std::uint64_t tx_rate_limiter_max_rate = 0;
  std::uint32_t network_queues = 0;
};

/// Debugging (upstream DebugInfo).
struct DebugInfo {
  bool enable_debug = false;
  std::string log_level = "info";
  bool guest_memory_dump_paging = false;
  std::string guest_memory_dump_path;
  /// Also accepted under its old name `dbg_monitor_socket`.
  std::string extra_monitor_socket;
};

/// Machine model (upstream MachineInfo).
struct MachineInfo {
  std::string machine_type;
  std::string machine_accelerators;
  std::vector<std::string> pflashes;
  std::string entropy_source;
  std::vector<std::string> valid_entropy_sources;
};

/// [hypervisor.X.rootless_user] (upstream RootlessUser).
struct RootlessUser {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::uint32_t> groups;
  std::string user_name;
};

/// Isolation and confidential computing (upstream SecurityInfo).
struct SecurityInfo {
  bool rootless = false;
  std::optional<RootlessUser> rootless_user;
  bool disable_seccomp = false;
  std::optional<std::string> seccomp_sandbox;
  bool confidential_guest = false;
  bool sev_snp_guest = false;
  std::string snp_id_block;
  std::string snp_id_auth;
  std::uint32_t snp_guest_policy = 0x30000;
  std::string guest_hook_path;
  std::string initdata;
  /// Regular expressions over the suffix of io.katacontainers.config.hypervisor.<suffix>;
  /// a hypervisor annotation is applied only if one matches (kata/config/annotations.hpp).
  std::vector<std::string> enable_annotations;
  std::uint32_t tdx_quote_generation_service_socket_port = 4050;
  std::optional<std::string> selinux_label;
};

/// Shared filesystem (upstream SharedFsInfo).
struct SharedFsInfo {
  /// virtio-fs, inline-virtio-fs, virtio-fs-nydus; "none" (or the key absent) means no shared
  /// filesystem, which after adjustment is std::nullopt; "" means virtio-fs.
  std::optional<std::string> shared_fs;
  std::string virtio_fs_daemon;
  std::vector<std::string> valid_virtio_fs_daemon_paths;
  std::vector<std::string> virtio_fs_extra_args;
  /// never, auto, always ("none" is rewritten to "never"; "" -> "never").
  std::string virtio_fs_cache;
  /// DAX window in MiB; non-zero turns DAX on.
  std::uint32_t virtio_fs_cache_size = 0;
  std::uint32_t virtio_fs_queue_size = 0;
  bool virtio_fs_is_dax = false;
};

/// Peer pods (upstream RemoteInfo).
struct RemoteInfo {
  std::string hypervisor_socket;
  /// Seconds.
  std::int32_t hypervisor_timeout = 0;
  std::uint32_t default_gpus = 0;
  std::string default_gpu_model;
};

/// VM templating (upstream VmTemplateInfo).
struct VmTemplateInfo {
  bool boot_to_be_template = false;
  bool boot_from_template = false;
  std::string memory_path;
  std::string device_state_path;
};

/// [hypervisor.<name>.factory] (a real sub-table, not flattened).
struct Factory {
  bool enable_template = false;
  std::string template_path;
};

/// One [hypervisor.<name>] section.
struct HypervisorConfig {
  std::string path;
  std::vector<std::string> valid_hypervisor_paths;
  std::string ctlpath;
  std::vector<std::string> valid_ctlpaths;
  std::string jailer_path;
  std::vector<std::string> valid_jailer_paths;
  bool disable_nesting_checks = false;
  bool enable_iothreads = false;
  std::uint32_t indep_iothreads = 0;
  std::string prefetch_list_path;
  bool disable_guest_selinux = true;
  bool disable_selinux = false;
  std::vector<GuestExtensionImage> guest_extension_images;

  BlockDeviceInfo block_device;
  BootInfo boot;
  CpuInfo cpu;
  DebugInfo debug;
  DeviceInfo device;
  MachineInfo machine;
  MemoryInfo memory;
  NetworkInfo network;
  SecurityInfo security;
  SharedFsInfo shared_fs;
  RemoteInfo remote;
  VmTemplateInfo vm_template;
  Factory factory;
};

// ---------------------------------------------------------------------------------------------
// [agent.kata]

/// [agent.kata.mem_agent]: the guest memory agent; unset optionals are not passed to the guest.
struct MemAgent {
  /// Upstream's field is `enable`; the shipped files spell it `mem_agent_enable`. Both accepted.
  bool mem_agent_enable = false;
  std::optional<bool> memcg_disable;
  std::optional<bool> memcg_swap;
  std::optional<std::uint8_t> memcg_swappiness_max;
  std::optional<std::uint64_t> memcg_period_secs;
  std::optional<std::uint8_t> memcg_period_psi_percent_limit;
  std::optional<std::uint8_t> memcg_eviction_psi_percent_limit;
  std::optional<std::uint64_t> memcg_eviction_run_aging_count_min;
  std::optional<bool> compact_disable;
  std::optional<std::uint64_t> compact_period_secs;
  std::optional<std::uint8_t> compact_period_psi_percent_limit;
  std::optional<std::uint8_t> compact_psi_percent_limit;
  std::optional<std::int64_t> compact_sec_max;
  std::optional<std::uint8_t> compact_order;
  std::optional<std::uint64_t> compact_threshold;
  std::optional<std::uint64_t> compact_force_times;
};

/// One [agent.<name>] section (upstream Agent). Note upstream's code default for enable_debug
/// is true; every shipped file sets it false.
struct AgentConfig {
  bool enable_debug = true;
  std::string log_level = "info";
  bool enable_tracing = false;
  bool debug_console_enabled = false;
  bool visible_cdi_devices = false;
  std::uint32_t server_port = 1024;
  std::uint32_t log_port = 1025;
  std::uint32_t passfd_listener_port = 1027;
  /// Pause between connection attempts.
  std::uint32_t dial_timeout_ms = 10;
  /// Overall connection budget; always >= dial_timeout_ms after validation.
  std::uint32_t reconnect_timeout_ms = 3000;
  std::uint32_t cdh_api_timeout_ms = 50000;
  /// TOML key `create_container_timeout`, in SECONDS (converted here, like upstream).
  std::uint32_t request_timeout_ms = 30000;
  std::uint32_t health_check_request_timeout_ms = 90000;
  /// "module-name param=value ..." each.
  std::vector<std::string> kernel_modules;
  std::uint32_t container_pipe_size = 0;
  std::uint32_t launch_process_timeout = 0;
  MemAgent mem_agent;
  /// Rego policy text sent with SetPolicy.
  std::string policy;
};

// ---------------------------------------------------------------------------------------------
// [runtime]

/// One entry of runtime.shared_mounts.
struct SharedMount {
  std::string name;
  std::string src_ctr;
  std::string src_path;
  std::string dst_ctr;
  std::string dst_path;
};

struct RuntimeConfig {
  /// virt_container (upstream also accepts the annotation spellings virt-container etc.).
  std::string name;
  std::string hypervisor_name;
  std::string agent_name;
  bool enable_debug = false;
  std::string log_level = "info";
  std::vector<std::string> experimental;
  /// tcfilter (default), macvtap, none, l3forwarding.
  std::string internetworking_model;
  bool disable_new_netns = false;
  /// Host paths with optional ":ro"/":rw" suffix.
  std::vector<std::string> sandbox_bind_mounts;
  bool sandbox_cgroup_only = false;
  bool enable_vcpus_pinning = false;
  bool enable_tracing = false;
  std::string jaeger_endpoint;
  std::string jaeger_user;
  std::string jaeger_password;
  bool enable_pprof = false;
  /// Size the VM for the workload at creation (no CPU/memory hotplug later).
  bool static_sandbox_resource_mgmt = false;
  bool disable_guest_seccomp = false;
  /// shared-fs (default), block-encrypted, block-plain.
  std::string emptydir_mode;
  /// guest-kernel or vfio ("" allowed).
  std::string vfio_mode;
  bool keep_abnormal = false;
  std::string dan_conf;
  std::vector<SharedMount> shared_mounts;
  bool use_passfd_io = false;
  std::uint32_t passfd_listener_port = 1027;
  std::string pod_resource_api_sock;
};

// ---------------------------------------------------------------------------------------------

/// The whole file (upstream TomlConfig).
struct Config {
  std::map<std::string, AgentConfig, std::less<>> agent;
  std::map<std::string, HypervisorConfig, std::less<>> hypervisor;
  RuntimeConfig runtime;

  /// The section runtime.hypervisor_name selects. Throws Errc::not_found naming the missing section.
  [[nodiscard]] HypervisorConfig& active_hypervisor();
  [[nodiscard]] const HypervisorConfig& active_hypervisor() const;
  /// The section runtime.agent_name selects ("kata" when unset). Throws Errc::not_found.
  [[nodiscard]] AgentConfig& active_agent();
  [[nodiscard]] const AgentConfig& active_agent() const;
};

}  // namespace kata::config
