// containerd-shim-kata-v2 for QEMU: containerd's io.containerd.kata.v2 runtime.
#include "kata/shim/shim.hpp"
#include "variant.hpp"

int main(int argc, char** argv) { return kata::shim::run<kata::variants::qemu::Factory>(argc, argv); }
