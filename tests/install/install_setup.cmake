# install_setup: cmake --install BUILD_DIR --prefix PREFIX into a clean
# prefix, then check that everything a consumer needs is there.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

file(REMOVE_RECURSE "${PREFIX}")
set(_cfg "")
if(CONFIG)
  set(_cfg --config "${CONFIG}")
endif()
run(install COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${_cfg})

set(_required
  "${INSTALLED_INCLUDEDIR}/strata/strata.h"
  "${INSTALLED_INCLUDEDIR}/strata/strata.hpp"
  "${INSTALLED_LIBDIR}/libstrata.a"
  "${INSTALLED_LIBDIR}/libstrata.so"
  "${INSTALLED_INCLUDEDIR}/strata/share.h"
  "${INSTALLED_LIBDIR}/libstrata_share.a"
  "${INSTALLED_LIBDIR}/libstrata_share_exe.a"
  "${INSTALLED_LIBDIR}/libstrata_simple_share.a"
  "${INSTALLED_LIBDIR}/cmake/strata/strataConfig.cmake"
  "${INSTALLED_LIBDIR}/cmake/strata/strataConfigVersion.cmake"
  "${INSTALLED_LIBDIR}/cmake/strata/strataTargets.cmake"
  "${INSTALLED_LIBDIR}/pkgconfig/strata.pc"
  "${INSTALLED_LIBDIR}/pkgconfig/strata-override.pc")
set(_missing "")
foreach(_f IN LISTS _required)
  if(NOT EXISTS "${_f}")  # EXISTS follows symlinks: a dangling libstrata.so counts as missing
    list(APPEND _missing "${_f}")
  endif()
endforeach()

file(GLOB_RECURSE _installed LIST_DIRECTORIES false RELATIVE "${PREFIX}" "${PREFIX}/*")
list(SORT _installed)
list(JOIN _installed "\n  " _listing)
message(STATUS "installed files under ${PREFIX}:\n  ${_listing}")

if(_missing)
  list(JOIN _missing "\n  " _m)
  message(FATAL_ERROR "the install is missing:\n  ${_m}")
endif()

# The installed headers are the ones of the source tree.
foreach(_h strata.h strata.hpp)
  file(SHA256 "${INSTALLED_INCLUDEDIR}/strata/${_h}" _a)
  file(SHA256 "${STRATA_SOURCE_DIR}/mm/include/strata/${_h}" _b)
  if(NOT _a STREQUAL _b)
    message(FATAL_ERROR "installed strata/${_h} differs from mm/include/strata/${_h}")
  endif()
endforeach()
message(STATUS "install OK")
