# shellcheck shell=bash
# A private containerd for the integration tests and `make demo`: its own root, state, sockets and
# opt directory under one temporary directory, so nothing system-wide is configured or left behind.
# containerd 1.6 hard-codes two system paths we cannot move: shim sockets under /run/containerd/s
# and ctr's stdio FIFOs under /run/containerd/fifo; lab_stop removes only what this lab created.
#
# Usage (sourced):
#   LAB_SHIM=<containerd-shim-kata-v2>  LAB_CONFIG=<configuration.toml>
#   [LAB_KERNEL=<vmlinux> LAB_INITRD=<initrd>]  source lab.sh && lab_start && lab_import_busybox && lab_run ID CMD...
# lab_start installs an EXIT trap that stops everything; call lab_stop yourself to check the result.

lab_die() { echo "lab: $*" >&2; exit 1; }

# lab_use_build BUILD-DIR: the qemu variant's shim, configuration and guest image of a build tree.
lab_use_build() {
  export LAB_SHIM=$1/variants/qemu/containerd-shim-kata-qemu-v2
  export LAB_CONFIG=$1/config/configuration-qemu.toml
  export LAB_KERNEL=$1/guest/vmlinux.container LAB_INITRD=$1/guest/kata-containers-initrd.img
}

LAB_LINKS=()  # host links lab_stop deletes

lab_start() {
  : "${LAB_SHIM:?LAB_SHIM: path of containerd-shim-kata-v2}" "${LAB_CONFIG:?LAB_CONFIG: configuration.toml}"
  local file
  for file in "$LAB_SHIM" "$LAB_CONFIG" ${LAB_KERNEL:+"$LAB_KERNEL"} ${LAB_INITRD:+"$LAB_INITRD"}; do
    [[ -e $file ]] || lab_die "$file does not exist"
  done
  command -v containerd >/dev/null || lab_die "containerd is not installed (bash .ci/install-deps)"
  LAB=$(mktemp -d "${TMPDIR:-/tmp}/kata-lab.XXXXXX")
  trap lab_stop EXIT
  mkdir -p "$LAB/opt/bin" "$LAB/kata/config.d" "$LAB/work"
  # The shim containerd resolves for io.containerd.kata.v2 (opt's bin is first on the shims' PATH).
  ln -s "$(readlink -f "$LAB_SHIM")" "$LAB/opt/bin/containerd-shim-kata-v2"
  # The configuration unchanged; a build tree's guest paths come as a drop-in, the mechanism an
  # operator uses for local changes (an installed tree needs none: its paths follow PREFIX).
  cp "$LAB_CONFIG" "$LAB/kata/configuration.toml"
  if [[ -n ${LAB_KERNEL:-}${LAB_INITRD:-} ]]; then
    {
      echo "[hypervisor.qemu]"
      [[ -n ${LAB_KERNEL:-} ]] && echo "kernel = \"$(readlink -f "$LAB_KERNEL")\""
      [[ -n ${LAB_INITRD:-} ]] && echo "initrd = \"$(readlink -f "$LAB_INITRD")\""
    } >"$LAB/kata/config.d/50-lab.toml"
  fi
  # In a chroot into a plain directory (a fresh-machine build root) "/" is no mount, and
  # virtiofsd's default namespace sandbox fails ("mount(/, MS_REC|MS_SLAVE): Invalid argument");
  # its chroot sandbox works there. An operator in that situation would set the same.
  if ! awk '$5 == "/" {found = 1} END {exit !found}' /proc/self/mountinfo; then
    printf '[hypervisor.qemu]\nvirtio_fs_extra_args = ["--thread-pool-size=1", "-o", "announce_submounts", "-o", "sandbox=chroot"]\n' \
      >"$LAB/kata/config.d/55-chroot.toml"
  fi
  cat >"$LAB/containerd.toml" <<EOF
version = 2
root = "$LAB/root"
state = "$LAB/state"
[grpc]
  address = "$LAB/containerd.sock"
[ttrpc]
  address = "$LAB/containerd.sock.ttrpc"
[debug]
  level = "${LAB_CONTAINERD_LOG_LEVEL:-info}"
[plugins."io.containerd.internal.v1.opt"]
  path = "$LAB/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
  # No CAP_SYS_RESOURCE in this lab's containers (host-lab §1d).
  restrict_oom_score_adj = true
  sandbox_image = "localhost/pause:latest"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LAB/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
      runtime_type = "io.containerd.kata.v2"
      pod_annotations = ["io.katacontainers.*"]
      privileged_without_host_devices = true
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata.options]
        ConfigPath = "$LAB/kata/configuration.toml"
EOF
  containerd --config "$LAB/containerd.toml" >"$LAB/containerd.log" 2>&1 &
  LAB_CONTAINERD_PID=$!
  export CONTAINERD_ADDRESS="$LAB/containerd.sock" CONTAINERD_NAMESPACE=kata-lab
  local tries
  for ((tries = 0; tries < 100; tries++)); do
    ctr version >/dev/null 2>&1 && return 0
    kill -0 "$LAB_CONTAINERD_PID" 2>/dev/null || { tail -20 "$LAB/containerd.log" >&2; lab_die "containerd exited"; }
    sleep 0.1
  done
  tail -20 "$LAB/containerd.log" >&2
  lab_die "containerd did not answer within 10 s"
}

# ctr run with this lab's configuration for the kata runtime.
lab_run() {  # lab_run [ctr run options] ID CMD...   (image localhost/busybox:latest)
  local options=() foreground=()
  while [[ $1 == -* ]]; do
    options+=("$1")
    # timeout(1) runs its command in a process group of its own, which a terminal stops
    # (SIGTTOU) when ctr -t makes it raw; --foreground keeps ctr in the terminal's group.
    [[ $1 == -t || $1 == --tty ]] && foreground=(--foreground)
    shift
  done
  local id=$1; shift
  timeout "${foreground[@]}" -k 5 "${LAB_RUN_TIMEOUT:-180}" ctr run --runtime io.containerd.kata.v2 --runtime-config-path "$LAB/kata/configuration.toml" \
    "${options[@]}" localhost/busybox:latest "$id" "$@"
}

# A busybox image built offline with umoci (no registry is reachable) and imported.
lab_import_busybox() {
  local image=$LAB/image
  mkdir -p "$image"
  (
    cd "$image"
    umoci init --layout oci >/dev/null
    umoci new --image oci:latest
    umoci unpack --rootless --image oci:latest bundle >/dev/null
    mkdir -p bundle/rootfs/{bin,proc,sys,dev,tmp,etc,root}
    cp /bin/busybox bundle/rootfs/bin/
    local applet
    for applet in sh ls cat echo sleep id hostname uname ps mount ip ifconfig nproc head tr wc true false \
      kill env grep test date top dd free df; do
      ln -sf busybox "bundle/rootfs/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >bundle/rootfs/etc/passwd
    echo 'root:x:0:' >bundle/rootfs/etc/group
    umoci repack --image oci:latest bundle >/dev/null
    umoci config --image oci:latest --config.cmd /bin/sh --config.env PATH=/bin >/dev/null
    tar -C oci -cf busybox-oci.tar .
  ) || lab_die "building the busybox image failed"
  ctr images import --base-name localhost/busybox "$image/busybox-oci.tar" >/dev/null ||
    lab_die "ctr images import failed"
}

# The pod infrastructure image for CRI pods: a static pause built here, in containerd's k8s.io
# namespace with busybox beside it.
lab_import_cri_images() {
  local image=$LAB/pause-image here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  mkdir -p "$image"
  (
    cd "$image"
    gcc -O2 -static -o pause "$here/cri/pause.c"
    umoci init --layout oci >/dev/null
    umoci new --image oci:latest
    umoci unpack --rootless --image oci:latest bundle >/dev/null
    cp pause bundle/rootfs/pause
    umoci repack --image oci:latest bundle >/dev/null
    umoci config --image oci:latest --config.entrypoint /pause >/dev/null
    tar -C oci -cf pause-oci.tar .
  ) || lab_die "building the pause image failed"
  ctr -n k8s.io images import --base-name localhost/pause "$image/pause-oci.tar" >/dev/null &&
    ctr -n k8s.io images import --base-name localhost/busybox "$LAB/image/busybox-oci.tar" >/dev/null ||
    lab_die "importing the CRI images failed"
}

# Processes whose command line mentions this lab (QEMU, virtiofsd and shims all carry its paths
# or its sandbox ids in their arguments); only these are ever killed.
lab_processes() {
  local pid
  for pid in $(pgrep -f -- "${1:-$LAB}" 2>/dev/null); do
    [[ $pid != "$$" && $pid != "$BASHPID" ]] && echo "$pid"
  done
}

# The shim of task ID (its command line has "-id ID"), if it runs.
# (The serving shim is the binary itself, re-executed: its name is the build's or the installed one.)
lab_shim_pid() { pgrep -f -- "containerd-shim-kata[-a-z0-9]* .*-id $1( |$)" | head -1; }

# ctr bounded in time: a shim that never answers must not stall the cleanup (and with it ctest,
# which waits for every process holding the test's output) until CI's limit.
lab_ctr() { timeout -k 2 "${LAB_CTR_TIMEOUT:-30}" ctr "$@"; }

lab_stop() {
  trap - EXIT
  [[ -n ${LAB:-} && -d $LAB ]] || return 0
  local id ns ids=()
  if [[ -n ${LAB_CONTAINERD_PID:-} ]] && kill -0 "$LAB_CONTAINERD_PID" 2>/dev/null; then
    for ns in $(lab_ctr namespaces ls -q 2>/dev/null); do
      ids+=($(lab_ctr -n "$ns" containers ls -q 2>/dev/null))
      for id in $(lab_ctr -n "$ns" tasks ls -q 2>/dev/null); do lab_ctr -n "$ns" tasks kill -s KILL "$id" >/dev/null 2>&1; done
      for id in $(lab_ctr -n "$ns" tasks ls -q 2>/dev/null); do lab_ctr -n "$ns" tasks delete -f "$id" >/dev/null 2>&1; done
      for id in $(lab_ctr -n "$ns" containers ls -q 2>/dev/null); do lab_ctr -n "$ns" containers delete "$id" >/dev/null 2>&1; done
    done
    kill "$LAB_CONTAINERD_PID" 2>/dev/null
    wait "$LAB_CONTAINERD_PID" 2>/dev/null
  fi
  # What a failed test may have stranded: shims (their command line names this lab) and the VMs
  # and daemons of this lab's sandboxes.
  local pids
  pids=$(lab_processes)
  for id in "${ids[@]}"; do pids+=" $(pgrep -f -- "(sandbox-$id( |,|$)|/run/kata/$id/)")"; done
  [[ -n ${pids// /} ]] && kill -KILL $pids 2>/dev/null
  # Host links a case created (a CNI bridge), registered in LAB_LINKS.
  local link
  for link in "${LAB_LINKS[@]}"; do ip link del "$link" 2>/dev/null; done
  LAB_LINKS=()
  local mount
  grep -o " $LAB[^ ]*" /proc/self/mounts | sort -r | while read -r mount; do umount -l "$mount"; done
  rm -rf --one-file-system "$LAB"
  LAB=
}

# Fails (naming what is left) if anything of sandbox ID outlives it: a process (shim, QEMU,
# virtiofsd), a state or shared directory, a mount.
lab_assert_gone() {
  local id=$1 left=() pid
  for pid in $(pgrep -f -- "(sandbox-$id( |,|$)|/run/kata/$id/|-id $id( |$))"); do
    left+=("process $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-120)")
  done
  local dir
  for dir in "/run/kata/$id" "/run/kata-containers/shared/sandboxes/$id" "/run/vc/vm/$id"; do
    [[ -e $dir ]] && left+=("directory $dir")
  done
  grep -q -- "/$id[/ ]" /proc/self/mounts && left+=("mounts: $(grep -- "/$id[/ ]" /proc/self/mounts | cut -d' ' -f2 | tr '\n' ' ')")
  ((${#left[@]} == 0)) && return 0
  printf 'lab: sandbox %s left behind: %s\n' "$id" "${left[@]}" >&2
  return 1
}

# The guest kernel's release, read from the vmlinux the lab boots.
lab_guest_kernel_release() {
  local kernel=${LAB_KERNEL:-$(sed -n 's/^kernel *= *"\(.*\)"/\1/p' "$LAB/kata/configuration.toml" | head -1)}
  grep -a -o -m1 'Linux version [^ ]*' "$kernel" | cut -d' ' -f3
}
