#!/usr/bin/env bash
# Integration tests through a real containerd 1.6 and ctr: every case starts a private containerd
# (lab.sh), runs containers in QEMU VMs through our shim, checks what a user of ctr sees, and
# checks that nothing of the sandbox outlives it.
#
# usage: ctr_test.sh CASE      (environment: LAB_SHIM LAB_CONFIG LAB_KERNEL LAB_INITRD; see lab.sh)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab.sh
source "$here/lab.sh"

fail() { echo "FAIL: $*" >&2; [[ -n ${LAB:-} ]] && tail -40 "$LAB/containerd.log" | grep -E 'level=(warn|error)' >&2; exit 1; }
expect_eq() { [[ $1 == "$2" ]] || fail "$3: expected '$2', got '$1'"; }
expect_contains() { [[ $1 == *"$2"* ]] || fail "$3: expected it to contain '$2', got '$1'"; }

task_status() { ctr tasks ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }

wait_status() {  # wait_status ID STATUS SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [[ $(task_status "$1") == "$2" ]] && return 0
    sleep 0.1
  done
  fail "task $1 did not reach $2 within $3 s (it is '$(task_status "$1")')"
}

remove() {  # remove ID: what `ctr run --rm` does for a detached task
  ctr tasks delete -f "$1" >/dev/null 2>&1
  ctr containers delete "$1" >/dev/null 2>&1
  lab_assert_gone "$1" || fail "sandbox $1 was not cleaned up"
}

case_hello() {
  local out
  out=$(lab_run --rm hello /bin/sh -c 'echo hello-from-kata; uname -r') || fail "ctr run exited $?: $out"
  expect_eq "$out" "hello-from-kata"$'\n'"$(lab_guest_kernel_release)" "output of the container"
  lab_assert_gone hello || fail "hello left something behind"
}

case_exit_codes() {
  local code
  lab_run --rm exit7 /bin/sh -c 'exit 7'
  code=$?
  expect_eq "$code" 7 "exit status of 'exit 7'"
  # The container's init is immune to its own signals (pid namespace rule), so the shell
  # reports the SIGKILL of a child, as it would under runc.
  # (A second command keeps busybox sh from exec'ing the child in its place as PID 1.)
  lab_run --rm killed /bin/sh -c '/bin/sh -c "kill -9 \$\$"; exit $?'
  code=$?
  expect_eq "$code" 137 "exit status of a shell whose child was SIGKILLed"
  # A failed Start leaves the task CREATED (ctr does not delete it, as with runc); `delete -f`
  # kills it (its waiters complete) and nothing of the sandbox remains.
  local out
  out=$(lab_run --rm nocmd /no/such/binary 2>&1) && fail "running a missing binary succeeded: $out"
  expect_contains "$out" "/no/such/binary" "error for a missing binary"
  timeout 30 ctr tasks delete -f nocmd >/dev/null 2>&1 || fail "ctr tasks delete -f of a task whose start failed"
  ctr containers delete nocmd >/dev/null 2>&1
  lab_assert_gone exit7 && lab_assert_gone killed && lab_assert_gone nocmd || fail "exit-code cases left something behind"
}

case_stdin() {
  local out
  out=$(printf 'line one\nline two\n' | lab_run --rm stdin /bin/sh -c 'cat; echo done') || fail "ctr run exited $?"
  expect_eq "$out" $'line one\nline two\ndone' "stdin piped through cat"
  lab_assert_gone stdin || fail "stdin case left something behind"
}

case_tty() {
  local out
  # ctr -t needs a terminal on its own stdin: script(1) gives it one, running the command with
  # $SHELL, which must be bash here (lab_run is bash; a fresh machine may have /bin/sh).
  out=$(SHELL=/bin/bash script -qec "$(declare -f lab_run); LAB=$LAB; lab_run --rm -t tty /bin/sh -c 'test -t 0 && test -t 1 && echo is-a-tty; echo cols=\$(stty size 2>/dev/null)'" /dev/null </dev/null | tr -d '\r') ||
    fail "ctr run -t exited $?: $out"
  expect_contains "$out" "is-a-tty" "stdin and stdout of a -t container"
  lab_assert_gone tty || fail "tty case left something behind"
}

case_lifecycle() {
  local id=life out
  # PID 1 of a pid namespace ignores signals it has no handler for (runc's containers too).
  lab_run -d "$id" /bin/sh -c 'trap "exit 143" TERM; echo started; while true; do sleep 1; done' >/dev/null ||
    fail "ctr run -d failed"
  wait_status "$id" RUNNING 5

  out=$(ctr tasks exec --exec-id e1 "$id" /bin/sh -c 'echo exec-ok; hostname') || fail "exec failed: $out"
  expect_eq "${out%%$'\n'*}" "exec-ok" "exec output"
  ctr tasks exec --exec-id e2 "$id" /bin/sh -c 'exit 3'
  expect_eq "$?" 3 "exit status of an exec"
  out=$(echo piped-to-exec | ctr tasks exec --exec-id e3 "$id" /bin/cat) || fail "exec with stdin failed"
  expect_eq "$out" "piped-to-exec" "exec stdin"

  out=$(ctr tasks ps "$id") || fail "ctr tasks ps failed"
  [[ $(wc -l <<<"$out") -ge 2 ]] || fail "ctr tasks ps lists no process: $out"

  ctr tasks pause "$id" || fail "pause failed"
  wait_status "$id" PAUSED 5
  ctr tasks resume "$id" || fail "resume failed"
  wait_status "$id" RUNNING 5

  out=$(ctr tasks metrics "$id") || fail "metrics failed: $out"
  expect_contains "$out" "memory" "ctr tasks metrics"

  ctr tasks kill -s TERM "$id" || fail "kill failed"
  wait_status "$id" STOPPED 20
  remove "$id"
}

case_shim_killed() {
  local id=shimkill shim
  lab_run -d "$id" /bin/sh -c 'while true; do sleep 1; done' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 5
  shim=$(lab_shim_pid "$id")
  [[ -n $shim ]] || fail "no shim process for $id"
  kill -KILL "$shim"
  # containerd notices the dead shim and runs `<shim> delete`; the task then reports stopped
  # or is gone.
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(task_status "$id") != RUNNING ]] && break
    sleep 0.1
  done
  ctr tasks delete -f "$id" >/dev/null 2>&1
  ctr containers delete "$id" >/dev/null || fail "ctr containers delete after a dead shim failed"
  lab_assert_gone "$id" || fail "a SIGKILLed shim left its sandbox behind"
}

case_vmm_killed() {
  local id=vmmkill qemu
  lab_run -d "$id" /bin/sh -c 'while true; do sleep 1; done' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 5
  qemu=$(pgrep -f -- "-name sandbox-$id( |,|$)" | head -1)
  [[ -n $qemu ]] || fail "no QEMU for $id"
  kill -KILL "$qemu"
  wait_status "$id" STOPPED 5
  remove "$id"
}

case_cycles() {
  local i out
  for ((i = 0; i < ${CYCLES:-10}; i++)); do
    out=$(lab_run --rm "cycle$i" /bin/echo "cycle $i") || fail "cycle $i: ctr run exited $?: $out"
    expect_eq "$out" "cycle $i" "cycle $i output"
    lab_assert_gone "cycle$i" || fail "cycle $i left something behind"
  done
  [[ -z $(ctr tasks ls -q) && -z $(ctr containers ls -q) ]] || fail "containerd still lists tasks or containers"
}

# Bad input: one clear error through ctr, and nothing left behind.
case_bad_input() {
  local out
  printf '[hypervisor.qemu]\ndefault_vcpus = "many"\n' >"$LAB/kata/config.d/90-bad.toml"
  out=$(lab_run --rm badcfg /bin/true 2>&1) && fail "a malformed configuration was accepted"
  expect_contains "$out" "default_vcpus" "error for a malformed configuration"
  rm "$LAB/kata/config.d/90-bad.toml"
  lab_assert_gone badcfg || fail "malformed config left something behind"

  printf '[hypervisor.qemu]\nkernel = "/nonexistent/vmlinux"\n' >"$LAB/kata/config.d/90-bad.toml"
  out=$(lab_run --rm nokernel /bin/true 2>&1) && fail "a missing kernel was accepted"
  expect_contains "$out" "/nonexistent/vmlinux" "error for a missing kernel"
  rm "$LAB/kata/config.d/90-bad.toml"
  lab_assert_gone nokernel || fail "missing kernel left something behind"

  # default_vcpus is enabled for annotations by the shipped configuration, but not beyond the
  # maximum. (A hypervisor annotation that enable_annotations does not allow is ignored with a
  # warning, as upstream does; it is not an error.)
  out=$(lab_run --rm --annotation=io.katacontainers.config.hypervisor.default_vcpus=4096 badannot /bin/true 2>&1) &&
    fail "an annotation beyond the allowed range was accepted"
  expect_contains "$out" "io.katacontainers.config.hypervisor.default_vcpus" "error for a disallowed annotation value"
  lab_assert_gone badannot || fail "disallowed annotation left something behind"

  # QEMU refuses to start: a kernel file that is no kernel.
  head -c 4096 /dev/urandom >"$LAB/work/garbage-kernel"
  printf '[hypervisor.qemu]\nkernel = "%s"\n' "$LAB/work/garbage-kernel" >"$LAB/kata/config.d/90-bad.toml"
  out=$(lab_run --rm badqemu /bin/true 2>&1) && fail "a VM with a garbage kernel started"
  expect_contains "$out" "qemu" "error when QEMU fails to start"
  rm "$LAB/kata/config.d/90-bad.toml"
  lab_assert_gone badqemu || fail "failed QEMU start left something behind"
}

# shim-ctl: the same runtime driven from an OCI bundle without containerd.
case_shim_ctl() {
  local bundle=$LAB/work/ctl-bundle out code
  mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/dev"
  cp /bin/busybox "$bundle/rootfs/bin/busybox"
  ln -s busybox "$bundle/rootfs/bin/sh"
  cat >"$bundle/config.json" <<'JSON'
{"ociVersion": "1.0.2",
 "process": {"args": ["/bin/sh", "-c", "echo ctl-ok; /bin/busybox uname -r; exit 4"], "cwd": "/", "env": ["PATH=/bin"],
             "user": {"uid": 0, "gid": 0}},
 "root": {"path": "rootfs"},
 "hostname": "ctl",
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
 "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}]}}
JSON
  out=$(timeout -k 5 180 "${LAB_SHIM_CTL:?LAB_SHIM_CTL}" --bundle "$bundle" --id ctl-sandbox --config "$LAB/kata/configuration.toml")
  code=$?
  expect_eq "$code" 4 "shim-ctl's exit status (the container's)"
  expect_eq "$out" "ctl-ok"$'\n'"$(lab_guest_kernel_release)" "shim-ctl output"
  lab_assert_gone ctl-sandbox || fail "shim-ctl left its sandbox behind"
}

# A pod of two containers through containerd's CRI plugin (cri/cri_pod_test.py): one shim and
# one VM for the pod.
case_cri_pod() {
  lab_import_cri_images
  mkdir -p "$LAB/cri" "$LAB/cni/net.d"
  /usr/bin/python3 -m grpc_tools.protoc -I "$here/cri" --python_out="$LAB/cri" --grpc_python_out="$LAB/cri" \
    "$here/cri/cri_subset.proto" || fail "generating the CRI client failed (python3-grpc-tools)"
  PYTHONPATH=$LAB/cri /usr/bin/python3 "$here/cri/cri_pod_test.py" "$LAB/containerd.sock" kata "$LAB" ||
    fail "the CRI pod test failed"
}

# --- CPU and memory sizing (docs/resources.md) ------------------------------------------------

exec_out() {  # exec_out ID CMD...: stdout of CMD run in task ID
  local id=$1; shift
  timeout 60 ctr tasks exec --exec-id "x$RANDOM" "$id" "$@"
}

mem_total_kib() { exec_out "$1" /bin/sh -c 'grep MemTotal /proc/meminfo' | awk '{print $2}'; }

# MemTotal is the VM's memory less what the guest kernel keeps for itself: it
# must lie in (MiB - 192, MiB] (measured here: ~120 MiB less at 288 and at 768 MiB).
expect_mem_total() {  # expect_mem_total ID MIB WHAT
  local kib
  kib=$(mem_total_kib "$1")
  [[ -n $kib ]] || fail "$3: no MemTotal"
  ((kib <= $2 * 1024 && kib > ($2 - 192) * 1024)) || fail "$3: MemTotal ${kib} kB is not within 192 MiB below $2 MiB"
  echo "$1: MemTotal ${kib} kB for $2 MiB"
}

qemu_cmdline() { tr '\0' ' ' <"/proc/$(pgrep -f -- "-name sandbox-$1( |,|$)" | head -1)/cmdline"; }

sizing_config() {  # sizing_config static|dynamic
  local static=false
  [[ $1 == static ]] && static=true
  printf '[hypervisor.qemu]\ndefault_memory = 512\n[runtime]\nstatic_sandbox_resource_mgmt = %s\n' "$static" \
    >"$LAB/kata/config.d/60-sizing.toml"
}

# Dynamic mode: the VM boots with the configuration's size (ceil(0.75) = 1 vCPU, 512 MiB) and
# the container's limits are hotplugged when it is created: 0.75 + 1.2 CPUs need 2 vCPUs, and
# 512 + 256 MiB of memory.
case_cpu_dynamic() {
  local id=cpu-dyn out
  sizing_config dynamic
  LAB_RUN_TIMEOUT=240 lab_run -d --annotation=io.katacontainers.config.hypervisor.default_vcpus=0.75 --cpus=1.2 \
    --memory-limit=$((256 << 20)) "$id" /bin/sh -c 'sleep 600' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 10
  out=$(qemu_cmdline "$id")
  expect_contains "$out" "-smp 1,maxcpus=" "QEMU boots the configured vCPUs (dynamic mode adds nothing at creation)"
  expect_contains "$out" "-m 512M" "QEMU boots the configured memory"
  expect_eq "$(exec_out "$id" nproc)" 2 "nproc after hotplug (ceil(0.75 + 1.2))"
  expect_eq "$(exec_out "$id" cat /sys/devices/system/cpu/online)" 0-1 "online CPUs"
  expect_mem_total "$id" 768 "memory after hotplug (512 + 256 MiB)"
  remove "$id"
}

# Static mode: the VM is created at overhead + workload (qemu: 0.2 vCPU, 32 MiB), nothing is
# hotplugged: max(0.2 + 1.2, 1) = 1.4 -> 2 vCPUs with no headroom, 32 + 256 = 288 MiB.
case_cpu_static() {
  local id=cpu-static out
  sizing_config static
  lab_run -d --annotation=io.katacontainers.config.hypervisor.default_vcpus=0.75 --cpus=1.2 \
    --memory-limit=$((256 << 20)) "$id" /bin/sh -c 'sleep 600' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 10
  out=$(qemu_cmdline "$id")
  expect_contains "$out" "-smp 2,maxcpus=2 " "QEMU boots the computed vCPUs without hotplug headroom"
  expect_contains "$out" "-m 288M" "QEMU boots overhead + workload memory"
  expect_eq "$(exec_out "$id" nproc)" 2 "nproc (ceil(0.2 + 1.2))"
  expect_mem_total "$id" 288 "memory (32 + 256 MiB)"
  remove "$id"
}

# Dynamic mode through the CRI: create, UpdateContainerResources (vCPU unplug, memory growth)
# and removal resize one pod's VM (cri/cri_resources_test.py).
case_cri_resources() {
  sizing_config dynamic
  lab_import_cri_images
  mkdir -p "$LAB/cri" "$LAB/cni/net.d"
  /usr/bin/python3 -m grpc_tools.protoc -I "$here/cri" --python_out="$LAB/cri" --grpc_python_out="$LAB/cri" \
    "$here/cri/cri_subset.proto" || fail "generating the CRI client failed (python3-grpc-tools)"
  PYTHONPATH=$LAB/cri /usr/bin/python3 "$here/cri/cri_resources_test.py" "$LAB/containerd.sock" kata "$LAB" ||
    fail "the CRI resources test failed"
}

# --- host cgroups (docs/resources.md) ------------------------------------------------------------

# Directories of cgroup PATH (relative) in every v1 hierarchy or the v2 one that exist.
cgroup_dirs() {
  local dir
  for dir in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
    [[ -d $dir && $dir != /sys/fs/cgroup/unified/* ]] && echo "$dir"
  done
}

# sandbox_cgroup_only = true (the shipped value): QEMU and virtiofsd run in the pod's cgroup
# (ctr gives linux.cgroupsPath = /<namespace>/<id>); after teardown, also of a SIGKILLed shim,
# the cgroup is gone. A cgroup that cannot be created fails the run with its path.
case_cgroups() {
  local id=cgrp-pod qemu out pid
  lab_run -d "$id" /bin/sh -c 'sleep 600' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 10
  qemu=$(pgrep -f -- "-name sandbox-$id( |,|$)" | head -1)
  [[ -n $qemu ]] || fail "no QEMU for $id"
  out=$(cat "/proc/$qemu/cgroup")
  expect_contains "$out" ":/kata-lab/$id"$'\n' "QEMU's /proc/<pid>/cgroup"
  for pid in $(pgrep -f -- "virtiofsd.*/$id/"); do
    expect_contains "$(cat "/proc/$pid/cgroup")" ":/kata-lab/$id"$'\n' "virtiofsd's cgroup"
  done
  [[ -n $(cgroup_dirs "kata-lab/$id") ]] || fail "no cgroup directory kata-lab/$id"
  remove "$id"
  [[ -z $(cgroup_dirs "kata-lab/$id") ]] || fail "cgroups left after teardown: $(cgroup_dirs "kata-lab/$id")"

  id=cgrp-kill
  lab_run -d "$id" /bin/sh -c 'sleep 600' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 10
  [[ -n $(cgroup_dirs "kata-lab/$id") ]] || fail "no cgroup directory kata-lab/$id"
  kill -KILL "$(lab_shim_pid "$id")"
  sleep 1
  ctr tasks delete -f "$id" >/dev/null 2>&1
  ctr containers delete "$id" >/dev/null 2>&1
  lab_assert_gone "$id" || fail "a SIGKILLed shim left its sandbox behind"
  [[ -z $(cgroup_dirs "kata-lab/$id") ]] || fail "cgroups left after a dead shim: $(cgroup_dirs "kata-lab/$id")"

  # Without sandbox_cgroup_only: QEMU in kata_overhead/<id>, its vCPU threads in the pod's cgroup.
  printf '[runtime]\nsandbox_cgroup_only = false\n' >"$LAB/kata/config.d/60-cgroups.toml"
  id=cgrp-overhead
  lab_run -d "$id" /bin/sh -c 'sleep 600' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 10
  qemu=$(pgrep -f -- "-name sandbox-$id( |,|$)" | head -1)
  expect_contains "$(cat "/proc/$qemu/cgroup")" ":/kata_overhead/$id"$'\n' "QEMU's cgroup without sandbox_cgroup_only"
  grep -qs -- ":/kata-lab/$id\$" /proc/"$qemu"/task/*/cgroup || fail "no QEMU thread (vCPU) in the pod's cgroup"
  remove "$id"
  [[ -z $(cgroup_dirs "kata-lab/$id")$(cgroup_dirs "kata_overhead/$id") ]] || fail "cgroups left without sandbox_cgroup_only"
  rm "$LAB/kata/config.d/60-cgroups.toml"

  out=$(lab_run --rm --cgroup=/cgroup.procs/bad cgrp-bad /bin/true 2>&1) && fail "a cgroup below a file was accepted"
  expect_contains "$out" "cgroup.procs" "error for a cgroup that cannot be created"
  lab_assert_gone cgrp-bad || fail "a failed cgroup left its sandbox behind"
}

[[ $(id -u) == 0 ]] || { echo "SKIP: the integration tests need root (containerd, mounts)"; exit 77; }
case_name=${1:?usage: ctr_test.sh CASE}
declare -F "case_$case_name" >/dev/null || { echo "ctr_test.sh: no case $case_name" >&2; exit 2; }
lab_start
lab_import_busybox
"case_$case_name"
lab_stop
echo "PASS: $case_name"
