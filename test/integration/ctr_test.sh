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

# A CRI pod on a CNI bridge network (cri/cri_network_test.py, docs/network.md): the host reaches
# it and it reaches the host, through tap0_kata and tc mirred in the pod's namespace. The bridge,
# its subnet and the IPAM state are this lab's own.
case_cri_network() {
  lab_import_cri_images
  local bridge=katanet$(($$ % 100000)) third=$(($$ % 200 + 20))
  local subnet=10.213.$third.0/24 gateway=10.213.$third.1
  mkdir -p "$LAB/cri" "$LAB/cni/net.d" "$LAB/cni/ipam"
  LAB_LINKS+=("$bridge")
  cat >"$LAB/cni/net.d/10-kata-lab.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "kata-lab-$bridge", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$LAB/cni/ipam"}},
  {"type": "loopback"}]}
EOF
  /usr/bin/python3 -m grpc_tools.protoc -I "$here/cri" --python_out="$LAB/cri" --grpc_python_out="$LAB/cri" \
    "$here/cri/cri_subset.proto" || fail "generating the CRI client failed (python3-grpc-tools)"
  PYTHONPATH=$LAB/cri /usr/bin/python3 "$here/cri/cri_network_test.py" "$LAB/containerd.sock" kata "$LAB" "$gateway" ||
    fail "the CRI network test failed"
  # CNI DEL took the pod's veth off the bridge.
  local ports
  ports=$(ip -o link show master "$bridge" 2>/dev/null)
  [[ -z $ports ]] || fail "links left on $bridge after the pod was removed: $ports"
}

# A namespace with a link the runtime cannot give to a VM: one error naming the link and its
# type, and the namespace is exactly as it was (no tap, qdisc or filter).
case_netns_bad_link() {
  local netns=$LAB/work/netns out before after
  touch "$netns"
  unshare --net="$netns" true || fail "cannot create a network namespace at $netns"
  links_and_tc() { nsenter --net="$netns" sh -c 'ip -o link show | cut -d: -f2; tc qdisc show; tc filter show dev eth0 ingress'; }
  nsenter --net="$netns" sh -c 'ip link set lo up && ip link add eth0 type veth peer name peer0 &&
    ip addr add 10.214.0.2/24 dev eth0 && ip link set eth0 up && ip link set peer0 up &&
    ip link add br-bad type bridge && ip addr add 10.215.0.1/24 dev br-bad && ip link set br-bad up' ||
    fail "configuring the test namespace failed"
  before=$(links_and_tc)
  out=$(lab_run --rm --with-ns="network:$netns" net-badlink /bin/true 2>&1) && fail "a namespace with a bridge was accepted: $out"
  expect_contains "$out" "link 'br-bad' has type 'bridge', which is not supported" "error for an unsupported link"
  echo "refused as expected: $out"
  after=$(links_and_tc)
  expect_eq "$after" "$before" "the namespace after the refused start"
  lab_assert_gone net-badlink || fail "the refused start left something behind"
  umount "$netns"
}

# ctr run --with-ns into a namespace whose veth's far end is on the host: host and container reach
# each other; after the shim is SIGKILLed, `delete` (from persisted state) removes the tap and the
# ingress qdisc, and the namespace is as it was.
case_netns_veth() {
  local id=net-veth netns=$LAB/work/netns-veth host=knv$(($$ % 100000)) third=$(($$ % 200 + 20)) before after out shim
  touch "$netns"
  unshare --net="$netns" true || fail "cannot create a network namespace at $netns"
  LAB_LINKS+=("$host")
  ip link add "$host" type veth peer name eth0 netns "$netns" && ip addr add "10.216.$third.1/24" dev "$host" &&
    ip link set "$host" up || fail "creating the veth pair failed"
  nsenter --net="$netns" sh -c "ip link set lo up && ip addr add 10.216.$third.2/24 dev eth0 && ip link set eth0 up &&
    ip route add default via 10.216.$third.1" || fail "configuring the namespace failed"
  links_and_tc() { nsenter --net="$netns" sh -c 'ip -o link show | cut -d: -f2; tc qdisc show; tc filter show dev eth0 ingress'; }
  before=$(links_and_tc)
  lab_run -d --with-ns="network:$netns" "$id" /bin/sh -c 'while true; do sleep 1; done' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 5
  expect_contains "$(links_and_tc)" "Egress Redirect to device tap0_kata" "eth0's filter while the container runs"
  out=$(busybox ping -c 3 -W 5 "10.216.$third.2" 2>&1) || fail "the host does not reach the container: $out"
  out=$(ctr tasks exec --exec-id ping "$id" /bin/busybox ping -c 3 -W 5 "10.216.$third.1" 2>&1) ||
    fail "the container does not reach the host: $out"
  shim=$(lab_shim_pid "$id")
  [[ -n $shim ]] || fail "no shim process for $id"
  kill -KILL "$shim"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(task_status "$id") != RUNNING ]] && break
    sleep 0.1
  done
  ctr tasks delete -f "$id" >/dev/null 2>&1
  ctr containers delete "$id" >/dev/null || fail "ctr containers delete after a dead shim failed"
  after=$(links_and_tc)
  expect_eq "$after" "$before" "the namespace after the dead shim's sandbox was deleted"
  lab_assert_gone "$id" || fail "the dead shim's sandbox left something behind"
  umount "$netns"
}

[[ $(id -u) == 0 ]] || { echo "SKIP: the integration tests need root (containerd, mounts)"; exit 77; }
case_name=${1:?usage: ctr_test.sh CASE}
declare -F "case_$case_name" >/dev/null || { echo "ctr_test.sh: no case $case_name" >&2; exit 2; }
lab_start
lab_import_busybox
"case_$case_name"
lab_stop
echo "PASS: $case_name"
