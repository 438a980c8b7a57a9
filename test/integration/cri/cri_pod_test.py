#!/usr/bin/python3
"""A pod of two containers through containerd's CRI, as kubelet would drive it.

usage: cri_pod_test.py CONTAINERD-SOCKET RUNTIME-HANDLER LAB-DIR

Checks that one shim and one QEMU serve the whole pod, that both containers run in the same VM
(same guest boot id, not the host's), that ExecSync works in each, and that stopping and removing
the pod leaves no shim or QEMU of it behind.
"""
import os
import sys
import time

import cri_subset_pb2 as cri
from cri_common import (NODE_NETWORK, connect, expect, expect_pod_gone, processes_matching, run_pod,
                        sandbox_config as make_sandbox_config, start_container, stop_and_remove_pod)


def main():
    socket, handler, lab = sys.argv[1:4]
    runtime = connect(socket)
    print("CRI", runtime.Version(cri.VersionRequest(version="v1")).runtime_version)

    sandbox_config = make_sandbox_config("kata-pod", lab, NODE_NETWORK)
    pod = run_pod(runtime, sandbox_config, handler)
    print("pod", pod)

    containers = []
    for name in ("first", "second"):
        cid = start_container(runtime, pod, sandbox_config, name, ["/bin/sh", "-c", f"echo {name}-ready; exec sleep 600"])
        containers.append((name, cid))

    shims = processes_matching("containerd-shim-kata", f"-address {socket}")
    expect(len(shims) == 1, f"one shim serves the pod, found {len(shims)}: {shims}")
    vms = processes_matching("qemu-system", f"sandbox-{pod}")
    expect(len(vms) == 1, f"one QEMU runs the pod, found {len(vms)}")

    with open("/proc/sys/kernel/random/boot_id") as f:
        host_boot_id = f.read().strip()
    boot_ids = set()
    for name, cid in containers:
        status = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid)).status
        expect(status.state == 1, f"container {name} is RUNNING (state {status.state}, {status.reason})")
        result = runtime.ExecSync(cri.ExecSyncRequest(
            container_id=cid, cmd=["/bin/sh", "-c", "echo exec-in-$0; cat /proc/sys/kernel/random/boot_id", name],
            timeout=60), timeout=90)
        lines = result.stdout.decode().split()
        expect(result.exit_code == 0 and lines[:1] == [f"exec-in-{name}"],
               f"ExecSync in {name}: exit {result.exit_code}, stdout {result.stdout!r}, stderr {result.stderr!r}")
        boot_ids.add(lines[1])
        failing = runtime.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["/bin/sh", "-c", "exit 5"],
                                                       timeout=60), timeout=90)
        expect(failing.exit_code == 5, f"ExecSync exit code in {name}: {failing.exit_code}")
    expect(len(boot_ids) == 1, f"both containers share one guest kernel: boot ids {boot_ids}")
    expect(host_boot_id not in boot_ids, "the containers run in a VM, not on the host kernel")

    for name, cid in containers:
        log = os.path.join(lab, "pod-logs", f"{name}.log")
        for _ in range(50):
            if os.path.exists(log) and f"{name}-ready" in open(log).read():
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"FAIL: {name}'s output never reached its CRI log {log}")

    for name, cid in containers:
        runtime.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=5), timeout=60)
        status = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=cid)).status
        expect(status.state == 2, f"{name} EXITED after StopContainer (state {status.state})")
        runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=60)
    stop_and_remove_pod(runtime, pod)
    expect_pod_gone(pod, socket)
    print("POD", pod)


if __name__ == "__main__":
    main()
