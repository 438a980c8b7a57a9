#!/usr/bin/python3
"""A CRI pod on a CNI bridge network, as kubelet would run it: reachable from the host and
reaching the host (docs/network.md).

usage: cri_network_test.py CONTAINERD-SOCKET RUNTIME-HANDLER LAB-DIR GATEWAY

The CNI bridge plugin gives the pod's network namespace a veth with an address from the lab's
subnet; GATEWAY is the bridge's address on the host. Checks that the shim connected the veth to
the VM (tap0_kata and its mirred filter in the pod's namespace), that the guest got the address
and the default route, that the host pings the pod and reads from a TCP server in it, that the pod
pings the host and sends to a TCP server on it, and that nothing of the pod remains afterwards.
"""
import re
import socket
import subprocess
import sys
import threading
import time

import cri_subset_pb2 as cri
from cri_common import (POD_NETWORK, connect, expect, expect_pod_gone, processes_matching, run_pod,
                        sandbox_config as make_sandbox_config, start_container, stop_and_remove_container,
                        stop_and_remove_pod)

BUSYBOX = "/bin/busybox"


def in_netns(netns, *command):
    result = subprocess.run(["nsenter", f"--net={netns}", *command], capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout + result.stderr


def main():
    sock, handler, lab, gateway = sys.argv[1:5]
    runtime = connect(sock)

    sandbox_config = make_sandbox_config("net-pod", lab, POD_NETWORK, hostname="net-pod")
    pod = run_pod(runtime, sandbox_config, handler)
    print("pod", pod)

    # A TCP server in the pod: every connection gets one line.
    cid = start_container(runtime, pod, sandbox_config, "server",
                          ["/bin/sh", "-c", f"while true; do echo kata-pod-tcp | {BUSYBOX} nc -l -p 8080; done"])

    def exec_sync(*cmd, timeout=60):
        result = runtime.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout),
                                  timeout=timeout + 30)
        return result.exit_code, result.stdout.decode() + result.stderr.decode()

    # Host side: the pod's namespace (QEMU runs in it) has the tap and the redirects.
    vms = processes_matching("qemu-system", f"sandbox-{pod}")
    expect(len(vms) == 1, f"one QEMU runs the pod, found {len(vms)}")
    netns = f"/proc/{vms[0][0]}/ns/net"
    rc, links = in_netns(netns, "ip", "-o", "link", "show")
    expect(rc == 0 and "tap0_kata" in links, f"tap0_kata in the pod's namespace: {links}")
    rc, filters = in_netns(netns, "tc", "filter", "show", "dev", "eth0", "ingress")
    expect("Egress Redirect to device tap0_kata" in filters, f"eth0 redirects to tap0_kata: {filters}")
    rc, filters = in_netns(netns, "tc", "filter", "show", "dev", "tap0_kata", "ingress")
    expect("Egress Redirect to device eth0" in filters, f"tap0_kata redirects to eth0: {filters}")
    rc, host_view = in_netns(netns, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", host_view)
    expect(match, f"the CNI gave eth0 an address: {host_view}")
    pod_ip = match.group(1)

    # Guest side: the agent configured the NIC with the same address, and the default route.
    rc, guest_addr = exec_sync("/bin/sh", "-c", "ip -4 -o addr show dev eth0")
    expect(rc == 0 and f"inet {pod_ip}/{match.group(2)}" in guest_addr, f"guest eth0 has {pod_ip}: {guest_addr}")
    rc, guest_routes = exec_sync("/bin/sh", "-c", "ip route")
    expect(rc == 0 and f"default via {gateway} dev eth0" in guest_routes, f"guest default route: {guest_routes}")
    with open("/proc/sys/kernel/random/boot_id") as f:
        host_boot_id = f.read().strip()
    rc, guest_boot_id = exec_sync("cat", "/proc/sys/kernel/random/boot_id")
    expect(rc == 0 and guest_boot_id.strip() != host_boot_id, "the server runs in the VM")

    # Host -> pod: ICMP and TCP.
    ping = subprocess.run([BUSYBOX, "ping", "-c", "3", "-W", "5", pod_ip], capture_output=True, text=True, timeout=60)
    expect(ping.returncode == 0, f"host pings the pod at {pod_ip}: {ping.stdout}{ping.stderr}")
    print("host -> pod ping:", ping.stdout.strip().splitlines()[-1])
    reply = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((pod_ip, 8080), timeout=5) as connection:
                reply = connection.recv(100)
            if reply:
                break
        except OSError:
            pass
        time.sleep(0.5)
    expect(reply.strip() == b"kata-pod-tcp", f"host reads from the pod's TCP server: {reply!r}")
    print("host -> pod TCP:", reply.decode().strip())

    # Pod -> host: ICMP and TCP to a listener on the bridge address.
    rc, out = exec_sync(BUSYBOX, "ping", "-c", "3", "-W", "5", gateway)
    expect(rc == 0, f"the pod pings the host at {gateway}: {out}")
    print("pod -> host ping:", out.strip().splitlines()[-1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((gateway, 0))
        listener.listen(1)
        listener.settimeout(60)
        port = listener.getsockname()[1]
        # ExecSync returns when nc has sent; the host accepts meanwhile.
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.update(
            result=exec_sync("/bin/sh", "-c", f"echo kata-host-tcp-from-pod | {BUSYBOX} nc -w 10 {gateway} {port}")))
        thread.start()
        connection, peer = listener.accept()
        with connection:
            connection.settimeout(30)
            received = connection.recv(100)
        thread.join(120)
    expect(outcome.get("result", (None,))[0] == 0, f"nc in the pod: {outcome.get('result')}")
    expect(peer[0] == pod_ip, f"the connection comes from the pod's address ({peer[0]})")
    expect(received.strip() == b"kata-host-tcp-from-pod", f"the host reads what the pod sent: {received!r}")
    print("pod -> host TCP:", received.decode().strip())

    stop_and_remove_container(runtime, cid, 2)
    stop_and_remove_pod(runtime, pod)
    expect_pod_gone(pod, sock)
    print("POD", pod)


if __name__ == "__main__":
    main()
