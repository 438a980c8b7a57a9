#include "kata/oci/k8s.hpp"

#include <gtest/gtest.h>

namespace kata::oci {
namespace {

const std::filesystem::path data_dir = KATA_OCI_TEST_DATA;

Spec with_annotations(StringMap annotations) {
  Spec spec;
  spec.annotations = std::move(annotations);
  return spec;
}

TEST(Classify, RealSpecs) {
  const Classification sandbox = classify(load_spec(data_dir / "cri-sandbox.json"));
  EXPECT_EQ(sandbox.type, ContainerType::pod_sandbox);
  EXPECT_EQ(sandbox.sandbox_id, std::nullopt);
  const Classification container = classify(load_spec(data_dir / "cri-container.json"));
  EXPECT_EQ(container.type, ContainerType::pod_container);
  EXPECT_EQ(container.sandbox_id, "4a8d3c1b2e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9");
  const Classification single = classify(load_spec(data_dir / "ctr-run.json"));
  EXPECT_EQ(single.type, ContainerType::single_container);
  EXPECT_EQ(single.sandbox_id, std::nullopt);
}

TEST(Classify, EveryManagerAndValue) {
  struct Case {
    std::string key;
    std::string value;
    ContainerType expected;
  };
  const std::vector<Case> cases = {
      {"io.kubernetes.cri-o.ContainerType", "sandbox", ContainerType::pod_sandbox},
      {"io.kubernetes.cri-o.ContainerType", "container", ContainerType::pod_container},
      {"io.kubernetes.cri.container-type", "sandbox", ContainerType::pod_sandbox},
      {"io.kubernetes.cri.container-type", "pod_sandbox", ContainerType::pod_sandbox},
      {"io.kubernetes.cri.container-type", "pod_container", ContainerType::pod_container},
      {"io.kubernetes.docker.type", "podsandbox", ContainerType::pod_sandbox},
      {"io.kubernetes.docker.type", "container", ContainerType::pod_container},
      {"io.kubernetes.docker.type", "Sandbox", ContainerType::single_container},  // values are case-sensitive
      {"io.kubernetes.cri.container-type", "", ContainerType::single_container},
      {"io.example.container-type", "sandbox", ContainerType::single_container},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(container_type(with_annotations({{c.key, c.value}})), c.expected) << c.key << "=" << c.value;
  }
  EXPECT_EQ(container_type(Spec{}), ContainerType::single_container);
}

TEST(Classify, FirstRecognisedAnnotationWins) {
  // CRI-O's key is consulted first; an unrecognised value falls through to containerd's.
  EXPECT_EQ(container_type(with_annotations({{"io.kubernetes.cri-o.ContainerType", "sandbox"},
                                             {"io.kubernetes.cri.container-type", "container"}})),
            ContainerType::pod_sandbox);
  EXPECT_EQ(container_type(with_annotations({{"io.kubernetes.cri-o.ContainerType", "weird"},
                                             {"io.kubernetes.cri.container-type", "container"}})),
            ContainerType::pod_container);
}

TEST(Classify, SandboxIdLookupOrder) {
  const Classification crio = classify(with_annotations({{"io.kubernetes.cri-o.ContainerType", "container"},
                                                         {"io.kubernetes.cri-o.SandboxID", "crio-sb"},
                                                         {"io.kubernetes.cri.sandbox-id", "cri-sb"}}));
  EXPECT_EQ(crio.sandbox_id, "crio-sb");
  const Classification docker = classify(with_annotations(
      {{"io.kubernetes.docker.type", "container"}, {"io.kubernetes.sandbox.id", "docker-sb"}}));
  EXPECT_EQ(docker.type, ContainerType::pod_container);
  EXPECT_EQ(docker.sandbox_id, "docker-sb");
  const Classification missing = classify(with_annotations({{"io.kubernetes.cri.container-type", "container"}}));
  EXPECT_EQ(missing.type, ContainerType::pod_container);
  EXPECT_EQ(missing.sandbox_id, std::nullopt);
  // A sandbox's own sandbox-id annotation is not a grouping key: it starts its own shim.
  const Classification sandbox = classify(with_annotations(
      {{"io.kubernetes.cri.container-type", "sandbox"}, {"io.kubernetes.cri.sandbox-id", "self"}}));
  EXPECT_EQ(sandbox.sandbox_id, std::nullopt);
}

TEST(NetworkNamespace, AllFourShapes) {
  const auto cni = network_namespace(load_spec(data_dir / "cri-sandbox.json"));
  EXPECT_EQ(cni.kind, NetworkNamespace::Kind::existing);
  EXPECT_EQ(cni.path, "/var/run/netns/cni-6f1c3a52-9d2b-4c1e-8a77-3b2f0e4d5c6a");
  EXPECT_EQ(network_namespace(load_spec(data_dir / "ctr-run.json")).kind, NetworkNamespace::Kind::create);

  Spec none;
  none.linux_spec = LinuxSpec{};
  none.linux_spec->namespaces = {{.type = "pid"}, {.type = "network", .path = "/proc/0/ns/net"}};
  const auto placeholder = network_namespace(none);
  EXPECT_EQ(placeholder.kind, NetworkNamespace::Kind::none);
  EXPECT_TRUE(placeholder.path.empty());

  Spec host;
  host.linux_spec = LinuxSpec{};
  host.linux_spec->namespaces = {{.type = "pid"}};
  EXPECT_EQ(network_namespace(host).kind, NetworkNamespace::Kind::host);
  EXPECT_EQ(network_namespace(Spec{}).kind, NetworkNamespace::Kind::host);
}

}  // namespace
}  // namespace kata::oci
