# Small helpers so that each folder's CMakeLists.txt reads as a list of libraries, binaries
# and tests with their dependencies (the architecture, in one place per folder).

# grail_cc_library(NAME SRCS ... [DEPS ...] [TORCH] [TORCH_PCH])
#   TORCH links LibTorch; TORCH_PCH also precompiles <torch/torch.h> for the target, which
#   pays off from about three torch translation units on.
function(grail_cc_library NAME)
  cmake_parse_arguments(ARG "TORCH;TORCH_PCH" "" "SRCS;DEPS" ${ARGN})
  add_library(${NAME} STATIC ${ARG_SRCS})
  target_include_directories(${NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${NAME} PUBLIC ${ARG_DEPS})
  _grail_torch(${NAME} "${ARG_TORCH}" "${ARG_TORCH_PCH}")
endfunction()

# grail_cc_binary(NAME OUTPUT exe-name SRCS ... [DEPS ...] [TORCH])
function(grail_cc_binary NAME)
  cmake_parse_arguments(ARG "TORCH;TORCH_PCH" "OUTPUT" "SRCS;DEPS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS})
  if(ARG_OUTPUT)
    set_target_properties(${NAME} PROPERTIES OUTPUT_NAME ${ARG_OUTPUT})
  endif()
  _grail_torch(${NAME} "${ARG_TORCH}" "${ARG_TORCH_PCH}")
endfunction()

# grail_cc_test(NAME SRCS ... [DEPS ...] [LABELS ...] [TORCH] [TIMEOUT s])
function(grail_cc_test NAME)
  cmake_parse_arguments(ARG "TORCH;TORCH_PCH" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  set_target_properties(${NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  _grail_torch(${NAME} "${ARG_TORCH}" "${ARG_TORCH_PCH}")
  add_test(NAME ${NAME} COMMAND ${NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${NAME} PROPERTIES
    LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "GRAIL_BIN_DIR=${PROJECT_BINARY_DIR}/bin;GRAIL_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()

function(_grail_torch NAME USE_TORCH USE_PCH)
  if(USE_TORCH OR USE_PCH)
    target_link_libraries(${NAME} PUBLIC ${TORCH_LIBRARIES})
  endif()
  if(USE_PCH)
    target_precompile_headers(${NAME} PRIVATE <torch/torch.h>)
  endif()
endfunction()
