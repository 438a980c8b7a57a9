// kata-shim-ctl-qemu: runs an OCI bundle through the qemu variant's runtime without containerd.
#include "kata/shim/ctl.hpp"
#include "variant.hpp"

int main(int argc, char** argv) { return kata::shim::run_ctl<kata::variants::qemu::Factory>(argc, argv); }
