# Small helpers so that each module's CMakeLists.txt stays a few lines long.

# Adds every direct child of DIR that has a CMakeLists.txt, in name order. Modules are independent
# directories; adding one never means editing a shared list.
function(kata_add_subdirectories dir)
  file(GLOB _children LIST_DIRECTORIES true "${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*")
  list(SORT _children)
  foreach(_child IN LISTS _children)
    if(IS_DIRECTORY "${_child}" AND EXISTS "${_child}/CMakeLists.txt")
      add_subdirectory("${_child}")
    endif()
  endforeach()
endfunction()

# kata_add_library(<name> SOURCES ... [DEPENDS ...])
# A compiled module library: public headers live in include/kata/<module>/, sources in src/<module>/.
function(kata_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC "${PROJECT_SOURCE_DIR}/include" PRIVATE "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(${name} PUBLIC kata_build_flags ${ARG_DEPENDS})
endfunction()

# kata_add_unit_test(<name> SOURCES ... [DEPENDS ...] [LABELS ...] [TIMEOUT seconds])
# One gtest executable registered with CTest; tests are discovered at run time so each TEST()
# is reported on its own.
function(kata_add_unit_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPENDS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE "${PROJECT_SOURCE_DIR}/include" "${PROJECT_SOURCE_DIR}/src"
                                             "${PROJECT_SOURCE_DIR}/test")
  target_link_libraries(${name} PRIVATE kata_build_flags ${ARG_DEPENDS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()
