# install_share_example: share/example (an executable and two plugins on one
# strata, docs/sharing.md) configured, built and run against the installed
# package only.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
consumer_configure_args(_args "${STRATA_SOURCE_DIR}/share/example" "${WORK_DIR}")
run(configure COMMAND "${CMAKE_COMMAND}" ${_args})
run(build COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}")
run(app COMMAND "${WORK_DIR}/app")
message(STATUS "share example OK")
