# Helpers shared by the install-test driver scripts (cmake -P).
cmake_minimum_required(VERSION 3.19)

# run(<what> COMMAND <cmd...> [WORKING_DIRECTORY <dir>])
# Runs a command, echoes it and its output; FATAL_ERROR on a non-zero exit.
function(run WHAT)
  cmake_parse_arguments(R "" "WORKING_DIRECTORY" "COMMAND" ${ARGN})
  if(NOT R_WORKING_DIRECTORY)
    set(R_WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  list(JOIN R_COMMAND " " _shown)
  message(STATUS "[${WHAT}] ${_shown}")
  execute_process(COMMAND ${R_COMMAND} WORKING_DIRECTORY "${R_WORKING_DIRECTORY}"
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(_out)
    message("${_out}")
  endif()
  if(NOT _rc STREQUAL "0")
    message(FATAL_ERROR "[${WHAT}] FAILED (exit ${_rc}): ${_shown}")
  endif()
endfunction()

# The installed include and library directories.
macro(strata_install_dirs)
  if(IS_ABSOLUTE "${LIBDIR}")
    set(INSTALLED_LIBDIR "${LIBDIR}")
  else()
    set(INSTALLED_LIBDIR "${PREFIX}/${LIBDIR}")
  endif()
  if(IS_ABSOLUTE "${INCLUDEDIR}")
    set(INSTALLED_INCLUDEDIR "${INCLUDEDIR}")
  else()
    set(INSTALLED_INCLUDEDIR "${PREFIX}/${INCLUDEDIR}")
  endif()
endmacro()

foreach(_v PREFIX LIBDIR INCLUDEDIR VERSION)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "install test driver: -D${_v}=... is required")
  endif()
endforeach()
strata_install_dirs()

# The configure arguments of a consumer project in SOURCE against PREFIX,
# built in WORK with the test's compilers, flags, generator and config.
function(consumer_configure_args out source work)
  set(_a -S "${source}" -B "${work}" "-DCMAKE_PREFIX_PATH=${PREFIX}" "-DCMAKE_C_COMPILER=${CC}"
    "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_C_FLAGS=${SAN_FLAGS}" "-DCMAKE_CXX_FLAGS=${SAN_FLAGS}")
  if(GENERATOR)
    list(APPEND _a -G "${GENERATOR}")
  endif()
  if(MAKE_PROGRAM)
    list(APPEND _a "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  if(CONFIG)
    list(APPEND _a "-DCMAKE_BUILD_TYPE=${CONFIG}")
  endif()
  set(${out} ${_a} ${ARGN} PARENT_SCOPE)
endfunction()
