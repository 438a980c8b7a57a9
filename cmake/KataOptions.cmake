# Build switches. Everything here is a plain CMake option so `make` (the thin top-level Makefile)
# and a hand-run `cmake -S . -B build -D...` behave the same.

option(KATA_STATIC "Link every binary fully statically (glibc; Debian has no musl libstdc++)" OFF)
option(KATA_STATIC_PROGRAMS "Link the installed programs (shims, kata-shim-ctl, kata-ctl) statically" ON)
option(KATA_BUILD_TESTS "Build unit, integration and conformance tests" ON)
option(KATA_BUILD_BENCH "Build benchmarks under bench/" ON)
option(KATA_BUILD_GUEST "Build the guest agent and image tooling under guest/" ON)
option(KATA_WERROR "Treat compiler warnings as errors" OFF)
set(KATA_SANITIZE "" CACHE STRING "Comma-separated sanitizers for test builds (address,undefined)")

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE OFF)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

# ccache: the 2-core machines we build on make recompiles expensive; a warm cache turns a
# full rebuild of unchanged sources into seconds.
find_program(KATA_CCACHE ccache)
if(KATA_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER "${KATA_CCACHE}")
  set(CMAKE_CXX_COMPILER_LAUNCHER "${KATA_CCACHE}")
endif()

add_library(kata_build_flags INTERFACE)
target_compile_options(kata_build_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor -Wno-missing-field-initializers
  # GCC 12 flags Asio's coroutine frame allocator (sized operator delete on recycled memory) as a
  # mismatch; it is a known false positive in Boost 1.74's awaitable_frame_base.
  $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>
  $<$<BOOL:${KATA_WERROR}>:-Werror>)
# Asio: we use C++20 coroutines and no deprecated interfaces; keep io_context single-threaded
# friendly but thread-safe where documented.
target_compile_definitions(kata_build_flags INTERFACE
  BOOST_ASIO_NO_DEPRECATED
  BOOST_ASIO_DISABLE_BOOST_COROUTINE
  SPDLOG_FMT_EXTERNAL)

if(KATA_SANITIZE)
  string(REPLACE "," ";" _kata_sanitizers "${KATA_SANITIZE}")
  foreach(_s IN LISTS _kata_sanitizers)
    target_compile_options(kata_build_flags INTERFACE -fsanitize=${_s} -fno-omit-frame-pointer)
    target_link_options(kata_build_flags INTERFACE -fsanitize=${_s})
  endforeach()
endif()

if(KATA_STATIC)
  # Static glibc: getpwnam/getaddrinfo (NSS) are never called by the shim or the agent.
  target_link_options(kata_build_flags INTERFACE -static -pthread)
  set(CMAKE_FIND_LIBRARY_SUFFIXES ".a")
endif()

# kata_static_program(target): what `make install` ships is a static binary, as upstream's, while
# tests and benchmarks stay dynamic (faster links). For the shim it is also a speed and memory
# matter: the dynamic loader's relocations of libstdc++ and protobuf-lite were most of `start`'s
# CPU time, and every shim mapped their pages privately anyway (one shim per pod). Libraries
# reach these links by plain name (protobuf-lite, nettle, nl-route-3), so -static takes their
# Debian archives. Sanitizer builds cannot link statically.
function(kata_static_program target)
  if(KATA_STATIC_PROGRAMS AND NOT KATA_STATIC AND KATA_SANITIZE STREQUAL "")
    target_link_options(${target} PRIVATE -static -pthread)
  endif()
endfunction()
