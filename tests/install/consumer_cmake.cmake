# install_cmake_consumer: configure, build and run consumer_cmake/ against the
# installed package only (find_package(strata REQUIRED CONFIG)).
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

consumer_configure_args(_args "${SOURCE_DIR}" "${WORK_DIR}"
  "-DSTRATA_EXPECTED_PREFIX=${PREFIX}"
  "-DSTRATA_EXPECTED_VERSION=${VERSION}"
  "-DSTRATA_CONSUMER_SANITIZED=${SANITIZED}")
run(configure COMMAND "${CMAKE_COMMAND}" ${_args})

set(_build "${CMAKE_COMMAND}" --build "${WORK_DIR}")
if(CONFIG)
  list(APPEND _build --config "${CONFIG}")
endif()
run(build COMMAND ${_build})

foreach(_exe static_consumer_c static_consumer_cxx)
  run(${_exe} COMMAND "${WORK_DIR}/bin/${_exe}")
endforeach()
# The override executables find libstrata.so through the build RPATH CMake
# gives them; they check that it is the one in the install prefix.
foreach(_exe override_consumer_c override_consumer_cxx)
  run(${_exe} COMMAND "${WORK_DIR}/bin/${_exe}" "${INSTALLED_LIBDIR}")
endforeach()
message(STATUS "CMake consumer OK")
