/* strata — the expected-leak registry and the leak report (docs/leaks.md).
 *
 * A leak is a block still live when the report is taken (at shutdown: never
 * freed), as FastMM counts them, minus the blocks registered as expected:
 * by address, by size and count, or (C++) by class and count.  The report
 * groups the rest by size, then by what each block is — the class of a C++
 * object with a vtable, proven from the block's first word before it is
 * believed, or "unknown" — and shows each block's first bytes.  With call
 * stacks on it also shows where each leak was allocated, identical leaks
 * (same size class, same stack) folded into one entry with a count.
 *
 * All of it is exported from libstrata.so and libstrata.a alike.  The
 * registry's memory and the report's come from the OS (mmap), never from a
 * heap of strata: neither ever appears as a leak, nor changes the heap it
 * describes. */
#ifndef STRATA_LEAKS_H
#define STRATA_LEAKS_H

#include <stddef.h>

#include <strata/strata.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The registry ----------------------------------------------------------
 * Thread-safe, no fixed capacity.  Each call returns 1 if it did what it
 * says, 0 if not (a null pointer; a pointer already registered, or not
 * registered when unregistering; a count of 0; out of memory). */
STRATA_API int strata_register_expected_leak(const void* p) STRATA_NOEXCEPT;
STRATA_API int strata_unregister_expected_leak(const void* p) STRATA_NOEXCEPT;
/* `count` blocks of `size` bytes (a block whose usable size is what
 * strata gives for a request of `size`) are expected.  Unregistering takes
 * back at most what was registered for that size (0 if nothing was). */
STRATA_API int strata_register_expected_leak_size(size_t size, size_t count) STRATA_NOEXCEPT;
STRATA_API int strata_unregister_expected_leak_size(size_t size, size_t count) STRATA_NOEXCEPT;
/* `count` objects of the C++ class whose mangled name (std::type_info::name,
 * "7Session", "N3app6WidgetE") is `type_name` are expected; matched
 * against the class the report proves from a block's vtable.  C++:
 * strata::register_expected_leak<T>(count) in <strata/leaks.hpp>. */
STRATA_API int strata_register_expected_leak_class(const char* type_name, size_t count) STRATA_NOEXCEPT;
STRATA_API int strata_unregister_expected_leak_class(const char* type_name, size_t count) STRATA_NOEXCEPT;

/* ---- The report ------------------------------------------------------------ */

typedef enum strata_leak_format {
  STRATA_LEAKS_TEXT = 0, /* FastMM's summary by size and class, then an entry per leak (or fold) */
  STRATA_LEAKS_JSON = 1  /* the same as JSON (docs/leaks.md: "kind": "leaks", schema 1) */
} strata_leak_format;

/* Writes the leak report of `pool` (NULL: the process heap) to fd: the live
 * blocks that are not expected, at this moment (a snapshot: other threads
 * may be allocating).  Returns the number of unexpected leaks found, or -1
 * if the report could not be made or written. */
STRATA_API long strata_write_leak_report(strata_pool_t* pool, int fd, strata_leak_format format) STRATA_NOEXCEPT;
/* The same to a file (created or truncated, mode 0644, never through a
 * symbolic link); JSON when the name ends in ".json". */
STRATA_API long strata_write_leak_report_file(strata_pool_t* pool, const char* path) STRATA_NOEXCEPT;
/* The number of unexpected leaks of `pool` now, and their bytes (may be NULL). */
STRATA_API long strata_count_leaks(strata_pool_t* pool, size_t* bytes) STRATA_NOEXCEPT;

/* The report at shutdown (FastMM's ReportMemoryLeaksOnShutdown): when on,
 * the process heap's leak report is written at exit — or, for the copy of
 * strata inside a module (strata::module_heap), when that module is
 * unloaded, naming it — to stderr, or to the file STRATA_LEAK_REPORT names
 * (%p: the process id; JSON when it ends in ".json"), and only when there is
 * a leak.  Also switched on by STRATA_REPORT_LEAKS=1.  Returns the previous
 * setting. */
STRATA_API int strata_report_memory_leaks_on_shutdown(int on) STRATA_NOEXCEPT;

/* ---- Call stacks -----------------------------------------------------------
 * When on, every allocation of the process heap and of the pools records the
 * stack that made it (libunwind, loaded when stacks are first switched on;
 * the report symbolises with elfutils' libdw, loaded when a report with
 * stacks is written, and falls back to module + offset).  It costs the
 * capture (about a microsecond an allocation) and the thread caches (an
 * allocation takes the heap's slow path), nothing when off.  Switched on by
 * STRATA_LEAK_STACKS=1 at start-up, or here: from then on for new
 * allocations in every thread.  Returns 1 if stacks are on afterwards, 0 if
 * not (libunwind could not be loaded). */
STRATA_API int strata_leak_stacks(int on) STRATA_NOEXCEPT;
/* VLD's VLDDisable / VLDEnable: the calling thread's allocations are not
 * tracked (no stack recorded) until it enables tracking again.  Nestable:
 * each disable needs an enable. */
STRATA_API void strata_leak_tracking_disable(void) STRATA_NOEXCEPT;
STRATA_API void strata_leak_tracking_enable(void) STRATA_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* STRATA_LEAKS_H */
