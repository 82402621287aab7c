# install_share_example: share/example (an executable and two plugins on one
# strata, docs/sharing.md) configured, built and run against the installed
# package only.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_args -S "${STRATA_SOURCE_DIR}/share/example" -B "${WORK_DIR}" "-DCMAKE_PREFIX_PATH=${PREFIX}"
  "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_CXX_FLAGS=${SAN_FLAGS}")
if(GENERATOR)
  list(APPEND _args -G "${GENERATOR}")
endif()
if(MAKE_PROGRAM)
  list(APPEND _args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(CONFIG)
  list(APPEND _args "-DCMAKE_BUILD_TYPE=${CONFIG}")
endif()
run(configure COMMAND "${CMAKE_COMMAND}" ${_args})
run(build COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}")
run(app COMMAND "${WORK_DIR}/app")
message(STATUS "share example OK")
