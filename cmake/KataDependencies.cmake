# Every dependency is a Debian package installed by .ci/install-deps; nothing is fetched.
# Where Debian ships no static archive (fmt, spdlog) the header-only form is used, which also
# keeps KATA_STATIC builds possible.

find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)                      # Asio (coroutines) and Hana are header-only
find_package(Protobuf 3.21 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(tomlplusplus 3 REQUIRED)
find_package(range-v3 REQUIRED)            # its package config only accepts exact versions
find_package(CLI11 2 REQUIRED)
find_package(PkgConfig REQUIRED)

# fmt and spdlog header-only: Debian ships only shared objects, and a static shim must not need them.
find_path(KATA_FMT_INCLUDE fmt/format.h REQUIRED)
find_path(KATA_SPDLOG_INCLUDE spdlog/spdlog.h REQUIRED)
add_library(kata_fmt INTERFACE)
target_include_directories(kata_fmt SYSTEM INTERFACE "${KATA_FMT_INCLUDE}")
target_compile_definitions(kata_fmt INTERFACE FMT_HEADER_ONLY)
add_library(kata_spdlog INTERFACE)
target_include_directories(kata_spdlog SYSTEM INTERFACE "${KATA_SPDLOG_INCLUDE}")
target_compile_definitions(kata_spdlog INTERFACE SPDLOG_HEADER_ONLY SPDLOG_FMT_EXTERNAL)
target_link_libraries(kata_spdlog INTERFACE kata_fmt Threads::Threads)

add_library(kata_boost INTERFACE)
target_link_libraries(kata_boost INTERFACE Boost::headers Threads::Threads)

if(KATA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
