// The schema of /run/kata/<sandbox-id>/state.json.
//
// The upstream part keeps runtime-rs' field names (sandbox_type, resource{endpoint,
// cgroup_state}, hypervisor{hypervisor_type, pid, ...}) so that a reader who knows upstream's
// file finds the same keys. The `cleanup` object is ours: upstream records too little to clean
// up after a dead shim (no VMM pid for QEMU, no mounts, no taps), which is how VMMs and
// virtiofsd leaked. It lists everything the sandbox created on the host, so `delete` can undo
// it from the file alone.
//
// Reading is tolerant: `delete` must work on whatever a crashed shim left. Missing keys keep
// their defaults, unknown keys are ignored, and a key of the wrong type is skipped with a
// warning instead of failing the whole load.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kata/persist/process.hpp"

namespace kata::persist {

struct PhysicalEndpointState {
  std::string bdf;
  std::string driver;
  std::string vendor_id;
  std::string device_id;
  std::string hard_addr;
  bool is_vfio = true;
  std::string iface_name;
  std::string bus_type;  ///< "pci" or "vmbus"
  friend bool operator==(const PhysicalEndpointState&, const PhysicalEndpointState&) = default;
};

/// veth, ipvlan, macvlan and vlan endpoints share this shape upstream.
struct LinkEndpointState {
  std::string if_name;
  bool network_qos = false;
  friend bool operator==(const LinkEndpointState&, const LinkEndpointState&) = default;
};

struct TapEndpointState {
  std::string if_name;
  friend bool operator==(const TapEndpointState&, const TapEndpointState&) = default;
};

struct VhostUserEndpointState {
  std::string if_name;
  std::string socket_path;
  friend bool operator==(const VhostUserEndpointState&, const VhostUserEndpointState&) = default;
};

/// One network endpoint; exactly one member is set in practice (upstream's encoding).
struct EndpointState {
  std::optional<PhysicalEndpointState> physical_endpoint;
  std::optional<LinkEndpointState> veth_endpoint;
  std::optional<LinkEndpointState> ipvlan_endpoint;
  std::optional<LinkEndpointState> macvlan_endpoint;
  std::optional<LinkEndpointState> vlan_endpoint;
  std::optional<TapEndpointState> tap_endpoint;
  std::optional<VhostUserEndpointState> vhost_user_endpoint;
  friend bool operator==(const EndpointState&, const EndpointState&) = default;
};

struct CgroupState {
  std::string path;
  std::string overhead_path;
  bool sandbox_cgroup_only = false;
  bool enable_vcpus_pinning = false;
  friend bool operator==(const CgroupState&, const CgroupState&) = default;
};

struct ResourceState {
  std::vector<EndpointState> endpoint;
  std::optional<CgroupState> cgroup_state;
  friend bool operator==(const ResourceState&, const ResourceState&) = default;
};

struct HypervisorState {
  std::string hypervisor_type;  ///< qemu, clh, dragonball, firecracker, remote
  std::optional<std::int32_t> pid;
  std::string uuid;
  std::string api_socket;
  std::string id;  ///< sandbox id
  std::string vm_path;
  bool jailed = false;
  std::string jailer_root;
  std::optional<std::string> netns;
  /// The [hypervisor.X] configuration in effect, as the hypervisor module serialises it. Kept
  /// opaque here so persist does not depend on the config schema.
  nlohmann::json config = nlohmann::json::object();
  std::string run_dir;
  std::vector<std::string> cached_block_devices;  ///< a set upstream; kept sorted and unique on save
  std::int32_t virtiofs_daemon_pid = 0;
  std::optional<std::uint32_t> passfd_listener_port;
  nlohmann::json guest_protection_to_use;  ///< upstream's enum encoding, opaque here
  friend bool operator==(const HypervisorState&, const HypervisorState&) = default;
};

/// A link the sandbox created (tap, tc-redirected veth peer) and the netns it lives in.
struct LinkRecord {
  std::string name;
  std::string netns;  ///< netns path; empty for the host namespace
  friend bool operator==(const LinkRecord&, const LinkRecord&) = default;
};

/// What `delete` must undo after a dead shim, in this order: kill processes (only when
/// is_same_process), unmount mounts (last first), delete links, delete the network namespaces we
/// created, remove directories (last first).
struct CleanupState {
  std::vector<ProcessRecord> processes;
  std::vector<std::string> mounts;               ///< mount points, in mount order
  std::vector<LinkRecord> links;
  std::vector<std::string> network_namespaces;   ///< netns bind-mount paths created by us
  std::vector<std::string> directories;          ///< created directories, in creation order
  friend bool operator==(const CleanupState&, const CleanupState&) = default;
};

struct SandboxState {
  std::string sandbox_type = "virt_container";
  ResourceState resource;
  HypervisorState hypervisor;
  CleanupState cleanup;
  friend bool operator==(const SandboxState&, const SandboxState&) = default;
};

/// The JSON document of a state (every key written, optional ones as null like upstream).
[[nodiscard]] nlohmann::json to_json(const SandboxState& state);

/// Builds a state from a parsed document. Never throws for content: a non-object document
/// yields defaults, and every skipped key adds a warning "hypervisor.pid: expected integer" to
/// `warnings`.
[[nodiscard]] SandboxState state_from_json(const nlohmann::json& document, std::vector<std::string>& warnings);

}  // namespace kata::persist
