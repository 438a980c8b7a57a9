#!/usr/bin/python3
"""Dynamic sizing through containerd's CRI: container limits hotplug vCPUs and memory, an update
grows memory and unplugs a vCPU, pc-dimm memory stays after removal (docs/resources.md).

usage: cri_resources_test.py CONTAINERD-SOCKET RUNTIME-HANDLER LAB-DIR

The lab's configuration must be in dynamic mode (static_sandbox_resource_mgmt = false) with
default_memory = 512; the pod asks for default_vcpus 0.75 by annotation. One pod, one VM.
"""
import os
import sys
import time

import cri_subset_pb2 as cri
from cri_common import (NODE_NETWORK, connect, expect, run_pod, sandbox_config as make_sandbox_config,
                        start_container, stop_and_remove_container, stop_and_remove_pod)

MIB = 1024 * 1024


def main():
    socket, handler, lab = sys.argv[1:4]
    runtime = connect(socket)

    sandbox_config = make_sandbox_config(
        "cpu-pod", lab, NODE_NETWORK, annotations={"io.katacontainers.config.hypervisor.default_vcpus": "0.75"})
    pod = run_pod(runtime, sandbox_config, handler)

    def start(name, resources):
        return start_container(runtime, pod, sandbox_config, name, ["/bin/sh", "-c", "exec sleep 600"], resources)

    def run(cid, command):
        result = runtime.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=["/bin/sh", "-c", command],
                                                      timeout=60), timeout=90)
        expect(result.exit_code == 0, f"{command}: exit {result.exit_code}, {result.stderr!r}")
        return result.stdout.decode().strip()

    def nproc_becomes(cid, wanted, what, seconds=60):
        seen = None
        for _ in range(seconds * 2):
            seen = run(cid, "nproc")
            if seen == str(wanted):
                return
            time.sleep(0.5)
        raise SystemExit(f"FAIL: {what}: nproc is {seen}, expected {wanted}")

    def mem_total_kib(cid):
        return int(run(cid, "grep MemTotal /proc/meminfo").split()[1])

    # 0.75 + 1.2 = 1.95 -> 2 vCPUs; 512 + 256 MiB.
    worker = start("worker", cri.LinuxContainerResources(cpu_period=100000, cpu_quota=120000,
                                                         memory_limit_in_bytes=256 * MIB))
    expect(run(worker, "nproc") == "2", "nproc after the worker's CPU limit was hotplugged")
    before = mem_total_kib(worker)
    expect((768 - 192) * 1024 < before <= 768 * 1024, f"MemTotal {before} kB for 768 MiB")

    # Update: memory up by 256 MiB (CPU unchanged).
    runtime.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
        container_id=worker, linux=cri.LinuxContainerResources(cpu_period=100000, cpu_quota=120000,
                                                               memory_limit_in_bytes=512 * MIB)), timeout=120)
    after = mem_total_kib(worker)
    expect(after - before == 256 * 1024, f"MemTotal grew by {after - before} kB, expected 262144 (256 MiB)")

    # A second container: 0.75 + 1.2 + 0.1 needs 3 vCPUs, the host has 2 (default_maxvcpus).
    probe = start("probe", cri.LinuxContainerResources(cpu_period=100000, cpu_quota=10000))
    expect(run(probe, "nproc") == "2", "nproc in a second small container")

    # Update: the worker's CPU down to 0.05 (0.75 + 0.05 + 0.1 = 0.9 -> 1 vCPU): with KVM one vCPU
    # is unplugged; under TCG the VM keeps it (QEMU 7.2 aborts when a vCPU is plugged again into
    # an emptied slot; docs/resources.md).
    runtime.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
        container_id=worker, linux=cri.LinuxContainerResources(cpu_period=100000, cpu_quota=5000,
                                                               memory_limit_in_bytes=512 * MIB)), timeout=120)
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    vcpus_left = 1 if kvm else 2
    if kvm:
        nproc_becomes(probe, 1, "after lowering the worker's CPU limit to 0.05")
    else:
        time.sleep(3)
        expect(run(probe, "nproc") == "2", "under TCG no vCPU is unplugged")
        # Growing again is harmless: nothing was unplugged.
        runtime.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
            container_id=worker, linux=cri.LinuxContainerResources(cpu_period=100000, cpu_quota=120000,
                                                                   memory_limit_in_bytes=512 * MIB)), timeout=120)
        expect(run(probe, "nproc") == "2", "nproc after growing again under TCG")

    stop_and_remove_container(runtime, worker, 5)
    # pc-dimm memory stays plugged (docs/resources.md): MemTotal does not shrink.
    expect(mem_total_kib(probe) == after, "MemTotal after removal (pc-dimm memory is kept)")
    expect(run(probe, "nproc") == str(vcpus_left), "nproc after removal")

    stop_and_remove_container(runtime, probe, 5)
    stop_and_remove_pod(runtime, pod)
    print("POD", pod)


if __name__ == "__main__":
    main()
