// The OCI runtime spec travels to the agent as grpc.Spec (kata/oci.proto), a protobuf mirror of
// config.json with Go-style field names. These functions translate between the JSON model
// (kata/oci/spec.hpp) and that message, in both directions: the shim sends, the guest agent
// receives. Fields the mirror has no place for (e.g. process.user.umask, cpu.burst) are dropped,
// as upstream's conversion drops them.
#pragma once

#include "kata/oci.pb.h"
#include "kata/oci/spec.hpp"

namespace kata::agent {

[[nodiscard]] grpc::Spec to_agent_spec(const oci::Spec& spec);
[[nodiscard]] grpc::Process to_agent_process(const oci::Process& process);
[[nodiscard]] grpc::LinuxResources to_agent_resources(const oci::Resources& resources);

[[nodiscard]] oci::Spec from_agent_spec(const grpc::Spec& spec);
[[nodiscard]] oci::Process from_agent_process(const grpc::Process& process);
[[nodiscard]] oci::Resources from_agent_resources(const grpc::LinuxResources& resources);

}  // namespace kata::agent
