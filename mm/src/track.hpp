// strata — allocation tracking: the one hook the leak report's call stacks
// need from the core (leakreg/stacks.cpp installs it).  While a hook is
// installed no thread cache is created, the process heap's threads are
// pointed at the empty cache, and so every allocation reaches a tier's
// central allocation — small_alloc_slow, medium_alloc, large_alloc — which
// calls the hook with the block.  A free needs no hook: the stack recorded
// for an address is replaced when the address is handed out again.  When
// no hook is installed the cost is one relaxed load in those slow paths;
// the fast paths do not change.
// Layer: bottom (no strata includes but the heap's forward declaration).
#pragma once
#include <atomic>
#include <cstddef>

namespace strata::detail {

struct Heap;
using TrackHook = void (*)(Heap* h, void* p) noexcept;
extern std::atomic<TrackHook> g_track_hook;

inline bool tracking() noexcept { return g_track_hook.load(std::memory_order_relaxed) != nullptr; }
inline void track_alloc(Heap* h, void* p) noexcept {
  if (TrackHook f = g_track_hook.load(std::memory_order_relaxed); f && p) f(h, p);
}
// Installs (or, with null, removes) the hook; with a hook, the calling
// thread's and every other thread's process-heap cache are bypassed from
// their next allocation on (their cached blocks stay cached until the
// thread exits).  Defined in thread_cache.cpp.
void track_install(TrackHook hook) noexcept;

}  // namespace strata::detail
