// shim-ctl: drives a runtime (a RuntimeFactory's TaskRuntime) from an OCI bundle without
// containerd, for development: the same path a shim's Create/Start/Wait/Delete takes, with this
// process playing containerd (stdio FIFOs, signals, the exit status). Upstream has the same tool
// (src/runtime-rs/crates/shim-ctl). A variant builds it with one line:
//
//     int main(int argc, char** argv) { return kata::shim::run_ctl<QemuFactory>(argc, argv); }
//
// usage: kata-shim-ctl-<variant> --bundle DIR [--id ID] [--config FILE] [--namespace NS]
//                               [--rootfs-mount TYPE,SOURCE[,OPTION...]]
//   The bundle holds config.json and a rootfs/ directory, or the rootfs comes as the mount a
//   snapshotter would give (a block device: the devmapper snapshotter's case). The container's
//   stdout and stderr are copied to ours; its stdin is not connected. SIGINT/SIGTERM are
//   forwarded to the container as SIGTERM; a second one kills it. Exits with the container's
//   exit status (128 + signal when it was killed), or 125 when the runtime failed, with the
//   error on stderr. Everything the runtime made on the host is released before exit.
#pragma once

#include "kata/shim/runtime_factory.hpp"

namespace kata::shim {

template <RuntimeFactory Factory>
int run_ctl(int argc, char** argv);

}  // namespace kata::shim

#include "kata/shim/impl/ctl.hpp"
