#!/bin/bash
# Runs the ttRPC benchmark: plain unix-socket echo (the floor), C++ ttRPC and Go ttRPC
# (containerd/ttrpc 1.1.1 from Debian's golang-github-containerd-ttrpc-dev, GOPATH mode, offline),
# all in this one run, and prints one table.
#
#   bench/ttrpc/run.sh <build-dir>        e.g. bench/ttrpc/run.sh build
#
# Environment: CALLS_SMALL (default 20000), CALLS_PARALLEL (100000), CALLS_LARGE (300).
set -euo pipefail

build=$(realpath "${1:?usage: run.sh <build-dir>}")
here=$(cd "$(dirname "$0")" && pwd)
bench="$build/bench/ttrpc/ttrpc_bench"
[[ -x $bench ]] || { echo "build ttrpc_bench first: cmake --build $build --target ttrpc_bench" >&2; exit 1; }

small=${CALLS_SMALL:-20000}
parallel=${CALLS_PARALLEL:-100000}
large=${CALLS_LARGE:-300}
work=$(mktemp -d /tmp/kata-bench-ttrpc-XXXXXX)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The Go peer, built offline in GOPATH mode.
mkdir -p "$work/go/src/kata-bench"
ln -s "$here/../go/ttrpcbench" "$work/go/src/kata-bench/ttrpcbench"
GOPATH="$work/go:/usr/share/gocode" GO111MODULE=off GOFLAGS=-mod=mod GOCACHE="$work/go/cache" \
  go build -o "$work/ttrpcbench-go" kata-bench/ttrpcbench 2>"$work/go-build.log" ||
  { cat "$work/go-build.log" >&2; exit 1; }

start_server() {  # <pid var> <socket> <command...>
  local socket=$1; shift
  "$@" >/dev/null 2>&1 &
  servers+=($!)
  for _ in $(seq 100); do [[ -S $socket ]] && break; sleep 0.05; done
  last_server=$!
}

server_memory() {  # <pid> -> "RSS PSS" in kB
  awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r, p}' "/proc/$1/smaps_rollup"
}

printf '%-26s %10s %10s %10s %11s %11s %11s %11s\n' "case" "p50 µs" "p99 µs" "calls/s" \
  "client RSS" "client PSS" "server RSS" "server PSS"
row() {  # <label> <server pid> <client output>
  read -r p50 p99 rate crss cpss <<<"$3"
  read -r srss spss <<<"$(server_memory "$2")"
  printf '%-26s %10s %10s %10s %8s kB %8s kB %8s kB %8s kB\n' "$1" "$p50" "$p99" "$rate" "$crss" "$cpss" "$srss" "$spss"
}

start_server "$work/echo.sock" "$bench" echo-server "$work/echo.sock"; echo_pid=$last_server
# The floor again with the send buffer kata::ttrpc asks for on unix sockets (src/ttrpc/transport.cpp).
sndbuf=$((2 * 1024 * 1024))
start_server "$work/echo-buf.sock" "$bench" echo-server "$work/echo-buf.sock" "$sndbuf"; echo_buf_pid=$last_server
start_server "$work/cpp.sock" "$bench" server "$work/cpp.sock"; cpp_pid=$last_server
start_server "$work/go.sock" "$work/ttrpcbench-go" server "$work/go.sock"; go_pid=$last_server
# The same C++ server with glibc told to keep freed memory: under a VM, faulting fresh pages costs
# more than copying, so this row shows whether the library still asks for fresh memory per call.
keep="glibc.malloc.trim_threshold=67108864:glibc.malloc.mmap_threshold=33554432"
start_server "$work/keep.sock" env GLIBC_TUNABLES=$keep "$bench" server "$work/keep.sock"; keep_pid=$last_server

row "floor 64 B x1" "$echo_pid" "$("$bench" echo-client "$work/echo.sock" 64 "$small")"
row "C++ ttrpc 64 B x1" "$cpp_pid" "$("$bench" client "$work/cpp.sock" 64 1 "$small")"
row "Go ttrpc 64 B x1" "$go_pid" "$("$work/ttrpcbench-go" client "$work/go.sock" 64 1 "$small")"
row "C++ ttrpc 64 B x64" "$cpp_pid" "$("$bench" client "$work/cpp.sock" 64 64 "$parallel")"
row "Go ttrpc 64 B x64" "$go_pid" "$("$work/ttrpcbench-go" client "$work/go.sock" 64 64 "$parallel")"
row "floor 1 MiB x1" "$echo_pid" "$("$bench" echo-client "$work/echo.sock" 1048576 "$large")"
row "floor 1 MiB x1 2M sndbuf" "$echo_buf_pid" "$("$bench" echo-client "$work/echo-buf.sock" 1048576 "$large" "$sndbuf")"
row "C++ ttrpc 1 MiB x1" "$cpp_pid" "$("$bench" client "$work/cpp.sock" 1048576 1 "$large")"
row "C++ 1 MiB x1 malloc-keep" "$keep_pid" "$(GLIBC_TUNABLES=$keep "$bench" client "$work/keep.sock" 1048576 1 "$large")"
row "Go ttrpc 1 MiB x1" "$go_pid" "$("$work/ttrpcbench-go" client "$work/go.sock" 1048576 1 "$large")"
