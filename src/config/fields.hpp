// The one place that maps TOML keys to struct members. The reader (TOML -> struct), the
// writer (struct -> JSON/TOML for `kata-ctl env`) and the unknown-key check all walk these
// lists, so a key added here is parsed, printed and known at once.
//
// A visitor is called as visitor(key, member, options). Group structs of HypervisorConfig are
// visited with the SAME visitor (their keys are flat in [hypervisor.<name>], as upstream's
// #[serde(flatten)]); Factory, MemAgent, RootlessUser and the element structs of arrays are real
// sub-tables and are handed to the visitor as members.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "kata/config/schema.hpp"

namespace kata::config::detail {

struct FieldOptions {
  /// A second accepted spelling of the key (upstream serde alias).
  std::string_view alias{};
  /// The TOML value is this many units of the member (create_container_timeout: s -> ms).
  std::uint32_t scale = 1;
};

template <class S, class T>
concept struct_of = std::same_as<std::remove_const_t<S>, T>;

template <class S, class V>
  requires struct_of<S, BootInfo>
void visit_fields(S& s, V& v) {
  v("kernel", s.kernel, FieldOptions{});
  v("kernel_params", s.kernel_params, FieldOptions{});
  v("kernel_verity_params", s.kernel_verity_params, FieldOptions{});
  v("initrd", s.initrd, FieldOptions{});
  v("image", s.image, FieldOptions{});
  v("rootfs_type", s.rootfs_type, FieldOptions{});
  v("firmware", s.firmware, FieldOptions{});
  v("vm_rootfs_driver", s.vm_rootfs_driver, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, GuestExtensionImage>
void visit_fields(S& s, V& v) {
  v("name", s.name, FieldOptions{});
  v("path", s.path, FieldOptions{});
  v("verity_params", s.verity_params, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, CpuInfo>
void visit_fields(S& s, V& v) {
  v("cpu_features", s.cpu_features, FieldOptions{});
  v("default_vcpus", s.default_vcpus, FieldOptions{});
  v("overhead_vcpus", s.overhead_vcpus, FieldOptions{});
  v("default_maxvcpus", s.default_maxvcpus, FieldOptions{});
  v("disable_nested_virtualization", s.disable_nested_virtualization, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, MemoryInfo>
void visit_fields(S& s, V& v) {
  v("default_memory", s.default_memory, FieldOptions{});
  v("overhead_memory", s.overhead_memory, FieldOptions{});
  v("default_maxmemory", s.default_maxmemory, FieldOptions{});
  v("memory_slots", s.memory_slots, FieldOptions{});
  v("enable_mem_prealloc", s.enable_mem_prealloc, FieldOptions{});
  v("enable_hugepages", s.enable_hugepages, FieldOptions{});
  v("hugepage_type", s.hugepage_type, FieldOptions{});
  v("enable_virtio_mem", s.enable_virtio_mem, FieldOptions{});
  v("enable_guest_swap", s.enable_guest_swap, FieldOptions{});
  v("guest_swap_path", s.guest_swap_path, FieldOptions{});
  v("guest_swap_size_percent", s.guest_swap_size_percent, FieldOptions{});
  v("guest_swap_create_threshold_secs", s.guest_swap_create_threshold_secs, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, BlockDeviceInfo>
void visit_fields(S& s, V& v) {
  v("disable_block_device_use", s.disable_block_device_use, FieldOptions{});
  v("block_device_driver", s.block_device_driver, FieldOptions{});
  v("block_device_aio", s.block_device_aio, FieldOptions{});
  v("block_device_cache_set", s.block_device_cache_set, FieldOptions{});
  v("block_device_cache_direct", s.block_device_cache_direct, FieldOptions{});
  v("block_device_cache_noflush", s.block_device_cache_noflush, FieldOptions{});
  v("block_device_logical_sector_size", s.block_device_logical_sector_size, FieldOptions{});
  v("block_device_physical_sector_size", s.block_device_physical_sector_size, FieldOptions{});
  v("disable_image_nvdimm", s.disable_image_nvdimm, FieldOptions{});
  v("memory_offset", s.memory_offset, FieldOptions{});
  v("enable_vhost_user_store", s.enable_vhost_user_store, FieldOptions{});
  v("vhost_user_store_path", s.vhost_user_store_path, FieldOptions{});
  v("valid_vhost_user_store_paths", s.valid_vhost_user_store_paths, FieldOptions{});
  v("disk_rate_limiter_bw_max_rate", s.disk_rate_limiter_bw_max_rate, FieldOptions{});
  v("disk_rate_limiter_bw_one_time_burst", s.disk_rate_limiter_bw_one_time_burst, FieldOptions{});
  v("disk_rate_limiter_ops_max_rate", s.disk_rate_limiter_ops_max_rate, FieldOptions{});
  v("disk_rate_limiter_ops_one_time_burst", s.disk_rate_limiter_ops_one_time_burst, FieldOptions{});
  v("queue_size", s.queue_size, FieldOptions{});
  v("num_queues", s.num_queues, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, DeviceInfo>
void visit_fields(S& s, V& v) {
  v("default_bridges", s.default_bridges, FieldOptions{});
  v("cold_plug_vfio", s.cold_plug_vfio, FieldOptions{});
  v("pcie_root_port", s.pcie_root_port, FieldOptions{});
  v("pcie_switch_port", s.pcie_switch_port, FieldOptions{});
  v("enable_iommu", s.enable_iommu, FieldOptions{});
  v("enable_iommu_platform", s.enable_iommu_platform, FieldOptions{});
  v("reclaim_guest_freed_memory", s.reclaim_guest_freed_memory, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, NetworkInfo>
void visit_fields(S& s, V& v) {
  v("disable_vhost_net", s.disable_vhost_net, FieldOptions{});
  v("rx_rate_limiter_max_rate", s.rx_rate_limiter_max_rate, FieldOptions{});
  v("tx_rate_limiter_max_rate", s.tx_rate_limiter_max_rate, FieldOptions{});
  v("network_queues", s.network_queues, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, DebugInfo>
void visit_fields(S& s, V& v) {
  v("enable_debug", s.enable_debug, FieldOptions{});
  v("log_level", s.log_level, FieldOptions{});
  v("guest_memory_dump_paging", s.guest_memory_dump_paging, FieldOptions{});
  v("guest_memory_dump_path", s.guest_memory_dump_path, FieldOptions{});
  v("extra_monitor_socket", s.extra_monitor_socket, FieldOptions{.alias = "dbg_monitor_socket"});
}

template <class S, class V>
  requires struct_of<S, MachineInfo>
void visit_fields(S& s, V& v) {
  v("machine_type", s.machine_type, FieldOptions{});
  v("machine_accelerators", s.machine_accelerators, FieldOptions{});
  v("pflashes", s.pflashes, FieldOptions{});
  v("entropy_source", s.entropy_source, FieldOptions{});
  v("valid_entropy_sources", s.valid_entropy_sources, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, RootlessUser>
void visit_fields(S& s, V& v) {
  v("uid", s.uid, FieldOptions{});
  v("gid", s.gid, FieldOptions{});
  v("groups", s.groups, FieldOptions{});
  v("user_name", s.user_name, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, SecurityInfo>
void visit_fields(S& s, V& v) {
  v("rootless", s.rootless, FieldOptions{});
  v("rootless_user", s.rootless_user, FieldOptions{});
  v("disable_seccomp", s.disable_seccomp, FieldOptions{});
  v("seccomp_sandbox", s.seccomp_sandbox, FieldOptions{});
  v("confidential_guest", s.confidential_guest, FieldOptions{});
  v("sev_snp_guest", s.sev_snp_guest, FieldOptions{});
  v("snp_id_block", s.snp_id_block, FieldOptions{});
  v("snp_id_auth", s.snp_id_auth, FieldOptions{});
  v("snp_guest_policy", s.snp_guest_policy, FieldOptions{});
  v("guest_hook_path", s.guest_hook_path, FieldOptions{});
  v("initdata", s.initdata, FieldOptions{});
  v("enable_annotations", s.enable_annotations, FieldOptions{});
  v("tdx_quote_generation_service_socket_port", s.tdx_quote_generation_service_socket_port, FieldOptions{});
  v("selinux_label", s.selinux_label, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, SharedFsInfo>
void visit_fields(S& s, V& v) {
  v("shared_fs", s.shared_fs, FieldOptions{});
  v("virtio_fs_daemon", s.virtio_fs_daemon, FieldOptions{});
  v("valid_virtio_fs_daemon_paths", s.valid_virtio_fs_daemon_paths, FieldOptions{});
  v("virtio_fs_extra_args", s.virtio_fs_extra_args, FieldOptions{});
  v("virtio_fs_cache", s.virtio_fs_cache, FieldOptions{});
  v("virtio_fs_cache_size", s.virtio_fs_cache_size, FieldOptions{});
  v("virtio_fs_queue_size", s.virtio_fs_queue_size, FieldOptions{});
  v("virtio_fs_is_dax", s.virtio_fs_is_dax, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, RemoteInfo>
void visit_fields(S& s, V& v) {
  v("hypervisor_socket", s.hypervisor_socket, FieldOptions{});
  v("hypervisor_timeout", s.hypervisor_timeout, FieldOptions{});
  v("default_gpus", s.default_gpus, FieldOptions{});
  v("default_gpu_model", s.default_gpu_model, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, VmTemplateInfo>
void visit_fields(S& s, V& v) {
  v("boot_to_be_template", s.boot_to_be_template, FieldOptions{});
  v("boot_from_template", s.boot_from_template, FieldOptions{});
  v("memory_path", s.memory_path, FieldOptions{});
  v("device_state_path", s.device_state_path, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, Factory>
void visit_fields(S& s, V& v) {
  v("enable_template", s.enable_template, FieldOptions{});
  v("template_path", s.template_path, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, HypervisorConfig>
void visit_fields(S& s, V& v) {
  v("path", s.path, FieldOptions{});
  v("valid_hypervisor_paths", s.valid_hypervisor_paths, FieldOptions{});
  v("ctlpath", s.ctlpath, FieldOptions{});
  v("valid_ctlpaths", s.valid_ctlpaths, FieldOptions{});
  v("jailer_path", s.jailer_path, FieldOptions{});
  v("valid_jailer_paths", s.valid_jailer_paths, FieldOptions{});
  v("disable_nesting_checks", s.disable_nesting_checks, FieldOptions{});
  v("enable_iothreads", s.enable_iothreads, FieldOptions{});
  v("indep_iothreads", s.indep_iothreads, FieldOptions{});
  v("prefetch_list_path", s.prefetch_list_path, FieldOptions{});
  v("disable_guest_selinux", s.disable_guest_selinux, FieldOptions{});
  v("disable_selinux", s.disable_selinux, FieldOptions{});
  visit_fields(s.block_device, v);
  visit_fields(s.boot, v);
  visit_fields(s.cpu, v);
  visit_fields(s.debug, v);
  visit_fields(s.device, v);
  visit_fields(s.machine, v);
  visit_fields(s.memory, v);
  visit_fields(s.network, v);
  visit_fields(s.security, v);
  visit_fields(s.shared_fs, v);
  visit_fields(s.remote, v);
  visit_fields(s.vm_template, v);
  v("guest_extension_images", s.guest_extension_images, FieldOptions{});
  v("factory", s.factory, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, MemAgent>
void visit_fields(S& s, V& v) {
  v("mem_agent_enable", s.mem_agent_enable, FieldOptions{.alias = "enable"});
  v("memcg_disable", s.memcg_disable, FieldOptions{});
  v("memcg_swap", s.memcg_swap, FieldOptions{});
  v("memcg_swappiness_max", s.memcg_swappiness_max, FieldOptions{});
  v("memcg_period_secs", s.memcg_period_secs, FieldOptions{});
  v("memcg_period_psi_percent_limit", s.memcg_period_psi_percent_limit, FieldOptions{});
  v("memcg_eviction_psi_percent_limit", s.memcg_eviction_psi_percent_limit, FieldOptions{});
  v("memcg_eviction_run_aging_count_min", s.memcg_eviction_run_aging_count_min, FieldOptions{});
  v("compact_disable", s.compact_disable, FieldOptions{});
  v("compact_period_secs", s.compact_period_secs, FieldOptions{});
  v("compact_period_psi_percent_limit", s.compact_period_psi_percent_limit, FieldOptions{});
  v("compact_psi_percent_limit", s.compact_psi_percent_limit, FieldOptions{});
  v("compact_sec_max", s.compact_sec_max, FieldOptions{});
  v("compact_order", s.compact_order, FieldOptions{});
  v("compact_threshold", s.compact_threshold, FieldOptions{});
  v("compact_force_times", s.compact_force_times, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, AgentConfig>
void visit_fields(S& s, V& v) {
  v("enable_debug", s.enable_debug, FieldOptions{});
  v("log_level", s.log_level, FieldOptions{});
  v("enable_tracing", s.enable_tracing, FieldOptions{});
  v("debug_console_enabled", s.debug_console_enabled, FieldOptions{});
  v("visible_cdi_devices", s.visible_cdi_devices, FieldOptions{});
  v("server_port", s.server_port, FieldOptions{});
  v("log_port", s.log_port, FieldOptions{});
  v("passfd_listener_port", s.passfd_listener_port, FieldOptions{});
  v("dial_timeout_ms", s.dial_timeout_ms, FieldOptions{});
  v("reconnect_timeout_ms", s.reconnect_timeout_ms, FieldOptions{});
  v("cdh_api_timeout_ms", s.cdh_api_timeout_ms, FieldOptions{});
  v("create_container_timeout", s.request_timeout_ms, FieldOptions{.scale = 1000});
  v("health_check_request_timeout_ms", s.health_check_request_timeout_ms, FieldOptions{});
  v("kernel_modules", s.kernel_modules, FieldOptions{});
  v("container_pipe_size", s.container_pipe_size, FieldOptions{});
  v("launch_process_timeout", s.launch_process_timeout, FieldOptions{});
  v("mem_agent", s.mem_agent, FieldOptions{});
  v("policy", s.policy, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, SharedMount>
void visit_fields(S& s, V& v) {
  v("name", s.name, FieldOptions{});
  v("src_ctr", s.src_ctr, FieldOptions{});
  v("src_path", s.src_path, FieldOptions{});
  v("dst_ctr", s.dst_ctr, FieldOptions{});
  v("dst_path", s.dst_path, FieldOptions{});
}

template <class S, class V>
  requires struct_of<S, RuntimeConfig>
void visit_fields(S& s, V& v) {
  v("name", s.name, FieldOptions{});
  v("hypervisor_name", s.hypervisor_name, FieldOptions{});
  v("agent_name", s.agent_name, FieldOptions{});
  v("enable_debug", s.enable_debug, FieldOptions{});
  v("log_level", s.log_level, FieldOptions{});
  v("experimental", s.experimental, FieldOptions{});
  v("internetworking_model", s.internetworking_model, FieldOptions{});
  v("disable_new_netns", s.disable_new_netns, FieldOptions{});
  v("sandbox_bind_mounts", s.sandbox_bind_mounts, FieldOptions{});
  v("sandbox_cgroup_only", s.sandbox_cgroup_only, FieldOptions{});
  v("enable_vcpus_pinning", s.enable_vcpus_pinning, FieldOptions{});
  v("enable_tracing", s.enable_tracing, FieldOptions{});
  v("jaeger_endpoint", s.jaeger_endpoint, FieldOptions{});
  v("jaeger_user", s.jaeger_user, FieldOptions{});
  v("jaeger_password", s.jaeger_password, FieldOptions{});
  v("enable_pprof", s.enable_pprof, FieldOptions{});
  v("static_sandbox_resource_mgmt", s.static_sandbox_resource_mgmt, FieldOptions{});
  v("disable_guest_seccomp", s.disable_guest_seccomp, FieldOptions{});
  v("emptydir_mode", s.emptydir_mode, FieldOptions{});
  v("vfio_mode", s.vfio_mode, FieldOptions{});
  v("keep_abnormal", s.keep_abnormal, FieldOptions{});
  v("dan_conf", s.dan_conf, FieldOptions{});
  v("shared_mounts", s.shared_mounts, FieldOptions{});
  v("use_passfd_io", s.use_passfd_io, FieldOptions{});
  v("passfd_listener_port", s.passfd_listener_port, FieldOptions{});
  v("pod_resource_api_sock", s.pod_resource_api_sock, FieldOptions{});
}

/// True for the structs that are TOML tables of their own when they appear as a member.
template <class T>
concept table_struct = std::same_as<T, Factory> || std::same_as<T, MemAgent> || std::same_as<T, RootlessUser> ||
                       std::same_as<T, GuestExtensionImage> || std::same_as<T, SharedMount>;

}  // namespace kata::config::detail
