# install_pkgconfig_consumer: build the consumers with the flags of
# `pkg-config --cflags --libs strata` (static, C and C++) and
# `pkg-config --cflags --libs strata-override` (shared, C and C++), using
# only <prefix>/<libdir>/pkgconfig, and run them.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

if(NOT PKG_CONFIG OR NOT EXISTS "${PKG_CONFIG}")
  message(FATAL_ERROR "pkg-config was not found when strata was configured (scripts/install-deps.sh installs it)")
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(ENV{PKG_CONFIG_PATH} "${INSTALLED_LIBDIR}/pkgconfig")
set(ENV{PKG_CONFIG_LIBDIR} "${INSTALLED_LIBDIR}/pkgconfig")  # nothing from the system
unset(ENV{PKG_CONFIG_SYSROOT_DIR})
unset(ENV{PKG_CONFIG_ALLOW_SYSTEM_CFLAGS})
unset(ENV{PKG_CONFIG_ALLOW_SYSTEM_LIBS})

# query(<out var> <args...>): pkg-config output, stripped; FATAL_ERROR on failure.
function(query OUT)
  execute_process(COMMAND "${PKG_CONFIG}" ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _o ERROR_VARIABLE _e
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc STREQUAL "0")
    message(FATAL_ERROR "pkg-config ${ARGN} failed (exit ${_rc}):\n${_e}")
  endif()
  message(STATUS "pkg-config ${ARGN} -> ${_o}")
  set(${OUT} "${_o}" PARENT_SCOPE)
endfunction()

# same_dir(<what> <dir> <expected>): both name the same directory.
function(same_dir WHAT DIR EXPECTED)
  file(REAL_PATH "${DIR}" _a)
  file(REAL_PATH "${EXPECTED}" _b)
  if(NOT _a STREQUAL _b)
    message(FATAL_ERROR "${WHAT} is ${DIR}, expected ${EXPECTED} (the .pc file must follow the install prefix)")
  endif()
endfunction()

foreach(_pkg strata strata-override)
  query(_ver --modversion ${_pkg})
  if(NOT _ver STREQUAL VERSION)
    message(FATAL_ERROR "pkg-config ${_pkg} has version ${_ver}, expected ${VERSION}")
  endif()
  query(_ignored --validate ${_pkg})
  query(_inc --variable=includedir ${_pkg})
  query(_lib --variable=libdir ${_pkg})
  same_dir("includedir of ${_pkg}.pc" "${_inc}" "${INSTALLED_INCLUDEDIR}")
  same_dir("libdir of ${_pkg}.pc" "${_lib}" "${INSTALLED_LIBDIR}")
endforeach()

query(_static_flags --cflags --libs strata)
query(_override_flags --cflags --libs strata-override)
separate_arguments(_static_flags UNIX_COMMAND "${_static_flags}")
separate_arguments(_override_flags UNIX_COMMAND "${_override_flags}")
separate_arguments(_san UNIX_COMMAND "${SAN_FLAGS}")
set(_defs "")
if(SANITIZED)
  set(_defs -DSTRATA_CONSUMER_SANITIZED=1)
endif()

# The C++ consumers are compiled in the compiler's default language mode
# (gnu++17 for g++ 12), as a plain downstream build would be.
set(_c_opts -std=c99 -O2 -Wall -Wextra -Werror ${_san} ${_defs})
set(_cxx_opts -O2 -Wall -Wextra -Werror ${_san} ${_defs})

run(build-static-c COMMAND "${CC}" ${_c_opts} "${SOURCE_DIR}/static_consumer.c"
    -o "${WORK_DIR}/static_consumer_c" ${_static_flags} -ldl)
run(build-static-cxx COMMAND "${CXX}" ${_cxx_opts} "${SOURCE_DIR}/static_consumer.cpp"
    -o "${WORK_DIR}/static_consumer_cxx" ${_static_flags} -ldl)
run(build-override-c COMMAND "${CC}" ${_c_opts} "${SOURCE_DIR}/override_consumer.c"
    -o "${WORK_DIR}/override_consumer_c" ${_override_flags} -ldl)
run(build-override-cxx COMMAND "${CXX}" ${_cxx_opts} "${SOURCE_DIR}/override_consumer.cpp"
    -o "${WORK_DIR}/override_consumer_cxx" ${_override_flags} -ldl)

run(static_consumer_c COMMAND "${WORK_DIR}/static_consumer_c")
run(static_consumer_cxx COMMAND "${WORK_DIR}/static_consumer_cxx")
# strata-override.pc carries no rpath: run with LD_LIBRARY_PATH, as a user would.
set(ENV{LD_LIBRARY_PATH} "${INSTALLED_LIBDIR}")
run(override_consumer_c COMMAND "${WORK_DIR}/override_consumer_c" "${INSTALLED_LIBDIR}")
run(override_consumer_cxx COMMAND "${WORK_DIR}/override_consumer_cxx" "${INSTALLED_LIBDIR}")
message(STATUS "pkg-config consumer OK")
