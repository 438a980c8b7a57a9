# Install layout, upstream's way (src/runtime-rs/Makefile): the shim goes to <PREFIX>/bin, the
# configuration of the chosen variant to <PREFIX>/share/defaults/kata-containers/runtime-rs/,
# guest assets to <PREFIX>/share/kata-containers/. These paths are compiled into the binary (its
# shipped default configuration) and substituted into config/*.toml.in, so an install under any
# PREFIX is self-consistent without root.

if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX "/usr" CACHE PATH "Install prefix (upstream default /usr)" FORCE)
endif()

set(KATA_HYPERVISOR "qemu" CACHE STRING "Variant whose configuration becomes configuration.toml")
# Not cached: like the directories below it follows PREFIX on every configure (a cached value
# kept the first PREFIX, so a later `make install PREFIX=...` put the shim in /usr/bin).
set(KATA_BINDIR "${CMAKE_INSTALL_PREFIX}/bin")
set(KATA_DEFAULTS_DIR "${CMAKE_INSTALL_PREFIX}/share/defaults/kata-containers/runtime-rs")
set(KATA_DATA_DIR "${CMAKE_INSTALL_PREFIX}/share/kata-containers")
set(KATA_SYSCONF_DIR "/etc/kata-containers/runtime-rs" CACHE PATH "Administrator's configuration directory")

# Host dependencies that belong to the distribution, not to us (Debian 12 locations).
set(KATA_QEMU_PATH "/usr/bin/qemu-system-x86_64" CACHE FILEPATH "QEMU binary")
set(KATA_VIRTIOFSD_PATH "/usr/lib/qemu/virtiofsd" CACHE FILEPATH "virtiofsd (QEMU 7.2 ships the C one here)")
set(KATA_CLH_PATH "/usr/bin/cloud-hypervisor" CACHE FILEPATH "Cloud Hypervisor binary")
set(KATA_FC_PATH "/usr/bin/firecracker" CACHE FILEPATH "Firecracker binary")
set(KATA_FC_JAILER_PATH "/usr/bin/jailer" CACHE FILEPATH "Firecracker jailer binary")

# Guest assets, upstream's names.
set(KATA_KERNEL_PATH "${KATA_DATA_DIR}/vmlinux.container")
set(KATA_INITRD_PATH "${KATA_DATA_DIR}/kata-containers-initrd.img")
set(KATA_IMAGE_PATH "${KATA_DATA_DIR}/kata-containers.img")

execute_process(COMMAND git describe --always --dirty --abbrev=12
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}" OUTPUT_VARIABLE KATA_COMMIT
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT KATA_COMMIT)
  set(KATA_COMMIT "unknown")
endif()

configure_file("${PROJECT_SOURCE_DIR}/cmake/build_info.hpp.in"
               "${PROJECT_BINARY_DIR}/generated/include/kata/build_info.hpp" @ONLY)
add_library(kata_build_info INTERFACE)
target_include_directories(kata_build_info INTERFACE "${PROJECT_BINARY_DIR}/generated/include")
