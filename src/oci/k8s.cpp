#include "kata/oci/k8s.hpp"

#include <array>

namespace kata::oci {

namespace {

std::optional<ContainerType> parse_container_type(std::string_view value) {
  if (value == "sandbox" || value == "podsandbox" || value == "pod_sandbox") return ContainerType::pod_sandbox;
  if (value == "container" || value == "pod_container") return ContainerType::pod_container;
  return std::nullopt;
}

const std::string* find_annotation(const Spec& spec, std::string_view key) {
  const auto it = spec.annotations.find(std::string(key));
  return it == spec.annotations.end() ? nullptr : &it->second;
}

constexpr std::string_view no_network_placeholder = "/proc/0/ns/net";

}  // namespace

std::string_view to_string(ContainerType type) noexcept {
  switch (type) {
    case ContainerType::pod_sandbox: return "pod_sandbox";
    case ContainerType::pod_container: return "pod_container";
    case ContainerType::single_container: return "single_container";
  }
  return "single_container";
}

ContainerType container_type(const Spec& spec) {
  for (const auto key : std::array{annotation::crio_container_type, annotation::containerd_container_type,
                                   annotation::dockershim_container_type}) {
    if (const std::string* value = find_annotation(spec, key)) {
      if (const auto type = parse_container_type(*value)) return *type;
    }
  }
  return ContainerType::single_container;
}

Classification classify(const Spec& spec) {
  Classification result{container_type(spec), std::nullopt};
  if (result.type != ContainerType::pod_container) return result;
  for (const auto key :
       std::array{annotation::crio_sandbox_id, annotation::containerd_sandbox_id, annotation::dockershim_sandbox_id}) {
    if (const std::string* value = find_annotation(spec, key)) {
      result.sandbox_id = *value;
      break;
    }
  }
  return result;
}

NetworkNamespace network_namespace(const Spec& spec) {
  if (!spec.linux_spec) return {};
  for (const Namespace& ns : spec.linux_spec->namespaces) {
    if (ns.type != "network") continue;
    if (ns.path.empty()) return {NetworkNamespace::Kind::create, {}};
    if (ns.path == no_network_placeholder) return {NetworkNamespace::Kind::none, {}};
    return {NetworkNamespace::Kind::existing, ns.path};
  }
  return {};
}

}  // namespace kata::oci
