"""What the CRI test clients share: the client, a pod of busybox containers, its teardown, and
looking for the processes a pod left behind. Imported from the scripts' own directory."""
import os
import time

import grpc
import cri_subset_pb2 as cri
import cri_subset_pb2_grpc as cri_grpc

POD_NETWORK = 0   # NamespaceMode.POD: CNI gives the pod a network namespace
NODE_NETWORK = 2  # NamespaceMode.NODE: the host's network
IMAGE = "localhost/busybox:latest"


def expect(condition, what):
    if not condition:
        raise SystemExit(f"FAIL: {what}")


def processes_matching(*needles):
    """(pid, command line) of every process whose command line contains all of `needles`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(needle in cmdline for needle in needles):
            found.append((int(pid), cmdline))
    return found


def connect(socket):
    return cri_grpc.RuntimeServiceStub(grpc.insecure_channel(f"unix://{socket}"))


def sandbox_config(name, lab, network, **extra):
    """A pod named `name` logging under LAB/pod-logs; `extra`: hostname, annotations, ..."""
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="default"),
        log_directory=os.path.join(lab, "pod-logs"),
        linux=cri.LinuxPodSandboxConfig(security_context=cri.LinuxSandboxSecurityContext(
            namespace_options=cri.NamespaceOption(network=network))),
        **extra)


def run_pod(runtime, config, handler):
    return runtime.RunPodSandbox(cri.RunPodSandboxRequest(config=config, runtime_handler=handler),
                                 timeout=240).pod_sandbox_id


def start_container(runtime, pod, pod_config, name, command, resources=None):
    """Creates and starts busybox container `name` running `command`; returns its id."""
    config = cri.ContainerConfig(metadata=cri.ContainerMetadata(name=name), image=cri.ImageSpec(image=IMAGE),
                                 command=command, log_path=f"{name}.log")
    if resources is not None:
        config.linux.resources.CopyFrom(resources)
    cid = runtime.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=pod, config=config,
                                                             sandbox_config=pod_config), timeout=120).container_id
    runtime.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=120)
    return cid


def stop_and_remove_container(runtime, cid, grace):
    runtime.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=grace), timeout=60)
    runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=60)


def stop_and_remove_pod(runtime, pod):
    runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
    runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def expect_pod_gone(pod, socket):
    """Neither the pod's QEMU nor a shim of this containerd runs any more (waits up to 5 s)."""
    for _ in range(50):
        left = processes_matching("qemu-system", f"sandbox-{pod}") + \
            processes_matching("containerd-shim-kata", f"-address {socket}")
        if not left:
            break
        time.sleep(0.1)
    expect(not left, f"nothing of the pod runs after RemovePodSandbox: {left}")
