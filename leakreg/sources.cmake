# leakreg: the expected-leak registry and the leak report (docs/leaks.md).
# Compiled into the allocator's objects (mm/CMakeLists.txt), so that
# libstrata.so and libstrata.a both export it; a layer above the core's
# public API.  libunwind and libdw are loaded with dlopen, never linked;
# building needs only libdw's headers (libdw-dev).
set(STRATA_LEAKREG_DIR ${CMAKE_CURRENT_LIST_DIR})
set(STRATA_LEAKREG_SOURCES
  ${STRATA_LEAKREG_DIR}/registry.cpp
  ${STRATA_LEAKREG_DIR}/classify.cpp
  ${STRATA_LEAKREG_DIR}/stacks.cpp
  ${STRATA_LEAKREG_DIR}/leak_report.cpp)
