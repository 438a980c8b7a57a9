#!/usr/bin/env bash
# The README's main job: run a container in a VM through a real containerd with an installed tree
# (make install PREFIX=...), then take everything down again.
# usage: demo.sh PREFIX
set -uo pipefail
prefix=$(cd "${1:?usage: demo.sh PREFIX}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
export LAB_SHIM=$prefix/bin/containerd-shim-kata-v2
export LAB_CONFIG=$prefix/share/defaults/kata-containers/runtime-rs/configuration.toml
# shellcheck source=lab.sh
source "$here/lab.sh"

[[ $(id -u) == 0 ]] || lab_die "the demo needs root: containerd, mounts and /run/containerd"
echo "== shim: $("$LAB_SHIM" -v | head -1)"
echo "== configuration: $(readlink -f "$LAB_CONFIG")"
lab_start
echo "== private containerd $(containerd --version | awk '{print $3}') in $LAB"
lab_import_busybox
echo "== ctr run --runtime io.containerd.kata.v2 localhost/busybox:latest demo ..."
start_ms=$(($(date +%s%N) / 1000000))
lab_run --rm demo /bin/sh -c 'echo "Hello from a container in a Kata VM"; echo "guest kernel: $(uname -r), $(nproc) vCPU"'
rc=$?
elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
echo "== host kernel: $(uname -r); ctr run took $((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100)) s, exit $rc"
if ((rc != 0)); then
  echo "== the run failed; containerd's log (shim lines):" >&2
  grep -E 'containerd-shim-kata-v2' "$LAB/containerd.log" | tail -20 >&2
fi
lab_stop
exit $rc
