# Code generation for the wire protocols (containerd shim API, events, Kata agent).
#
# kata_protobuf_generate(TARGET <target> PROTOS <file>... [TTRPC] [ROOT <dir>])
#
#   Compiles each .proto (a path relative to ROOT, which defaults to src/protocols/proto) with
#   protoc --cpp_out and adds <name>.pb.cc to TARGET. The generated headers are included by their
#   import path, e.g. #include "containerd/task/v2/shim.pb.h" or "kata/agent.pb.h".
#
#   TTRPC additionally runs our ttRPC stub generator (executable target protoc-gen-kata-ttrpc,
#   from src/ttrpc/codegen/) on every listed file that declares a service, adding
#   <name>.ttrpc.pb.cc and making TARGET link kata_ttrpc.
#
#   A file's messages are generated once per build tree: when another target already generated
#   them, TARGET links that target instead, so a stub library can sit on top of a message-only
#   one without duplicate symbols.
#
#   Imports always resolve against src/protocols/proto first, which carries lite builds of the
#   google/protobuf well-known types (see google/protobuf/any.proto there). All generated code
#   uses the lite runtime, linked by plain library name (protobuf-lite), never libprotobuf: a
#   host link takes libprotobuf-lite.so, a -static one (the guest agent, KATA_STATIC) takes
#   Debian's libprotobuf-lite.a, which the imported target protobuf::libprotobuf-lite (a full
#   path to the .so) would not allow.

set(KATA_PROTO_ROOT "${PROJECT_SOURCE_DIR}/src/protocols/proto")

if(TARGET protobuf::protoc)
  set(KATA_PROTOC "$<TARGET_FILE:protobuf::protoc>")
elseif(Protobuf_PROTOC_EXECUTABLE)
  set(KATA_PROTOC "${Protobuf_PROTOC_EXECUTABLE}")
else()
  message(FATAL_ERROR "protoc not found: install protobuf-compiler")
endif()

function(kata_protobuf_generate)
  cmake_parse_arguments(ARG "TTRPC" "TARGET;ROOT" "PROTOS" ${ARGN})
  if(NOT ARG_TARGET OR NOT ARG_PROTOS)
    message(FATAL_ERROR "kata_protobuf_generate needs TARGET and PROTOS")
  endif()
  if(NOT ARG_ROOT)
    set(ARG_ROOT "${KATA_PROTO_ROOT}")
  endif()
  # One output tree per proto root, so generated paths mirror import paths.
  if(ARG_ROOT STREQUAL KATA_PROTO_ROOT)
    set(out_dir "${PROJECT_BINARY_DIR}/generated/protocols")
  else()
    set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/generated/protocols")
  endif()
  file(MAKE_DIRECTORY "${out_dir}")

  set(import_dirs "-I${ARG_ROOT}")
  if(NOT ARG_ROOT STREQUAL KATA_PROTO_ROOT)
    list(APPEND import_dirs "-I${KATA_PROTO_ROOT}")
  endif()

  target_include_directories(${ARG_TARGET} SYSTEM PUBLIC "${out_dir}")
  target_link_libraries(${ARG_TARGET} PUBLIC protobuf-lite Threads::Threads)

  foreach(proto IN LISTS ARG_PROTOS)
    set(source "${ARG_ROOT}/${proto}")
    if(NOT EXISTS "${source}")
      message(FATAL_ERROR "kata_protobuf_generate(${ARG_TARGET}): ${source} does not exist")
    endif()
    string(REGEX REPLACE "\\.proto$" "" stem "${proto}")

    get_property(owner GLOBAL PROPERTY "KATA_PROTO_OWNER:${source}")
    if(NOT owner)
      set(outputs "${out_dir}/${stem}.pb.cc" "${out_dir}/${stem}.pb.h")
      add_custom_command(
        OUTPUT ${outputs}
        COMMAND "${KATA_PROTOC}" ${import_dirs} "--cpp_out=${out_dir}"
                "--dependency_out=${out_dir}/${stem}.pb.d" "${source}"
        DEPENDS "${source}"
        DEPFILE "${out_dir}/${stem}.pb.d"
        COMMENT "protoc ${proto}"
        VERBATIM)
      target_sources(${ARG_TARGET} PRIVATE ${outputs})
      set_property(GLOBAL PROPERTY "KATA_PROTO_OWNER:${source}" ${ARG_TARGET})
    elseif(NOT owner STREQUAL ARG_TARGET)
      target_link_libraries(${ARG_TARGET} PUBLIC ${owner})
    endif()

    if(ARG_TTRPC)
      # Only files declaring a service get stubs; the plugin writes nothing for the others, and
      # CMake must know the outputs before protoc ever runs.
      file(STRINGS "${source}" services REGEX "^[ \t]*service[ \t]")
      if(services)
        set(stubs "${out_dir}/${stem}.ttrpc.pb.cc" "${out_dir}/${stem}.ttrpc.pb.h")
        add_custom_command(
          OUTPUT ${stubs}
          COMMAND "${KATA_PROTOC}" ${import_dirs}
                  "--plugin=protoc-gen-kata-ttrpc=$<TARGET_FILE:protoc-gen-kata-ttrpc>"
                  "--kata-ttrpc_out=${out_dir}"
                  "--dependency_out=${out_dir}/${stem}.ttrpc.pb.d" "${source}"
          DEPENDS "${source}" protoc-gen-kata-ttrpc
          DEPFILE "${out_dir}/${stem}.ttrpc.pb.d"
          COMMENT "protoc-gen-kata-ttrpc ${proto}"
          VERBATIM)
        target_sources(${ARG_TARGET} PRIVATE ${stubs})
      endif()
    endif()
  endforeach()

  if(ARG_TTRPC)
    target_link_libraries(${ARG_TARGET} PUBLIC kata_ttrpc)
  endif()
endfunction()
