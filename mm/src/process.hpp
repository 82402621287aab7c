// strata — the life of this copy of strata in its process: initialisation
// (once, on the first thread cache or pool), fork, and one ordered
// finalisation point at process exit or when the module that carries this
// copy is unloaded.
//
// Finalisation order (strata_module_fini, process.cpp, the module's last
// destructor):
//   1. the finalizers registered with process_on_finalize, newest first
//      (exit reports, the leak report);
//   2. a copy in a shared library (not the main program, not libstrata.so)
//      releases every heap it has and its chunk-map leaves, then ignores
//      late errors (STRATA_RELEASE_ON_UNLOAD=0 keeps them);
//   3. the thread-exit key is deleted (waiting for exits in progress),
//      unless this copy is the malloc-replacing libstrata.so, which is never
//      unloaded.  Its fork handlers are unregistered by glibc when the
//      module is unloaded (pthread_atfork records the module).
// Layer: top of the core (calls heap.cpp and thread_cache.cpp).
#pragma once
#include <atomic>
#include <cstdint>

namespace strata::detail {

// Idempotent and cheap once done: seeds the secret, reads the options that
// are fixed at start-up, sizes the medium arenas, links the process heap,
// creates the thread-exit key and installs the fork handlers.
void ensure_process_init() noexcept;
bool process_initialised() noexcept;  // ensure_process_init has finished

// Runs fn(ctx) at finalisation (see above).  False when the table
// (kMaxFinalizers entries, static: no allocation) is full.
bool process_on_finalize(void (*fn)(void*), void* ctx) noexcept;

struct ReleaseReport;
// Releases every heap of this copy (heap_release_all) and, with
// STRATA_VERBOSE, says what it found.
ReleaseReport process_release_all() noexcept;

// Whether this copy may be unloaded (false in libstrata.so, which is linked
// with -z nodelete and marks itself at load).
bool process_unloadable() noexcept;

}  // namespace strata::detail
