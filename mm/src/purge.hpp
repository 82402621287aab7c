// strata — the purge: memory nobody reuses soon goes back to the OS without
// the program asking (issue 24).  What runs it:
//   - a small span going empty, a refill or a spill that finds the heap
//     holding more free spans than it keeps (small.cpp: small_purge_hint,
//     small_purge_due), a medium free (medium.cpp: the pool tops' delay);
//   - a thread's exit (thread_cache.cpp: small_purge at once, the parked
//     large block unmapped);
//   - opt-in, a background thread (STRATA_PURGE_THREAD=1) that runs the due
//     purges of every heap of this copy every half delay, for programs that
//     free a burst and then sleep or take only the fast paths.  It is
//     started with the first thread cache, stopped before this copy is
//     released (strata_module_fini) and started again in a fork's child at
//     its next thread cache.
// Layer: top of the core (calls the tiers' purge functions).
#pragma once

namespace strata::detail {

// Runs the purges that are due in every heap of this copy (g_heaps_lock).
void purge_all_due() noexcept;
// Starts the background purge thread if STRATA_PURGE_THREAD asks for it and
// it is not running; no strata lock may be held.
void purge_thread_maybe_start() noexcept;
// Stops and joins it (the copy is being finalised).
void purge_thread_stop() noexcept;
// fork's child: the thread did not survive; its state is reset.
void purge_thread_after_fork_child() noexcept;
// Whether the background thread runs (tests, the report).
bool purge_thread_running() noexcept;

}  // namespace strata::detail
