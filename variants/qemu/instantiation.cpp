// The heavy template of this variant, compiled in one translation unit so that main.cpp (and any
// other user in this binary) does not compile it again.
#include "variant.hpp"

template class kata::runtime::VirtSandbox<kata::variants::qemu::Hypervisor, kata::variants::qemu::AgentTransports>;
