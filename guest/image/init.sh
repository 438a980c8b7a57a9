#!/bin/busybox sh
# shellcheck shell=dash
# /init of an image built without an agent (build-image.sh without --agent): brings the guest up
# the way the agent does, for kernel and device debugging. `agent.smoke_test` on the kernel command
# line prints the marker the smoke test waits for and powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
failed=0 loaded=0
while read -r m; do
  if insmod "/lib/modules/$m"; then loaded=$((loaded + 1)); else failed=$((failed + 1)); fi
done < /etc/modules.order
if grep -qw agent.smoke_test /proc/cmdline; then
  echo "KATA-GUEST-SMOKE init=shell modules_loaded=$loaded modules_failed=$failed"
  poweroff -f
fi
exec setsid cttyhack sh
