#!/usr/bin/env bash
# The serving shim's memory: idle, serving one sleeping container, next to containerd-shim-runc-v2
# serving the same in the same private containerd (test/integration/lab.sh), with where our PSS
# comes from; then its growth over many exec cycles (exec_cycles, the calls of `ctr task exec`).
#
# usage: bench/shim/shim_memory.sh BUILD-DIR [CYCLES]      (root; BUILD-DIR has shim and guest image)
set -uo pipefail
build=$(cd "${1:?usage: shim_memory.sh BUILD-DIR [CYCLES]}" && pwd)
cycles=${2:-10000}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../test/integration/lab.sh
source "$here/../../test/integration/lab.sh"
lab_use_build "$build"

lab_start
lab_import_busybox
lab_run -d idle-kata /bin/sleep 3600 >/dev/null || lab_die "idle kata container failed"
ctr run -d --runtime io.containerd.runc.v2 localhost/busybox:latest idle-runc /bin/sleep 3600 >/dev/null ||
  lab_die "idle runc container failed"
sleep 3
kata_pid=$(lab_shim_pid idle-kata)
runc_pid=$(pgrep -f -- "containerd-shim-runc-v2 .*-id idle-runc( |$)" | head -1)
[[ -n $kata_pid && -n $runc_pid ]] || lab_die "a shim is missing (kata: '$kata_pid', runc: '$runc_pid')"

rollup() {  # rollup PID -> "RSS PSS anonymous threads" (KiB)
  awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Anonymous:/ {a = $2} END {printf "%s %s %s", r, p, a}' "/proc/$1/smaps_rollup"
  echo " $(ls "/proc/$1/task" | wc -l)"
}
echo "| idle shim, one sleeping container | RSS (KiB) | PSS (KiB) | anonymous (KiB) | threads |"
echo "|---|---:|---:|---:|---:|"
read -r r p a t <<<"$(rollup "$kata_pid")"
echo "| containerd-shim-kata-v2 (ours, $(basename "$(readlink -f "/proc/$kata_pid/exe")")) | $r | $p | $a | $t |"
read -r r p a t <<<"$(rollup "$runc_pid")"
echo "| containerd-shim-runc-v2 | $r | $p | $a | $t |"
echo
echo "Our PSS by mapping (KiB, ≥ 40):"
awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anonymous]" : $6)} /^Pss:/ {pss[name] += $2}
     END {for (n in pss) if (pss[n] >= 40) printf "  %6d  %s\n", pss[n], n}' "/proc/$kata_pid/smaps" | sort -rn

echo
address=$(cat "$LAB/state/io.containerd.runtime.v2.task/$CONTAINERD_NAMESPACE/idle-kata/address")
"$build/bench/shim/exec_cycles" --address "$address" --id idle-kata --pid "$kata_pid" --cycles "$cycles" \
  --every $((cycles >= 1000 ? cycles / 10 : 100)) || lab_die "exec cycles failed"
lab_stop
