# install_deb_setup: `cpack -G DEB` of BUILD_DIR into WORK_DIR, then the
# package unpacked (dpkg-deb -x, no root needed) into ROOT; checks its control
# fields and that it holds what a consumer needs, strata-report included.
# The consumers are then built against ROOT/usr (fixture "strata_deb").
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

file(REMOVE_RECURSE "${WORK_DIR}" "${ROOT}")
file(MAKE_DIRECTORY "${WORK_DIR}" "${ROOT}")
get_filename_component(_cmake_bin "${CMAKE_COMMAND}" DIRECTORY)
find_program(CPACK_COMMAND cpack HINTS "${_cmake_bin}" REQUIRED)
find_program(DPKG_DEB dpkg-deb REQUIRED)
run(cpack COMMAND "${CPACK_COMMAND}" -G DEB -B "${WORK_DIR}" --config "${BUILD_DIR}/CPackConfig.cmake")
file(GLOB _debs "${WORK_DIR}/*.deb")
list(LENGTH _debs _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "expected one .deb in ${WORK_DIR}, found: ${_debs}")
endif()
execute_process(COMMAND "${DPKG_DEB}" --field "${_debs}" Package Version Architecture Depends
                OUTPUT_VARIABLE _fields RESULT_VARIABLE _rc)
message(STATUS "control fields:\n${_fields}")
if(NOT _rc EQUAL 0 OR NOT _fields MATCHES "Package: strata" OR NOT _fields MATCHES "Version: ${VERSION}"
   OR NOT _fields MATCHES "Depends: [^\n]*libc6")
  message(FATAL_ERROR "the package's control fields are not strata ${VERSION} depending on libc6")
endif()
run(unpack COMMAND "${DPKG_DEB}" -x "${_debs}" "${ROOT}")

set(_required
  "${ROOT}/usr/bin/strata-report"
  "${INSTALLED_INCLUDEDIR}/strata/strata.h"
  "${INSTALLED_INCLUDEDIR}/strata/strata.hpp"
  "${INSTALLED_INCLUDEDIR}/strata/state.h"
  "${INSTALLED_LIBDIR}/libstrata.a"
  "${INSTALLED_LIBDIR}/libstrata.so"
  "${INSTALLED_LIBDIR}/libstrata_module_heap.a"
  "${INSTALLED_LIBDIR}/cmake/strata/strataConfig.cmake"
  "${INSTALLED_LIBDIR}/cmake/strata/strataTargets.cmake"
  "${INSTALLED_LIBDIR}/pkgconfig/strata.pc"
  "${INSTALLED_LIBDIR}/pkgconfig/strata-override.pc")
foreach(_f IN LISTS _required)
  if(NOT EXISTS "${_f}")
    message(FATAL_ERROR "the package lacks ${_f}")
  endif()
endforeach()
# The packaged tool runs and says how it is used.
execute_process(COMMAND "${ROOT}/usr/bin/strata-report" --help RESULT_VARIABLE _rc ERROR_VARIABLE _usage)
if(NOT _rc EQUAL 0 OR NOT _usage MATCHES "strata-report diff OLD.json NEW.json")
  message(FATAL_ERROR "the packaged strata-report --help: exit ${_rc}: ${_usage}")
endif()
message(STATUS "package OK: ${_debs}")
