# grail_proto_library(NAME PROTOS a.proto b.proto [DEPS other_proto_lib] [GRPC])
# Generates C++ (and gRPC stubs with GRPC) into the build tree under the same relative path.
function(grail_proto_library NAME)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS;DEPS" ${ARGN})
  set(srcs)
  foreach(proto ${ARG_PROTOS})
    get_filename_component(abs ${proto} ABSOLUTE)
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${abs})
    string(REGEX REPLACE "\\.proto$" "" stem ${rel})
    set(outs ${PROJECT_BINARY_DIR}/${stem}.pb.cc ${PROJECT_BINARY_DIR}/${stem}.pb.h)
    set(args --cpp_out=${PROJECT_BINARY_DIR})
    if(ARG_GRPC)
      list(APPEND outs ${PROJECT_BINARY_DIR}/${stem}.grpc.pb.cc ${PROJECT_BINARY_DIR}/${stem}.grpc.pb.h)
      list(APPEND args --grpc_out=${PROJECT_BINARY_DIR}
                       --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    endif()
    add_custom_command(
      OUTPUT ${outs}
      COMMAND protobuf::protoc -I ${PROJECT_SOURCE_DIR} ${args} ${abs}
      DEPENDS ${abs} protobuf::protoc
      COMMENT "protoc ${rel}")
    list(APPEND srcs ${outs})
  endforeach()
  add_library(${NAME} STATIC ${srcs})
  target_include_directories(${NAME} PUBLIC ${PROJECT_BINARY_DIR})
  target_link_libraries(${NAME} PUBLIC protobuf::libprotobuf ${ARG_DEPS})
  if(ARG_GRPC)
    target_link_libraries(${NAME} PUBLIC gRPC::grpc++)
  endif()
endfunction()
