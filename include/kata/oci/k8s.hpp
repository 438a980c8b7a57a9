// What the container managers say about a container through its spec's annotations: is it a
// pod sandbox, a container of a pod, or a lone container, and to which sandbox does it belong.
// This decides, at `shim start`, whether a new shim (and VM) is started or the sandbox's shim is
// reused (upstream kata-types k8s.rs).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "kata/oci/spec.hpp"

namespace kata::oci {

namespace annotation {
// Container type, in the order they are consulted.
inline constexpr std::string_view crio_container_type = "io.kubernetes.cri-o.ContainerType";
inline constexpr std::string_view containerd_container_type = "io.kubernetes.cri.container-type";
inline constexpr std::string_view dockershim_container_type = "io.kubernetes.docker.type";
// Sandbox id of a pod container, in the order they are consulted.
inline constexpr std::string_view crio_sandbox_id = "io.kubernetes.cri-o.SandboxID";
inline constexpr std::string_view containerd_sandbox_id = "io.kubernetes.cri.sandbox-id";
inline constexpr std::string_view dockershim_sandbox_id = "io.kubernetes.sandbox.id";
}  // namespace annotation

enum class ContainerType {
  pod_sandbox,       ///< the pause container: starts the VM
  pod_container,     ///< a workload container joining an existing sandbox
  single_container,  ///< `ctr run`, docker: its own VM
};

[[nodiscard]] std::string_view to_string(ContainerType type) noexcept;

/// The type from the first of the container-type annotations (CRI-O, containerd, dockershim)
/// whose value is recognised: sandbox, podsandbox, pod_sandbox -> pod_sandbox; container,
/// pod_container -> pod_container. Unrecognised values are skipped; none -> single_container.
[[nodiscard]] ContainerType container_type(const Spec& spec);

struct Classification {
  ContainerType type = ContainerType::single_container;
  /// For pod_container: the first of the sandbox-id annotations present (CRI-O, containerd,
  /// dockershim); nullopt for the other types or when none is present.
  std::optional<std::string> sandbox_id;
};

/// container_type() plus the sandbox id a pod container belongs to.
[[nodiscard]] Classification classify(const Spec& spec);

/// How the container's network namespace is given in linux.namespaces.
struct NetworkNamespace {
  enum class Kind {
    host,      ///< no "network" entry: the runtime's own namespace
    create,    ///< an entry without path: a new, empty namespace
    existing,  ///< an entry with a path to join (CNI's /var/run/netns/cni-..., /proc/<pid>/ns/net)
    none,      ///< docker's placeholder /proc/0/ns/net: no network at all
  };
  Kind kind = Kind::host;
  std::filesystem::path path;  ///< set for `existing` only
};

/// Reads the network namespace entry. The placeholder "/proc/0/ns/net" (pid 0 has no /proc
/// entry) means "no network" and never becomes a path to open.
[[nodiscard]] NetworkNamespace network_namespace(const Spec& spec);

}  // namespace kata::oci
