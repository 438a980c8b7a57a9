#!/usr/bin/env bash
# `ctr run` to first output through our shim, split into phases, with the shim's own CPU time, and
# how fast a SIGKILLed VMM becomes a TaskExit, in one private containerd (lab.sh).
#
# usage: bench/e2e/ctr_run.sh BUILD-DIR [RUNS]        (root; BUILD-DIR has the shim and guest image)
#
# Phases of one run (host clock unless noted):
#   shim    ctr started -> the shim launches QEMU (containerd, shim start, config, virtiofsd)
#   vmm     QEMU launched -> guest kernel starts (QEMU setup, firmware-less PVH entry)
#   kernel  guest kernel start -> /init runs (guest clock: the printk time of "Write protecting the
#           kernel read-only data", the last step before the kernel runs /init)
#   agent   /init runs -> the agent answers Health.Check (modules, channel, ttRPC)
#   task    agent ready -> the container's first output reaches ctr (CreateSandbox, share, spawn)
# The shim's own share is its CPU time: the serving shim's, summed over its threads from
# schedstat (ns) the moment the first output arrives, plus the `start` process's (bench/shim's
# start_bench measures that one alone: a few ms). Wall time under a loaded 2-core TCG host is
# mostly waiting for the CPU, so it says little about the shim's work.
# The kernel's start on the host clock is found from inside the container: it prints its guest
# uptime, and the moment ctr prints it minus that uptime is when the guest clock started.
set -uo pipefail
build=$(cd "${1:?usage: ctr_run.sh BUILD-DIR [RUNS]}" && pwd)
runs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../test/integration/lab.sh
source "$here/../../test/integration/lab.sh"
lab_use_build "$build"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
log_ms() {  # log_ms PATTERN: host time (ms) of the first containerd log line matching PATTERN
  local stamp
  stamp=$(grep -m1 -E -- "$1" "$LAB/containerd.log" | sed -n 's/^time="\{0,1\}\([^" ]*\)"\{0,1\} .*/\1/p')
  [[ -n $stamp ]] && echo $(($(date -d "$stamp" +%s%N) / 1000000))
}
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }

lab_start
lab_import_busybox
# printk timestamps on the console log: enable_debug turns the guest console on.
printf '[hypervisor.qemu]\nenable_debug = true\n' >"$LAB/kata/config.d/60-bench.toml"

declare -a total shim vmm kernel agent task shim_cpu
shim_cpu_ms() {  # shim_cpu_ms PID: CPU time of all its threads so far, in ms
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ns += $1} END {printf "%d", ns / 1000000}'
}
for ((i = 0; i < runs; i++)); do
  id=bench$i
  start=$(now_ms)
  # The container prints its uptime and stays a moment, so the console log (removed with the
  # sandbox) can be read while it runs.
  lab_run "$id" /bin/sh -c 'cat /proc/uptime; sleep 3' >"$LAB/out.$i" 2>&1 &
  runner=$!
  until [[ -s $LAB/out.$i ]]; do
    kill -0 "$runner" 2>/dev/null || lab_die "run $i failed: $(cat "$LAB/out.$i")"
    sleep 0.01
  done
  first_output=$(now_ms)
  shim_cpu+=("$(shim_cpu_ms "$(lab_shim_pid "$id")")")
  cp "/run/kata/$id/console.log" "$LAB/console.$i" 2>/dev/null
  wait "$runner" || lab_die "run $i failed: $(cat "$LAB/out.$i")"
  uptime_ms=$(awk 'NR == 1 {printf "%d", $1 * 1000}' "$LAB/out.$i")
  kernel_start=$((first_output - uptime_ms))
  launch=$(log_ms "msg=\"launch .*sandbox=$id( |$)")
  ready=$(log_ms "msg=\"agent answered .*sandbox=$id( |$)")
  init_s=$(grep -a -m1 'Write protecting the kernel read-only data' "$LAB/console.$i" 2>/dev/null |
    sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
  [[ -n $launch && -n $ready && -n $init_s ]] || lab_die "run $i: missing a phase mark (launch=$launch ready=$ready init=$init_s)"
  init_ms=$(awk -v s="$init_s" 'BEGIN {printf "%d", s * 1000}')
  total+=($((first_output - start)))
  shim+=($((launch - start)))
  vmm+=($((kernel_start - launch)))
  kernel+=($((init_ms)))
  agent+=($((ready - kernel_start - init_ms)))
  task+=($((first_output - ready)))
  ctr containers delete "$id" >/dev/null
  echo "run $i: total ${total[-1]} ms (shim ${shim[-1]}, vmm ${vmm[-1]}, kernel ${kernel[-1]}, agent ${agent[-1]}, task ${task[-1]}; serving shim CPU ${shim_cpu[-1]})"
done

echo
echo "| phase | median of $runs (ms) |"
echo "|---|---|"
for phase in shim vmm kernel agent task total shim_cpu; do
  declare -n values=$phase
  echo "| $phase | $(printf '%s\n' "${values[@]}" | median) |"
done

# A sleeping container for the teardown measurement (its idle memory: bench/shim/shim_memory.sh).
lab_run -d idle-kata /bin/sleep 600 >/dev/null || lab_die "idle kata container failed"
sleep 1
# How fast a dead VMM becomes a TaskExit: SIGKILL QEMU, then the /tasks/exit event's timestamp
# (when containerd published what the shim reported) minus the moment of the kill.
ctr events >"$LAB/events" 2>&1 &
events_pid=$!
sleep 1
qemu=$(pgrep -f -- "-name sandbox-idle-kata( |,|$)" | head -1)
killed_ns=$(date +%s%N)
kill -KILL "$qemu"
for ((i = 0; i < 100; i++)); do
  grep -q '/tasks/exit.*idle-kata' "$LAB/events" && break
  sleep 0.1
done
kill "$events_pid" 2>/dev/null
exit_stamp=$(grep -m1 '/tasks/exit.*idle-kata' "$LAB/events" | awk '{print $1 " " $2}')
[[ -n $exit_stamp ]] || lab_die "no /tasks/exit within 10 s of killing QEMU"
stopped_after=$((($(date -d "$exit_stamp" +%s%N) - killed_ns) / 1000000))

echo
echo "QEMU SIGKILLed -> /tasks/exit published by containerd: $stopped_after ms"
lab_stop
