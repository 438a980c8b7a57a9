// From the OCI spec the host sends (grpc.Spec, already converted to kata::oci::Spec) to what the
// agent's system layer runs: a SpawnRequest for a container's init or an exec, and the cgroup
// limits of linux.resources.
//
// Every function validates what it translates and throws kata::Error(invalid_argument) naming
// the offending field ("process.rlimits: unknown type RLIMIT_NOPE"), so a bad spec is one clear
// error over ttRPC instead of a failure deep inside the child.
#pragma once

#include <filesystem>
#include <string>

#include "kata/agent_guest/cgroup.hpp"
#include "kata/agent_guest/container_process.hpp"
#include "kata/oci/spec.hpp"

namespace kata::agent_guest {

/// Device nodes every container gets from the guest's /dev (the OCI runtime spec's default
/// devices, which runc adds too), in addition to linux.devices.
inline constexpr const char* default_container_devices[] = {"/dev/null", "/dev/zero", "/dev/full",
                                                            "/dev/random", "/dev/urandom", "/dev/tty"};

/// process.* -> ProcessSpec. Throws invalid_argument for no args or an unknown rlimit type.
[[nodiscard]] ProcessSpec process_spec(const oci::Process& process);

/// linux.resources -> the limits a guest cgroup enforces (devices and hugepages are not).
[[nodiscard]] CgroupResources cgroup_resources(const oci::Resources& resources);

/// A container's init: new mount, pid, uts, ipc (and cgroup when asked) namespaces, the network
/// namespace of the agent (the sandbox's), root.path as the rootfs with the spec's mounts,
/// devices, masked and read-only paths, held before exec until StartContainer. `cgroup` is the
/// directory the process starts in. Throws invalid_argument for a spec without process or
/// root.path, a user namespace (not supported here), or an unknown namespace type; not_found if
/// root.path is not a directory.
[[nodiscard]] SpawnRequest container_spawn_request(const oci::Spec& spec, const std::filesystem::path& cgroup);

/// An exec: joins the mount, pid, uts, ipc and cgroup namespaces of the process `init_pid` and
/// starts in `cgroup`; runs at once.
[[nodiscard]] SpawnRequest exec_spawn_request(const oci::Process& process, pid_t init_pid,
                                              const std::filesystem::path& cgroup);

}  // namespace kata::agent_guest
