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

# kill_shim_and_delete ID: SIGKILL the task's shim, let containerd notice (it runs `<shim> delete`
# and the task reports stopped or is gone), then delete task and container as an operator would.
# Returns the status of `ctr containers delete`.
kill_shim_and_delete() {
  local id=$1 shim i
  shim=$(lab_shim_pid "$id")
  [[ -n $shim ]] || fail "no shim process for $id"
  kill -KILL "$shim"
  for ((i = 0; i < 100; i++)); do
    [[ $(task_status "$id") != RUNNING ]] && break
    sleep 0.1
  done
  ctr tasks delete -f "$id" >/dev/null 2>&1
  ctr containers delete "$id" >/dev/null
}

remove() {  # remove ID: what `ctr run --rm` does for a detached task
  lab_ctr tasks delete -f "$1" >/dev/null 2>&1
  lab_ctr containers delete "$1" >/dev/null 2>&1
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
  local id=shimkill
  lab_run -d "$id" /bin/sh -c 'while true; do sleep 1; done' >/dev/null || fail "ctr run -d failed"
  wait_status "$id" RUNNING 5
  kill_shim_and_delete "$id" || fail "ctr containers delete after a dead shim failed"
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

# Volumes (docs/volumes.md) in one pod sandbox, its containers joined through the CRI
# annotations: bind mounts of directories and files (read-only ones refuse writes with EROFS), a
# sized /dev/shm, a Kubernetes memory emptyDir (a guest tmpfs shared by the pod's containers), a
# guest-local volume, a direct volume (mountInfo.json) and a block volume (a loop device,
# hotplugged and unplugged again). Bad volumes fail their container alone: the pod keeps running
# and nothing of them is left (no share, no device).
vol_loops=() vol_direct_dir=
vol_cleanup() {
  lab_stop
  local loop
  for loop in "${vol_loops[@]}"; do losetup -d "$loop" 2>/dev/null; done
  [[ -n $vol_direct_dir ]] && rm -rf "$vol_direct_dir" && rmdir --ignore-fail-on-non-empty "${vol_direct_dir%/*}"
  vol_loops=() vol_direct_dir=
}

# A loop device for FILE; the case is skipped (77) where the machine has no loop devices.
vol_losetup() {
  if [[ ! -e /dev/loop-control ]]; then
    echo "SKIP: no loop devices here (/dev/loop-control is missing); block volume cases need them" >&2
    vol_cleanup
    exit 77
  fi
  local loop
  loop=$(losetup --find --show "$1") || fail "losetup $1"
  vol_loops+=("$loop")
  echo "$loop"
}

vol_join() {  # vol_join ID [ctr run options] -- CMD...: a container of the pod volpod
  local id=$1 options=()
  shift
  while [[ $1 != -- ]]; do options+=("$1"); shift; done
  shift
  lab_run --annotation=io.kubernetes.cri.container-type=container --annotation=io.kubernetes.cri.sandbox-id=volpod \
    "${options[@]}" "$id" "$@"
}

case_volumes() {
  trap vol_cleanup EXIT
  local w=$LAB/work/vol out pod=volpod
  mkdir -p "$w/data" "$w/rw" "$w/local" "$w/shm" "$w/blockfs" "$w/directfs" "$w/pod/volumes/kubernetes.io~empty-dir/cache"
  echo from-host >"$w/data/hello"
  echo config-line >"$w/config"
  mount -t tmpfs -o size=24m shm "$w/shm" || fail "mount the pod's shm"
  mount -t tmpfs -o size=4m tmpfs "$w/pod/volumes/kubernetes.io~empty-dir/cache" || fail "mount the memory emptyDir"
  echo block-content >"$w/blockfs/block-hello"
  echo direct-content >"$w/directfs/direct-hello"
  truncate -s 16M "$w/block.img" "$w/direct.img" "$w/blank.img" &&
    mkfs.ext4 -q -d "$w/blockfs" "$w/block.img" && mkfs.ext4 -q -d "$w/directfs" "$w/direct.img" ||
    fail "making the disk images"
  local block_loop blank_loop
  vol_losetup "$w/block.img" >/dev/null && block_loop=${vol_loops[-1]}
  vol_losetup "$w/blank.img" >/dev/null && blank_loop=${vol_loops[-1]}
  # A direct volume as kata-ctl direct-volume add writes it: the volume path need not exist.
  local volume_path=$w/direct-volume
  vol_direct_dir=/run/kata-containers/shared/direct-volumes/$(printf '%s' "$volume_path" | base64 -w0 | tr '+/' '-_')
  mkdir -p "$vol_direct_dir"
  printf '{"volume-type":"directvol","device":"%s","fstype":"ext4","options":[]}' "$w/direct.img" >"$vol_direct_dir/mountInfo.json"

  lab_run -d --annotation=io.kubernetes.cri.container-type=sandbox \
    --mount="type=bind,src=$w/data,dst=/ro-data,options=rbind:ro" \
    --mount="type=bind,src=$w/rw,dst=/rw-data,options=rbind:rw" \
    --mount="type=bind,src=$w/config,dst=/etc/vol-config,options=rbind:ro" \
    --mount="type=bind,src=$w/shm,dst=/dev/shm,options=rbind:rw" \
    --mount="type=bind,src=$w/pod/volumes/kubernetes.io~empty-dir/cache,dst=/cache,options=rbind:rw" \
    --mount="type=local,src=$w/local,dst=/local,options=rbind:rw" \
    --mount="type=bind,src=$volume_path,dst=/direct,options=rbind:ro" \
    "$pod" /bin/sh -c 'while true; do sleep 1; done' >/dev/null || fail "ctr run -d $pod with volumes failed"
  wait_status "$pod" RUNNING 10

  # (The image's busybox has no cut or tail: fields are split by the shell.)
  local fstype='fstype() { while read -r _ m t _; do [ "$m" = "$1" ] && echo "$t"; done </proc/mounts; }'
  local erofs='erofs() { (echo x >"$1") 2>&1 | grep -o "Read-only file system" || echo "$1 is writable"; }'
  out=$(ctr tasks exec --exec-id v1 "$pod" /bin/sh -c "$fstype; $erofs"'
    cat /ro-data/hello; erofs /ro-data/new
    echo from-guest >/rw-data/written; cat /etc/vol-config; erofs /etc/vol-config
    set -- $(df -k /dev/shm | grep -v Filesystem); echo shm=$2
    echo cache=$(fstype /cache); echo shared >/cache/by-pod
    echo local-file >/local/f; echo local=$(cat /local/f)
    cat /direct/direct-hello; echo direct=$(fstype /direct); erofs /direct/new
    echo disks=$(ls /sys/block | grep -c ^vd)') || fail "exec in $pod failed: $out"
  expect_eq "$out" "from-host
Read-only file system
config-line
Read-only file system
shm=24576
cache=tmpfs
local=local-file
direct-content
direct=ext4
Read-only file system
disks=1" "volumes seen by the pod's first container"
  expect_eq "$(cat "$w/rw/written")" from-guest "a write to a read-write bind volume, seen on the host"
  local leaked
  leaked=$(find "$w/local" "$w/pod/volumes/kubernetes.io~empty-dir/cache" -mindepth 1)
  [[ -z $leaked ]] || fail "local and memory emptyDir volumes reached the host: $leaked"

  # A second container: the same emptyDir (the pod's one tmpfs) and a block volume, hotplugged
  # for it and unplugged when it is deleted.
  out=$(vol_join volblk --rm --mount="type=bind,src=$w/pod/volumes/kubernetes.io~empty-dir/cache,dst=/cache,options=rbind:rw" \
    --mount="type=bind,src=$block_loop,dst=/blk,options=rbind:rw" \
    -- /bin/sh -c "$fstype"'; cat /cache/by-pod; cat /blk/block-hello; echo blk=$(fstype /blk)
      echo from-container >/blk/written; sync' 2>&1) || fail "the block-volume container failed: $out"
  expect_eq "$out" "shared
block-content
blk=ext4" "volumes seen by the pod's second container"
  out=$(ctr tasks exec --exec-id v2 "$pod" /bin/sh -c 'echo disks=$(ls /sys/block | grep -c ^vd)') || fail "exec v2: $out"
  expect_eq "$out" "disks=1" "hotplugged disks once the block-volume container is deleted"
  expect_eq "$(debugfs -R "cat /written" "$w/block.img" 2>/dev/null)" from-container "the block volume's write on the host device"

  # Bad volumes: one error naming the volume and its source; the pod runs on, nothing is left.
  out=$(vol_join volmissing --rm --mount="type=bind,src=$w/absent,dst=/missing-volume,options=rbind:ro" -- /bin/true 2>&1) &&
    fail "a container with a missing volume source ran: $out"
  expect_contains "$out" "volume /missing-volume (source $w/absent)" "error for a missing volume source"
  out=$(vol_join volblank --rm --mount="type=bind,src=$blank_loop,dst=/blank,options=rbind:rw" -- /bin/true 2>&1) &&
    fail "a block volume without a filesystem was mounted: $out"
  expect_contains "$out" "volume /blank (source $blank_loop)" "error for a block volume without a filesystem"
  ctr tasks delete -f volmissing >/dev/null 2>&1; ctr containers delete volmissing >/dev/null 2>&1
  ctr tasks delete -f volblank >/dev/null 2>&1; ctr containers delete volblank >/dev/null 2>&1
  wait_status "$pod" RUNNING 1
  out=$(ctr tasks exec --exec-id v3 "$pod" /bin/sh -c 'echo disks=$(ls /sys/block | grep -c ^vd); cat /ro-data/hello') ||
    fail "exec after the failed containers: $out"
  expect_eq "$out" "disks=1
from-host" "the pod after its failed containers"
  local share
  for share in /run/kata-containers/shared/sandboxes/$pod/rw/passthrough/*; do
    case ${share##*/} in
      "$pod" | volpod-*) ;;
      *) fail "left in the pod's shared directory: $share" ;;
    esac
  done
  [[ -z $(grep -E "/(volmissing|volblank)[/ ]" /proc/self/mounts) ]] || fail "mounts of the failed containers are left"

  out=$(ctr tasks kill -s KILL "$pod" 2>&1) || fail "ctr tasks kill $pod: $out"
  wait_status "$pod" STOPPED 30
  remove "$pod"
  vol_cleanup
}

# A block-device rootfs as the devmapper snapshotter gives one (docs/volumes.md: containerd's
# devmapper snapshotter cannot run on this host, so shim-ctl hands the runtime the mount a
# snapshotter would): an ext4 loop device attached to the VM and mounted by the agent as /.
case_block_rootfs() {
  trap vol_cleanup EXIT
  local bundle=$LAB/work/blk-bundle tree=$LAB/work/blk-tree out code loop
  mkdir -p "$bundle/rootfs" "$tree/bin" "$tree/proc" "$tree/dev" "$tree/sys" "$tree/tmp"
  cp /bin/busybox "$tree/bin/busybox"
  ln -s busybox "$tree/bin/sh"
  echo in-the-image >"$tree/marker"
  truncate -s 32M "$LAB/work/rootfs.img" && mkfs.ext4 -q -d "$tree" "$LAB/work/rootfs.img" || fail "making the rootfs image"
  vol_losetup "$LAB/work/rootfs.img" >/dev/null && loop=${vol_loops[-1]}
  cat >"$bundle/config.json" <<'JSON'
{"ociVersion": "1.0.2",
 "process": {"args": ["/bin/sh", "-c", "cat /marker; while read -r _ m t _; do [ \"$m\" = / ] && echo root=$t; done </proc/mounts; echo from-guest >/written; sync"],
             "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
 "root": {"path": "rootfs"},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
 "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}]}}
JSON
  out=$(timeout -k 5 180 "${LAB_SHIM_CTL:?LAB_SHIM_CTL}" --bundle "$bundle" --id blkroot --config "$LAB/kata/configuration.toml" \
    --rootfs-mount "ext4,$loop,rw")
  code=$?
  expect_eq "$code" 0 "shim-ctl's exit status"
  expect_eq "$out" "in-the-image
root=ext4" "the container on a block-device rootfs"
  expect_eq "$(debugfs -R "cat /written" "$LAB/work/rootfs.img" 2>/dev/null)" from-guest "a write to the rootfs, on the host device"
  lab_assert_gone blkroot || fail "the block-rootfs sandbox left something behind"
  vol_cleanup
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

# run_cri_client SCRIPT [ARGS...]: our CRI client cri/SCRIPT against this lab's containerd and
# the kata handler, with the CRI subset's Python code generated into the lab.
run_cri_client() {
  local script=$1; shift
  mkdir -p "$LAB/cri"
  /usr/bin/python3 -m grpc_tools.protoc -I "$here/cri" --python_out="$LAB/cri" --grpc_python_out="$LAB/cri" \
    "$here/cri/cri_subset.proto" || fail "generating the CRI client failed (python3-grpc-tools)"
  PYTHONPATH=$LAB/cri /usr/bin/python3 "$here/cri/$script" "$LAB/containerd.sock" kata "$LAB" "$@" ||
    fail "the CRI client $script failed"
}

# A pod of two containers through containerd's CRI plugin (cri/cri_pod_test.py): one shim and
# one VM for the pod.
case_cri_pod() {
  lab_import_cri_images
  mkdir -p "$LAB/cri" "$LAB/cni/net.d"
  run_cri_client cri_pod_test.py
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
  run_cri_client cri_network_test.py "$gateway"
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
  local id=net-veth netns=$LAB/work/netns-veth host=knv$(($$ % 100000)) third=$(($$ % 200 + 20)) before after out
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
  kill_shim_and_delete "$id" || fail "ctr containers delete after a dead shim failed"
  after=$(links_and_tc)
  expect_eq "$after" "$before" "the namespace after the dead shim's sandbox was deleted"
  lab_assert_gone "$id" || fail "the dead shim's sandbox left something behind"
  umount "$netns"
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
  run_cri_client cri_resources_test.py
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
  kill_shim_and_delete "$id" 2>/dev/null
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
