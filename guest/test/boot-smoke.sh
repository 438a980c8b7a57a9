#!/bin/bash
# Boots the built guest image in QEMU TCG with `agent.smoke_test` and checks that the agent ran
# as /init, loaded every module the image lists, and found its virtio-serial channel.
# usage: boot-smoke.sh IMAGE-DIR [TIMEOUT-SECONDS]
set -euo pipefail
image=${1:?usage: boot-smoke.sh IMAGE-DIR [TIMEOUT]}
timeout_s=${2:-60}
kernel=$image/vmlinux.container initrd=$image/kata-containers-initrd.img modules=$image/kata-containers-initrd.modules
for f in "$kernel" "$initrd" "$modules"; do
  [[ -f $f ]] || { echo "FAIL: $f missing (build the guest-image target first)"; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/kata-test-boot.XXXXXX")
qemu_pid=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then kill -KILL "$qemu_pid"; wait "$qemu_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 2 -m 512M -nographic -no-reboot -nodefaults \
  -serial "file:$work/console.log" -monitor none \
  -device virtio-serial-pci,id=ser0 \
  -chardev "socket,path=$work/agent.sock,server=on,wait=off,id=agent" \
  -device virtserialport,bus=ser0.0,chardev=agent,name=agent.channel.0 \
  -kernel "$kernel" -initrd "$initrd" -append 'console=ttyS0 quiet panic=-1 agent.smoke_test' \
  </dev/null >"$work/qemu.out" 2>&1 &
qemu_pid=$!

deadline=$((SECONDS + timeout_s))
while kill -0 "$qemu_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
if kill -0 "$qemu_pid" 2>/dev/null; then
  echo "FAIL: guest did not power off within ${timeout_s}s; console:"; cat "$work/console.log"; exit 1
fi
wait "$qemu_pid" || { echo "FAIL: qemu failed:"; cat "$work/qemu.out"; exit 1; }
qemu_pid=

marker=$(grep -a 'KATA-GUEST-SMOKE' "$work/console.log" | tr -d '\r' || true)
if [[ -z $marker ]]; then echo "FAIL: no smoke marker; console:"; cat "$work/console.log"; exit 1; fi
echo "$marker"
fail=0
[[ $marker == *init=agent* ]] || { echo "FAIL: /init was not the agent"; fail=1; }
[[ $marker == *modules_failed=0* ]] || { echo "FAIL: some modules failed to load"; cat "$work/console.log"; fail=1; }
[[ $marker =~ channel=/dev/vport[0-9]+p[0-9]+ ]] || { echo "FAIL: agent.channel.0 not found"; fail=1; }
[[ $marker == *"container=smoke/pid=1/0::/kata-smoke exit=0 "* ]] ||
  { echo "FAIL: container did not run as pid 1 of host 'smoke' in cgroup /kata-smoke"; fail=1; }
[[ $marker == *"cgroup=mem:33554432,pids:64"* ]] || { echo "FAIL: cgroup limits not applied"; fail=1; }
[[ $marker =~ oom=exit:137,events:[1-9][0-9]*,notified:1 ]] || { echo "FAIL: OOM kill not seen in memory.events"; fail=1; }
[[ $marker == *" links=lo "* ]] || { echo "FAIL: rtnetlink (static libnl) did not list the loopback link"; fail=1; }
loaded=${marker##*loaded=\[}; loaded=,${loaded%]},
while read -r ko; do
  name=${ko%.ko}; name=${name//-/_}
  [[ $loaded == *",$name,"* ]] || { echo "FAIL: module $name not in /proc/modules"; fail=1; }
done < "$modules"
((fail == 0)) && echo "PASS: $(wc -l < "$modules") modules loaded, channel found, powered off"
exit $fail
