// strata — thread-local blocks (strata_thread_local_*): per-thread state a
// module can keep without a pthread key, a __thread pointer or a C++
// thread_local, none of which survives the module's unload cleanly.
//
// A handle is a slot of the process heap (allocated from its metadata; the
// fast path relies on it being the process heap's); a
// thread's block for handle i is entry i of its cache's tl_pages.  The block
// itself is an ordinary block of the heap, zero-filled, made on the thread's
// first get.  It goes when its thread exits (on_thread_exit, before the
// cache is flushed), when the handle is destroyed, or when the heap is
// released, whichever comes first; its finalizer, if any, runs then.
// Layer: beside the thread caches (calls the fast paths to allocate and free).
#pragma once
#include <cstddef>
#include <cstdint>

#include "heap.hpp"

namespace strata::detail {

using ThreadLocalFn = void (*)(void* block, void* ctx);

struct ThreadLocalSlot {
  Heap* heap;
  std::uint32_t index;     // entry index in every cache's tl_pages
  bool live;               // false once destroyed (the slot waits on the free list)
  std::size_t size;        // bytes of each thread's block (at least 1)
  ThreadLocalFn init;      // after the block is made and zero-filled, or null
  ThreadLocalFn fini;      // before the block is freed, or null
  void* ctx;
  ThreadLocalSlot* next_free;
};

ThreadLocalSlot* thread_local_create(Heap* h, std::size_t size, ThreadLocalFn init, ThreadLocalFn fini,
                                     void* ctx) noexcept;
void thread_local_destroy(ThreadLocalSlot* s) noexcept;
STRATA_SLOW_PATH void* thread_local_get_slow(ThreadLocalSlot* s) noexcept;
// The calling thread's block: a TLS load, two dependent loads and two tests
// when it exists.  Handles belong to the process heap, whose cache is
// t_cache: g_empty_cache (a thread without one) has no pages, so no test for
// it is needed.
STRATA_FAST_PATH void* thread_local_get(ThreadLocalSlot* s) noexcept {
  ThreadCache* tc = t_cache;
  if (void** page = tc->tl_pages[s->index / kThreadLocalPerPage]; STRATA_LIKELY(page != nullptr))
    if (void* b = page[s->index % kThreadLocalPerPage]; STRATA_LIKELY(b != nullptr)) return b;
  return thread_local_get_slow(s);
}
// Thread exit: finalises and frees every thread-local block of tc.
void thread_local_release_thread(ThreadCache* tc) noexcept;
// fork's child: frees tc's blocks (tc is the cache of a thread that did not
// survive the fork) without their finalizers, whose threads are gone.
void thread_local_drop_thread(ThreadCache* tc) noexcept;
// Before a release of h: runs the finalizer of every thread's block of every
// handle of h (the blocks themselves go with the heap's memory).
void thread_local_finalize_heap(Heap* h) noexcept;

}  // namespace strata::detail
