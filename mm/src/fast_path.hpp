// strata — the fast paths, whole: what strata_malloc, strata_free and the
// pool calls do without a lock or a call, and the slow paths they fall to.
//
//   malloc (process_malloc, heap_alloc): size <= kMaxSmallSize and the
//     thread's bin for the class is non-empty -> pop.  (t_cache starts as
//     g_empty_cache, whose bins are empty, so a thread's first call falls to
//     the slow path without a branch on null.)
//   free (heap_free): the chunk map says "small", the span is owned by the
//     thread's cache, the pointer is exactly a carved block start and the
//     block has no free cookie -> push onto the thread's bin; the bin
//     overflowing sends a batch back to the blocks' spans.  A block of another
//     thread's span (or of none's) goes to the thread's foreign bin instead,
//     which returns it to its span in a batch.  When the chunk map says
//     "medium" instead, free_medium (one call, no second lookup) puts a live
//     block of the thread's arena into the thread's medium cache.
//   realloc (strata_realloc in api.cpp): a small block as free checks it, or
//     a medium block that is a live start without a free cookie and whose
//     size is paired, and a request its tier's rules (realloc.hpp) leave it
//     untouched for -> p itself, with no stack frame and no call.
//   Everything else: alloc_slow (alloc.cpp), free_slow / free_medium
//   (free.cpp), heap_realloc and large_realloc (realloc.cpp).
// Layer: above the heap; included by api.cpp and the slow-path files.
#pragma once
#include <errno.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "classify.hpp"
#include "heap.hpp"
#include "realloc.hpp"

namespace strata::detail {

// ---- slow paths (alloc.cpp, free.cpp) ----
// Any allocation the fast path does not serve: refills, medium and large
// blocks; errno = ENOMEM when it returns null.
STRATA_SLOW_PATH void* alloc_slow(Heap* h, std::size_t n) noexcept;
// Out of memory: before a request fails, what this copy holds free goes back
// to the OS — the calling thread's cache of h flushed, empty spans and medium
// pools unmapped, free medium pages and kept large mappings given back (h's,
// and the process heap's for a pool) — and the request is tried once more:
// free memory must not make a request fail under an address-space limit.
STRATA_SLOW_PATH void release_free_memory(Heap* h) noexcept;
// heap_aligned_alloc's medium or large request failed: release_free_memory
// and one more try (none for a size no machine can back); errno = ENOMEM
// when it fails too.
STRATA_SLOW_PATH void* aligned_alloc_retry(Heap* h, std::size_t align, std::size_t n) noexcept;
// Classifies p and frees it, or reports why it cannot (expect: the heap p
// must belong to, or null for any).
STRATA_SLOW_PATH void free_slow(void* p, Heap* expect, const char* op) noexcept;
// heap_free's medium case (see there).
STRATA_SLOW_PATH void free_medium(void* p, std::uintptr_t e, ThreadCache* tc, Heap* expect, const char* op) noexcept;
// Frees a block already classified as valid.
void free_valid(const Info& in, void* p, const char* op) noexcept;
STRATA_SLOW_PATH void medium_cache_push_over_budget(ThreadCache* tc, CacheBin& bin, Block* b, std::size_t size) noexcept;
// A medium cache list found forged at b (medium_cached_size): reported as
// CORRUPTION, the list dropped (its blocks stay allocated: never followed).
STRATA_SLOW_PATH void medium_cache_poisoned(ThreadCache* tc, CacheBin& bin, const Block* b) noexcept;

// ---- allocation ----
// A bin's head is taken only if it is plausible (link_plausible): an empty
// bin (kBinEnd) and a link a program forged both fail the one test and go to
// the slow path (small_alloc_slow tells them apart).  The link read here is
// checked the same way at the next pop, before it is followed.
STRATA_FAST_PATH void* cache_pop(ThreadCache* tc, unsigned c) noexcept {
  CacheBin& bin = tc->bins[c];
  std::uintptr_t h = bin.head;
  if (STRATA_LIKELY(link_plausible(h))) {
    auto* b = reinterpret_cast<Block*>(h);
    std::uintptr_t next = link_of(b);
    bin.head = next;
    __builtin_prefetch(reinterpret_cast<void*>(next), 1);
    bin.room++;
    b->cookie = 0;
    return b;
  }
  return nullptr;
}

// A medium block is as big as its request (in granules); a thread cache
// files freed blocks under cache classes (sizes at most 1/8 apart, each
// block under the largest class not above its size), so that they serve the
// thread's later requests: a request takes the newest block of the class
// below it if that one is big enough (a program that repeats a size gets
// its block back), else one of its own class up, which always fits.  An
// aligned request takes such a block only if it is aligned (one an earlier
// aligned request of the thread left, typically).  `need` is at least the
// smallest medium block.
STRATA_FAST_PATH Block* medium_cache_pop(ThreadCache* tc, std::size_t need, std::size_t align) noexcept {
  auto aligned = [align](const Block* b) {
    return align <= kMinAlign || (reinterpret_cast<std::uintptr_t>(b) & (align - 1)) == 0;
  };
  unsigned mc = kGranulesToMediumClass[need / kMediumGranule];
  CacheBin* bin = &tc->medium_bins[mc];
  Block* b = nullptr;
  std::size_t size = 0;
  // Every block is checked before its size or its link is read.
  if (medium_class_block(mc) != need) {
    CacheBin& below = tc->medium_bins[mc - 1];
    if (auto* f = reinterpret_cast<Block*>(below.head); below.head != kBinEnd && aligned(f)) {
      size = medium_cached_size(f);
      if (STRATA_UNLIKELY(size == 0)) return medium_cache_poisoned(tc, below, f), nullptr;
      if (size >= need) {
        bin = &below;
        b = f;
      }
    }
  }
  if (!b) {
    if (bin->head == kBinEnd) return nullptr;
    b = reinterpret_cast<Block*>(bin->head);
    if (!aligned(b)) return nullptr;
    size = medium_cached_size(b);
    if (STRATA_UNLIKELY(size == 0)) return medium_cache_poisoned(tc, *bin, b), nullptr;
  }
  bin->head = link_of(b);
  bin->room++;
  tc->medium_cached_bytes -= size;
  b->cookie = 0;
  return b;
}

STRATA_FAST_PATH void* medium_alloc_cached(Heap* h, std::size_t n, std::size_t align = kMinAlign) noexcept {
  if (ThreadCache* tc = cache_lookup_inline(h))
    if (Block* b = medium_cache_pop(tc, align_up(n + kMediumHeaderSize, kMediumGranule), align)) return b;
  return medium_alloc(h, n, align);
}

STRATA_FAST_PATH void* heap_alloc(Heap* h, std::size_t n) noexcept {
  if (STRATA_LIKELY(n <= kMaxSmallSize)) {
    if (ThreadCache* tc = cache_lookup_inline(h))
      if (void* p = cache_pop(tc, size_to_class(n))) return p;
  }
  return alloc_slow(h, n);
}

// (n + 15) / 16 -> byte offset of the class's bin inside a ThreadCache.
inline constexpr auto kSizeToBinOffset = [] {
  std::array<std::uint16_t, kLookupEntries> t{};
  for (std::size_t i = 0; i < kLookupEntries; ++i)
    t[i] = static_cast<std::uint16_t>(offsetof(ThreadCache, bins) + kSizeToClass[i] * sizeof(CacheBin));
  return t;
}();

// Aligned allocation for every tier: a small class whose blocks are aligned,
// a medium block placed at the alignment, or a large mapping.  Inline, so
// that strata_aligned_alloc's heap is a constant (the TLS cache path).
inline void* heap_aligned_alloc(Heap* h, std::size_t align, std::size_t n) noexcept {
  if (align == 0 || (align & (align - 1))) {
    errno = EINVAL;
    return nullptr;
  }
  if (align <= kMinAlign) return heap_alloc(h, n);
  void* p = nullptr;
  if (n <= kMaxSmallSize && align <= kSpanHeaderSize) {
    // Blocks of a class whose size is a multiple of align are align-aligned
    // (spans are 64 KiB aligned and blocks start at offset 256).
    unsigned c = size_to_class(n);
    while (c < kNumClasses && (kClassSize[c] & (align - 1))) ++c;  // align is a power of two: no division
    if (c < kNumClasses) return heap_alloc(h, kClassSize[c]);
  }
  if (n <= kMaxMediumSize && align <= kChunkSize)
    p = n > kMaxSmallSize ? medium_alloc_cached(h, n, align) : medium_alloc(h, n, align);
  if (!p) p = large_alloc(h, n, align);
  if (STRATA_UNLIKELY(!p)) p = aligned_alloc_retry(h, align, n);
  return p;
}

// strata_malloc: the process heap's fast path.
STRATA_FAST_PATH void* process_malloc(std::size_t n) noexcept {
  if (STRATA_LIKELY(n <= kMaxSmallSize)) {
    std::size_t off = kSizeToBinOffset[(n + 15) >> 4];
    auto* bin = reinterpret_cast<CacheBin*>(reinterpret_cast<char*>(t_cache) + off);
    std::uintptr_t h = bin->head;
    if (STRATA_LIKELY(link_plausible(h))) {  // not empty, not forged (cache_pop)
      auto* b = reinterpret_cast<Block*>(h);
      std::uintptr_t next = link_of(b);
      b->cookie = 0;
      bin->head = next;
      bin->room++;
      __builtin_prefetch(reinterpret_cast<void*>(next), 1);  // the next pop's line, often last written by another core
      return b;
    }
  }
  return alloc_slow(&g_default_heap, n);
}

// ---- realloc -----------------------------------------------------------------
// Whether realloc(p, n) leaves p, which the chunk map places in medium pool
// `pool`, exactly as it is: the checks an unlocked path makes before it
// believes a medium size (a live start, no free cookie, the size paired
// [M5]) and the rules of realloc.hpp, in one pass with no call.  False in
// every other case, a doubtful one included: heap_realloc decides, under
// the lock, and reports.  (No alignment test: a pointer off a granule fails
// the start bit's.)
STRATA_FAST_PATH bool medium_realloc_untouched(MediumPool* pool, void* p, std::size_t n) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  if (!medium_is_live_start(pool, p) || static_cast<const Block*>(p)->cookie == (a ^ secret())) return false;
  const std::size_t size = medium_block_size_racy(p);  // read once: the size checked is the size used
  return medium_keeps_untouched(n, size - kMediumHeaderSize) &&
         medium_size_paired(pool, static_cast<char*>(p) - kMediumHeaderSize, size);
}

// ---- free --------------------------------------------------------------------
STRATA_FAST_PATH void cache_push(ThreadCache* tc, unsigned c, Block* b, std::uintptr_t cookie) noexcept {
  CacheBin& bin = tc->bins[c];
  set_link(b, bin.head);
  b->cookie = cookie;
  bin.head = reinterpret_cast<std::uintptr_t>(b);
  if (STRATA_UNLIKELY(--bin.room < 0)) cache_overflow(tc, c);
}

inline void medium_bin_push(ThreadCache* tc, CacheBin& bin, Block* b, std::size_t size) noexcept {
  set_link(b, bin.head);
  b->cookie = reinterpret_cast<std::uintptr_t>(b) ^ secret();
  bin.head = reinterpret_cast<std::uintptr_t>(b);
  bin.room--;
  tc->medium_cached_bytes += size;
}
// Puts medium block p of pool (a live start by the racy check of
// medium_is_live_start) into thread cache tc, when tc is not null, the block
// is of the thread's own arena (a block another thread allocated goes back
// to its arena, where that thread finds it: a consumer thread's cache would
// only hold memory it never reuses), and the cache has room.  False: the
// caller frees it under the lock, where every doubtful case (a double free
// included) is decided.
STRATA_FAST_PATH bool medium_cache_push_live(ThreadCache* tc, MediumPool* pool, void* p) noexcept {
  if (!tc || pool->arena != tc->medium_arena) return false;
  std::size_t size = medium_block_size_racy(p);
  if (size < medium_class_block(0) || size > kMaxMediumBlock) return false;
  // A tag a program overwrote (a forged or garbage size) never enters the
  // cache, where a later request would believe it: the locked free decides.
  if (!medium_size_paired(pool, static_cast<char*>(p) - kMediumHeaderSize, size)) return false;
  unsigned mc = kGranulesToMediumClass[size / kMediumGranule];
  if (medium_class_block(mc) > size) --mc;  // file under the largest class it can serve
  CacheBin& bin = tc->medium_bins[mc];
  if (bin.room <= 0) return false;  // the class holds its share
  if (STRATA_UNLIKELY(tc->medium_cached_bytes >= kMediumCacheBudget))
    medium_cache_push_over_budget(tc, bin, static_cast<Block*>(p), size);
  else
    medium_bin_push(tc, bin, static_cast<Block*>(p), size);
  return true;
}
// The same for a block not yet known to be a live start.
inline bool medium_cache_push(ThreadCache* tc, MediumPool* pool, void* p) noexcept {
  return medium_is_live_start(pool, p) && medium_cache_push_live(tc, pool, p);
}

STRATA_FAST_PATH void heap_free(void* p, ThreadCache* tc, Heap* expect, const char* op) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t e = chunk_map::lookup_unchecked(a);
  Span* s;
  if (STRATA_LIKELY(small_block_start(a, e, &s))) {
    std::uintptr_t cookie = a ^ s->secret;
    auto* b = static_cast<Block*>(p);
    if (STRATA_LIKELY(s->owner.load(std::memory_order_relaxed) == tc)) {  // a span of this thread's
      if (STRATA_LIKELY(b->cookie != cookie)) {
        auto* bin = reinterpret_cast<CacheBin*>(reinterpret_cast<char*>(tc) + s->bin_offset);
        set_link(b, bin->head);
        b->cookie = cookie;
        bin->head = a;
        if (STRATA_UNLIKELY(--bin->room < 0)) cache_overflow(tc, s->size_class);
        return;
      }
    } else if (s->heap == tc->heap && b->cookie != cookie) {  // another thread's span, or none's
      return small_free_foreign(tc, s->size_class, b, cookie);
    }
  } else if (chunk_map::kind_of(e) == ChunkKind::kMedium) {
    return free_medium(p, e, tc, expect, op);
  }
  free_slow(p, expect, op);
}

}  // namespace strata::detail
