// strata — a thread's cache of one heap: bins of free small blocks, foreign
// bins, freed medium blocks, the last freed large block, and the spans the
// thread owns.  Thread slots, the TLS pointers and thread exit are in
// thread_cache.cpp.
//
// A cache is owned by its heap (carved from the heap's metadata) and reached
// by its thread through t_cache (process heap) or the heap's slot directory
// (pools).  Only the owning thread writes a cache, except its flush at
// thread exit, at fork (the child flushes the others') and at release.
// Layer: data (included by the tiers); the code is above the tiers.
#pragma once
#include <cstddef>
#include <cstdint>

#include "config.hpp"
#include "size_classes.hpp"

namespace strata::detail {

struct Heap;
struct Span;
struct Block;
struct MediumTier;
struct LargeBlock;

// The end of a bin's list: an address no block has (bit 0 set), so that the
// pop's check of a link (link_plausible, small.hpp) also finds the bin empty.
inline constexpr std::uintptr_t kBinEnd = 1;

// One size class of a thread cache: a list of free blocks from `head` (the
// first block's address, or kBinEnd), linked through Block::link.  `room`
// counts down as blocks are freed into the bin (count == max - room); the
// owning thread alone writes it, a reporter reads it racily (see bin_count).
// room goes below 0 for a while when a refill took a span's whole free list
// (small.cpp, take_locked): up to 2.5 times max, spilled at the next frees.
// A head that is neither kBinEnd nor a plausible address is a link a
// program overwrote (the slow path reports it).
struct CacheBin {
  std::uintptr_t head = kBinEnd;
  std::int32_t room = 0;
  std::int32_t max = 0;
};
// Empties a bin without looking at its blocks (they were given back, or are
// dropped: a forged list, a heap reset).
inline void bin_clear(CacheBin& b) noexcept {
  b.head = kBinEnd;
  b.room = b.max;
}
// Blocks in a bin, as read by another thread for a report: a relaxed snapshot.
__attribute__((no_sanitize("thread"))) inline std::uint32_t bin_count(const CacheBin& b) noexcept {
  std::int32_t n = b.max - *static_cast<const volatile std::int32_t*>(&b.room);
  return n < 0 ? 0 : static_cast<std::uint32_t>(n);
}

// A byte count of a thread cache (its medium blocks, its parked large
// block), as read by another thread for a report: a relaxed snapshot, exact
// when the owner is idle.
__attribute__((no_sanitize("thread"))) inline std::size_t cache_bytes_racy(const std::size_t& bytes) noexcept {
  return *static_cast<const volatile std::size_t*>(&bytes);
}

struct ThreadCache {
  Heap* heap;
  std::uint32_t slot;  // thread slot it belongs to
  ThreadCache* next;   // heap->caches list (meta_lock)
  ThreadCache* prev;
  CacheBin bins[kNumClasses];
  // Medium blocks this thread freed, by medium class.  To the medium tier
  // they are still in use (start bit set); they carry the free cookie.
  CacheBin medium_bins[kNumMediumClasses];
  std::size_t medium_cached_bytes;  // block bytes in medium_bins (<= kMediumCacheBudget)
  MediumTier* medium_arena;  // medium_arena_for(heap) of its thread: only blocks of it are cached
  // Bytes this thread took out of the shared tiers (negative: gave back)
  // that Heap::central_bytes does not count yet (|value| < kCentralAccountSlack).
  std::ptrdiff_t central_pending;
  // The thread's last freed large block (magic kLargeParkedMagic), or null:
  // still in the tier's live list and counted as handed out (large_park).
  // Taken with an atomic exchange by its thread and, for the process heap,
  // by the background purge (large_reclaim_parked): whoever gets it frees
  // or reuses it.
  LargeBlock* parked_large;
  std::size_t parked_large_bytes;  // its mapped bytes (0 when none): a report reads this, never the block
  LargeBlock* parked_seen;         // the background purge's: the block it saw parked on its last call
  // Refills of each small class so far, up to kCacheSlowStartSteps: the
  // first refills take fewer blocks (slow start), so a short process or a
  // thread that allocates a few blocks of a class touches one page of its
  // span, not the whole first batch.
  std::uint8_t refills[kNumClasses];
  // Small blocks this thread freed whose spans it does not own, by class:
  // they go back to their spans in batches (small_return_chain), never to
  // this thread's allocations.
  CacheBin foreign[kNumClasses];
  // Spans this cache owns, by class (guarded by that class's lock): all of
  // them, and those with a free or uncarved block, which refills use first.
  Span* owned[kNumClasses];
  Span* own_partial[kNumClasses];
  // The thread's t_cache (a TLS address, valid while the thread lives) when
  // this is a cache of the process heap, else null: a release of the heap
  // points it back at g_empty_cache.
  ThreadCache** tls_home;
  // ---- kept when a cache is reused for another thread (cache_for clears
  // only what is above): the pages of its thread-local blocks.
  std::uint32_t tl_count;                  // blocks in tl_pages
  void** tl_pages[kThreadLocalPages];      // thread_local.cpp: handle index -> this thread's block
};

extern Heap g_default_heap;
extern ThreadCache g_empty_cache;      // all bins empty, heap == nullptr: forces the slow path
extern __thread ThreadCache* t_cache;  // the process heap's cache of this thread
extern __thread std::uint32_t t_slot;  // this thread's slot + 1, 0 = none yet

// ---- thread_cache.cpp ----
ThreadCache* cache_lookup(Heap* h) noexcept;  // the calling thread's existing cache of h, or null
ThreadCache* cache_for(Heap* h) noexcept;     // the same, created on demand; may be null
// cache_lookup with the process heap's case inline (the TLS pointer).
inline ThreadCache* cache_lookup_inline(Heap* h) noexcept {
  if (h != &g_default_heap) return cache_lookup(h);
  ThreadCache* tc = t_cache;
  return tc == &g_empty_cache ? nullptr : tc;
}
// Gives everything tc holds back to its heap's tiers (blocks, owned spans,
// medium blocks, the parked large block) and settles its byte count.
void cache_flush_all(ThreadCache* tc) noexcept;
// Gives every medium block a thread cache holds back to its arena.
void medium_cache_flush(ThreadCache* tc) noexcept;
// Thread exit: a pthread key whose destructor flushes the exiting thread's
// caches in every heap (thread_cache_init creates it, thread_cache_fini
// deletes it when this copy of strata is unloaded).
bool thread_cache_init() noexcept;
void thread_cache_fini() noexcept;
// fork's child: every cache but the forking thread's is flushed and
// detached, the slot bitmap keeps the forking thread's slot only
// (g_heaps_lock and every heap lock are free again).
void thread_cache_after_fork_child() noexcept;
// Empties every cache of h without giving anything back (h's blocks are
// being dropped): bins, foreign and medium bins, the parked block, owned
// spans, the pending byte count.  No thread may use h meanwhile.
void thread_cache_reset_all(Heap* h) noexcept;
// Detaches every cache of h without flushing it (h is being released, its
// tiers are unmapped); points the process heap's users back at g_empty_cache.
void thread_cache_forget_all(Heap* h) noexcept;

}  // namespace strata::detail
