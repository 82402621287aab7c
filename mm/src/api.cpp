// strata — the C API: fast paths, pointer classification, the FastMM-style
// reallocation policy, error reporting, pools and the heap summary.
//
// Fast paths (kept small and inline; everything else is STRATA_SLOW_PATH):
//   strata_malloc: size <= kMaxSmallSize and the thread's bin for the class is
//     non-empty -> pop.  (t_cache starts as g_empty_cache, whose bins are empty,
//     so a thread's first call falls to the slow path without a branch on null.)
//   strata_free: the chunk map says "small", the span is owned by the
//     thread's cache, the pointer is exactly a carved block start and the
//     block has no free cookie -> push onto the thread's bin; the bin
//     overflowing sends a batch back to the blocks' spans.  A block of another
//     thread's span (or of none's) goes to the thread's foreign bin instead,
//     which returns it to its span in a batch.  When the chunk map says
//     "medium" instead, free_medium (one call, no second lookup) puts a live
//     block of the thread's arena into the thread's medium cache.
#include <errno.h>
#include <stdlib.h>

#include <array>
#include <cstddef>
#include <cstring>

#include "heap.hpp"
#include "log.hpp"
#include "os.hpp"

using namespace strata::detail;

namespace {

// ---- errors ----------------------------------------------------------------
std::atomic<strata_error_handler_t> g_handler{nullptr};
std::atomic<void*> g_handler_user{nullptr};

const char* const kKindNames[] = {"no error",    "foreign pointer", "interior pointer", "double free",
                                  "freed memory", "wrong pool",      "heap corruption", "wrong size"};

STRATA_SLOW_PATH void report(strata_error_kind kind, const void* p, const char* op, const char* msg) noexcept {
  strata_error_t e{kind, p, op, msg};
  strata_error_handler_t h = g_handler.load(std::memory_order_acquire);
  if (h) {
    h(&e, g_handler_user.load(std::memory_order_acquire));
    return;
  }
  MessageBuilder m;
  m.str("strata: ").str(op).str("(").ptr(p).str("): ").str(kKindNames[kind]).str(": ").str(msg).str("\n");
  m.write(2);
  abort();
}

// ---- classification ------------------------------------------------------------
struct Info {
  ChunkKind kind = ChunkKind::kNone;
  Heap* heap = nullptr;
  Span* span = nullptr;
  MediumPool* pool = nullptr;
  LargeBlock* large = nullptr;
  strata_error_kind err = STRATA_ERROR_NONE;
  const char* msg = nullptr;
};

inline Span* span_of(const void* p) noexcept {
  return reinterpret_cast<Span*>(reinterpret_cast<std::uintptr_t>(p) & ~(kChunkSize - 1));
}

const char* medium_message(strata_error_kind err) noexcept {
  switch (err) {
    case STRATA_ERROR_INTERIOR_POINTER: return "the address points inside a medium block, not at its start";
    case STRATA_ERROR_DOUBLE_FREE: return "the medium block is already free";
    default: return "the boundary tag before the medium block was overwritten";
  }
}

// Decides what p is from the chunk map first, reading block memory only where
// the map proves it is strata's and mapped.  A medium block is validated only
// when `check_medium` (free validates it under the tier lock itself).
Info classify(const void* p, bool check_medium = true) noexcept {
  Info in;
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t e = chunk_map::lookup(a);
  in.kind = chunk_map::kind_of(e);
  switch (in.kind) {
    case ChunkKind::kNone:
      in.err = STRATA_ERROR_FOREIGN_POINTER;
      in.msg = "the address was not allocated by this strata (a stack or global address, another allocator's "
               "block, or a wild pointer)";
      return in;
    case ChunkKind::kFreed:
      in.err = STRATA_ERROR_FREED_MEMORY;
      in.msg = "the address is not a live block: strata returned this memory to the OS earlier, so it is a "
               "block freed before (double free), a stale pointer, or memory someone else has mapped there since";
      return in;
    case ChunkKind::kMeta:
      in.err = STRATA_ERROR_INTERIOR_POINTER;
      in.msg = "the address points into strata's own bookkeeping, not at a block";
      return in;
    case ChunkKind::kSmall: {
      Span* s = span_of(p);
      in.span = s;
      in.heap = s->heap;
      std::uint32_t off = static_cast<std::uint32_t>(a & (kChunkSize - 1));
      if (!s->assigned) {
        in.err = STRATA_ERROR_DOUBLE_FREE;
        in.msg = "the small block is not allocated: it was freed before (double free) or is stale";
        return in;
      }
      if (off < kSpanHeaderSize) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points into a span header, not at a block";
        return in;
      }
      off -= static_cast<std::uint32_t>(kSpanHeaderSize);
      std::uint32_t idx = static_cast<std::uint32_t>((std::uint64_t{off} * s->recip) >> 32);
      if (idx * s->block_size != off) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points inside a small block, not at its start";
        return in;
      }
      if (idx >= s->carved.load(std::memory_order_acquire)) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address is a small-block slot strata never handed out";
        return in;
      }
      if (static_cast<const Block*>(p)->cookie == (a ^ secret())) {
        in.err = STRATA_ERROR_DOUBLE_FREE;
        in.msg = "the small block is already free";
      }
      return in;
    }
    case ChunkKind::kMedium: {
      in.pool = chunk_map::owner_of<MediumPool>(e);
      in.heap = in.pool->heap;
      if ((a & (kMinAlign - 1)) != 0) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points inside a medium block, not at its start";
        return in;
      }
      // p + 8 lies in the same 16-byte unit as p, inside the pool: mapped.
      if (static_cast<const Block*>(p)->cookie == (a ^ secret()) && medium_is_live_start(in.pool, p)) {
        in.err = STRATA_ERROR_DOUBLE_FREE;
        in.msg = "the medium block is already free (held in a thread cache)";
        return in;
      }
      if (check_medium) {
        in.err = medium_check(in.pool, p);
        if (in.err != STRATA_ERROR_NONE) in.msg = medium_message(in.err);
      }
      return in;
    }
    case ChunkKind::kLarge: {
      in.large = chunk_map::owner_of<LargeBlock>(e);
      std::uint64_t magic = large_magic(in.large);
      if (magic == kLargeCachedMagic || magic == kLargeParkedMagic) {
        in.err = p == in.large->user ? STRATA_ERROR_DOUBLE_FREE : STRATA_ERROR_INTERIOR_POINTER;
        in.msg = p == in.large->user ? "the large block is already free"
                                     : "the address points inside a large block that is already free";
        return in;
      }
      if (magic != kLargeMagic) {
        in.err = STRATA_ERROR_CORRUPTION;
        in.msg = "the header of the large block was overwritten";
        return in;
      }
      in.heap = in.large->heap;
      if (p != in.large->user) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points inside a large block, not at its start";
      }
      return in;
    }
  }
  in.err = STRATA_ERROR_CORRUPTION;
  in.msg = "the chunk map entry is invalid";
  return in;
}

// ---- allocation ------------------------------------------------------------
STRATA_FAST_PATH void* cache_pop(ThreadCache* tc, unsigned c) noexcept {
  CacheBin& bin = tc->bins[c];
  Block* b = bin.head;
  if (STRATA_LIKELY(b != nullptr)) {
    Block* next = b->next;
    bin.head = next;
    __builtin_prefetch(next, 1);
    bin.room++;
    b->cookie = 0;
  }
  return b;
}

// cache_lookup with the process heap's case inline (the TLS pointer).
inline ThreadCache* cache_lookup_inline(Heap* h) noexcept {
  if (h != &g_default_heap) return cache_lookup(h);
  ThreadCache* tc = t_cache;
  return tc == &g_empty_cache ? nullptr : tc;
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
  if (medium_class_block(mc) != need) {
    if (Block* f = tc->medium_bins[mc - 1].head; f && aligned(f) && (size = medium_block_size_racy(f)) >= need) {
      bin = &tc->medium_bins[mc - 1];
      b = f;
    }
  }
  if (!b) {
    b = bin->head;
    if (!b || !aligned(b)) return nullptr;
    size = medium_block_size_racy(b);
  }
  bin->head = b->next;
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

STRATA_SLOW_PATH void* alloc_slow(Heap* h, std::size_t n) noexcept {
  void* p;
  if (n <= kMaxSmallSize) p = small_alloc_slow(h, size_to_class(n));
  else if (n <= kMaxMediumSize) p = medium_alloc_cached(h, n);
  else p = large_alloc(h, n, kMinAlign);
  if (STRATA_UNLIKELY(!p)) errno = ENOMEM;
  return p;
}

STRATA_FAST_PATH void* heap_alloc(Heap* h, std::size_t n) noexcept {
  if (STRATA_LIKELY(n <= kMaxSmallSize)) {
    if (ThreadCache* tc = cache_lookup_inline(h))
      if (void* p = cache_pop(tc, size_to_class(n))) return p;
  }
  return alloc_slow(h, n);
}

void* heap_aligned_alloc(Heap* h, std::size_t align, std::size_t n) noexcept {
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
  if (!p) errno = ENOMEM;
  return p;
}

// ---- free --------------------------------------------------------------------
STRATA_FAST_PATH void cache_push(ThreadCache* tc, unsigned c, Block* b, std::uintptr_t cookie) noexcept {
  CacheBin& bin = tc->bins[c];
  b->next = bin.head;
  b->cookie = cookie;
  bin.head = b;
  if (STRATA_UNLIKELY(--bin.room < 0)) cache_overflow(tc, c);
}

STRATA_SLOW_PATH void medium_cache_push_over_budget(ThreadCache* tc, CacheBin& bin, Block* b, std::size_t size) noexcept;
inline void medium_bin_push(ThreadCache* tc, CacheBin& bin, Block* b, std::size_t size) noexcept {
  b->next = bin.head;
  b->cookie = reinterpret_cast<std::uintptr_t>(b) ^ secret();
  bin.head = b;
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
inline bool medium_cache_push_live(ThreadCache* tc, MediumPool* pool, void* p) noexcept {
  if (!tc || pool->arena != tc->medium_arena) return false;
  std::size_t size = medium_block_size_racy(p);
  if (size < medium_class_block(0) || size > kMaxMediumBlock) return false;
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
// A cache over its budget gives back what it holds (blocks of sizes the
// thread may no longer use) and keeps the new block: the last block kept
// may take it over the budget.
void medium_cache_push_over_budget(ThreadCache* tc, CacheBin& bin, Block* b, std::size_t size) noexcept {
  medium_cache_flush(tc);
  medium_bin_push(tc, bin, b, size);
}
// The same for a block not yet known to be a live start.
inline bool medium_cache_push(ThreadCache* tc, MediumPool* pool, void* p) noexcept {
  return medium_is_live_start(pool, p) && medium_cache_push_live(tc, pool, p);
}

STRATA_SLOW_PATH void free_slow(void* p, Heap* expect, const char* op) noexcept;

// heap_free's medium case, from the chunk-map entry e of p's address: a block
// of tc's arena that is a live start (its range check also rejects addresses
// the unchecked lookup folded onto the pool) and carries no free cookie (one
// that does may already be in a cache: classify tells a double free from a
// coincidence) goes into tc's cache; anything else to free_slow.  (It calls
// free_slow itself so that heap_free's call to it is a tail call: heap_free
// keeps no stack frame for the small fast path.)
STRATA_SLOW_PATH void free_medium(void* p, std::uintptr_t e, ThreadCache* tc, Heap* expect, const char* op) noexcept {
  auto* pool = chunk_map::owner_of<MediumPool>(e);
  // Only a block of tc's own arena is cached (medium_cache_push_live): that
  // is a block of tc's heap.  g_empty_cache has no arena.
  if (medium_is_live_start(pool, p) &&
      static_cast<const Block*>(p)->cookie != (reinterpret_cast<std::uintptr_t>(p) ^ secret()) &&
      medium_cache_push_live(tc, pool, p))
    return;
  free_slow(p, expect, op);
}

// Frees a block already classified as valid.
void free_valid(const Info& in, void* p, const char* op) noexcept {
  switch (in.kind) {
    case ChunkKind::kSmall: {
      unsigned c = in.span->size_class;
      auto* b = static_cast<Block*>(p);
      if (ThreadCache* tc = cache_for(in.heap)) {
        std::uintptr_t cookie = reinterpret_cast<std::uintptr_t>(p) ^ secret();
        if (in.span->owner.load(std::memory_order_relaxed) == tc) cache_push(tc, c, b, cookie);
        else small_free_foreign(tc, c, b, cookie);
      } else
        small_free_central(in.heap, b, c);
      return;
    }
    case ChunkKind::kMedium: {
      if (medium_cache_push(cache_for(in.heap), in.pool, p)) return;
      strata_error_kind err = medium_free(in.heap, in.pool, p);
      if (err != STRATA_ERROR_NONE) report(err, p, op, medium_message(err));
      return;
    }
    case ChunkKind::kLarge:
      if (ThreadCache* tc = cache_for(in.heap); tc && large_park(tc, in.large)) return;
      large_free(in.heap, in.large);
      return;
    default:
      return;
  }
}

void free_slow(void* p, Heap* expect, const char* op) noexcept {
  if (!p) return;
  Info in = classify(p, /*check_medium=*/false);
  if (in.err != STRATA_ERROR_NONE) return report(in.err, p, op, in.msg);
  if (expect && in.heap != expect)
    return report(STRATA_ERROR_WRONG_POOL, p, op, "the block belongs to another pool (or to the process heap)");
  free_valid(in, p, op);
}

// True when address a (whose chunk-map entry is e) is exactly a block start
// strata carved from a small span; *span is then that span.  The pointer
// check shared by the free, free_sized and realloc fast paths; reads only
// the chunk map and the span header.  (A bool, not a null Span*: the
// compiler cannot prove a span address non-null and would test it again.)
STRATA_FAST_PATH bool small_block_start(std::uintptr_t a, std::uintptr_t e, Span** span) noexcept {
  std::uintptr_t chunk = a & ~(kChunkSize - 1);
  // A span's entry is its own address tagged kSmall.
  if (STRATA_UNLIKELY(e != (chunk | static_cast<std::uintptr_t>(ChunkKind::kSmall)))) return false;
  auto* s = reinterpret_cast<Span*>(chunk);
  std::uint32_t off = static_cast<std::uint32_t>(a & (kChunkSize - 1)) - static_cast<std::uint32_t>(kSpanHeaderSize);
  std::uint32_t idx = static_cast<std::uint32_t>((std::uint64_t{off} * s->recip) >> 32);
  *span = s;
  return idx * s->block_size == off && idx < s->carved.load(std::memory_order_relaxed);
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
        b->next = bin->head;
        b->cookie = cookie;
        bin->head = b;
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

// ---- realloc -----------------------------------------------------------------
void* move_block(Heap* h, const Info& in, void* p, std::size_t copy, std::size_t new_size, const char* op) noexcept {
  void* q = heap_alloc(h, new_size);
  if (!q) {
    errno = ENOMEM;
    return nullptr;
  }
  std::memcpy(q, p, copy);
  free_valid(in, p, op);
  return q;
}

inline std::size_t grow_target(std::size_t n, std::size_t extra) noexcept {
  return n + extra < n ? n : n + extra;
}

// The medium tier's shrink rule, shared by heap_realloc and strata_realloc's
// fast path.  A block of `usable` bytes resized to n <= usable stays where it
// is unless n is under half of it; the slack of two granules keeps a block
// that a small upsize just moved here (2 x + 32, rounded up to granules) from
// moving straight back.
inline bool medium_keeps_in_place(std::size_t n, std::size_t usable) noexcept {
  return n <= usable && 2 * n + 2 * kMediumGranule >= usable;
}
// A block kept in place gives its tail back when more than a quarter of it
// would be spare (the 25% growth headroom is kept).
inline bool medium_trims_tail(std::size_t n, std::size_t usable) noexcept {
  return n > kMaxSmallSize && 4 * n < 3 * usable;
}

// The large tier's: a block resized to n <= usable is left as it is unless n
// is under half of it (then it shrinks or moves).
inline bool large_keeps_in_place(std::size_t n, std::size_t usable) noexcept { return n <= usable && 2 * n >= usable; }

STRATA_NOINLINE void* heap_realloc(Heap* expect, void* p, std::size_t n, const char* op) noexcept {
  if (!p) return heap_alloc(expect ? expect : &g_default_heap, n);
  Info in = classify(p, /*check_medium=*/false);
  // A medium block that the unlocked look does not confirm gets the locked,
  // precise diagnosis.
  if (in.err == STRATA_ERROR_NONE && in.kind == ChunkKind::kMedium && !medium_is_live_start(in.pool, p)) {
    in.err = medium_check(in.pool, p);
    if (in.err != STRATA_ERROR_NONE) in.msg = medium_message(in.err);
  }
  if (in.err != STRATA_ERROR_NONE) {
    report(in.err, p, op, in.msg);
    return nullptr;
  }
  if (expect && in.heap != expect) {
    report(STRATA_ERROR_WRONG_POOL, p, op, "the block belongs to another pool (or to the process heap)");
    return nullptr;
  }
  Heap* h = in.heap;
  if (n == 0) {  // glibc: realloc(p, 0) frees p and returns NULL
    free_valid(in, p, op);
    return nullptr;
  }
  switch (in.kind) {
    case ChunkKind::kSmall: {
      std::size_t bs = in.span->block_size;
      if (n <= bs) {
        if (4 * n >= bs) return p;  // shrink in place unless below a quarter (FastMM)
        return move_block(h, in, p, n, n, op);
      }
      return move_block(h, in, p, bs, n > 2 * bs + 32 ? n : 2 * bs + 32, op);
    }
    case ChunkKind::kMedium: {
      std::size_t usable = medium_block_size_racy(p) - kMediumHeaderSize;
      if (n <= usable) {
        if (medium_keeps_in_place(n, usable)) {
          if (medium_trims_tail(n, usable)) medium_resize_in_place(h, in.pool, p, n);
          return p;
        }
        return move_block(h, in, p, n, n, op);
      }
      // Grown in place with the same quarter of headroom as a moved block.
      const std::size_t grown = grow_target(n, n / 4);
      if (n <= kMaxMediumSize && medium_resize_in_place(h, in.pool, p, n, grown)) return p;
      return move_block(h, in, p, usable, grown, op);
    }
    case ChunkKind::kLarge: {
      std::size_t usable = large_usable(in.large);
      if (n <= usable) {
        if (large_keeps_in_place(n, usable)) return p;
        if (n > kMaxMediumSize) {
          large_resize_in_place(h, in.large, n);
          return p;
        }
        return move_block(h, in, p, n, n, op);
      }
      if (large_resize_in_place(h, in.large, n)) return p;
      // Up to kLargeCopyMax the block is copied into a kept mapping (or a
      // fresh one) rather than moved with mremap: see config.hpp.
      if (usable <= kLargeCopyMax) return move_block(h, in, p, usable, grow_target(n, n / 4), op);
      if (void* q = large_move(h, in.large, grow_target(n, n / 4))) return q;
      return move_block(h, in, p, usable, n, op);
    }
    default:
      return nullptr;
  }
}

inline Heap* pool_heap(strata_pool_t* pool) noexcept {
  auto* h = reinterpret_cast<Heap*>(pool);
  return h;
}

}  // namespace

// ---- exported API ----------------------------------------------------------------
extern "C" {

// (n + 15) / 16 -> byte offset of the class's bin inside a ThreadCache.
constexpr auto kSizeToBinOffset = [] {
  std::array<std::uint16_t, kLookupEntries> t{};
  for (std::size_t i = 0; i < kLookupEntries; ++i)
    t[i] = static_cast<std::uint16_t>(offsetof(ThreadCache, bins) + kSizeToClass[i] * sizeof(CacheBin));
  return t;
}();

STRATA_API void* strata_malloc(size_t n) noexcept {
  if (STRATA_LIKELY(n <= kMaxSmallSize)) {
    std::size_t off = kSizeToBinOffset[(n + 15) >> 4];
    auto* bin = reinterpret_cast<CacheBin*>(reinterpret_cast<char*>(t_cache) + off);
    Block* b = bin->head;
    if (STRATA_LIKELY(b != nullptr)) {
      Block* next = b->next;
      b->cookie = 0;
      bin->head = next;
      bin->room++;
      __builtin_prefetch(next, 1);  // the next pop's line, often last written by another core
      return b;
    }
  }
  return alloc_slow(&g_default_heap, n);
}

STRATA_API void strata_free(void* p) noexcept { heap_free(p, t_cache, nullptr, "strata_free"); }

STRATA_API void strata_free_sized(void* p, size_t size) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  Span* s;
  if (STRATA_LIKELY(small_block_start(a, chunk_map::lookup_unchecked(a), &s) && size <= s->block_size))
    return heap_free(p, t_cache, nullptr, "free_sized");
  if (!p) return;
  Info in = classify(p);
  if (in.err != STRATA_ERROR_NONE) return report(in.err, p, "free_sized", in.msg);
  std::size_t usable = in.kind == ChunkKind::kSmall    ? in.span->block_size
                       : in.kind == ChunkKind::kMedium ? medium_usable(p)
                                                       : large_usable(in.large);
  if (size > usable)
    report(STRATA_ERROR_WRONG_SIZE, p, "free_sized",
           "the size given to a sized free or delete is larger than the block: the caller's size is wrong");
  free_valid(in, p, "free_sized");
}

STRATA_API size_t strata_heap_trim(strata_pool_t* pool) noexcept {
  Heap* h = pool ? pool_heap(pool) : &g_default_heap;
  if (ThreadCache* tc = cache_lookup(h)) cache_flush_all(tc);
  return small_trim(h) + medium_trim(h) + large_trim(h);
}

STRATA_API void* strata_calloc(size_t count, size_t size) noexcept {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (n > kMaxMediumSize) {  // a fresh mapping is already zero
    void* p = large_alloc(&g_default_heap, n, kMinAlign, /*use_cache=*/false);
    if (!p) errno = ENOMEM;
    return p;
  }
  void* p = strata_malloc(n);
  if (p) std::memset(p, 0, n);
  return p;
}

// The common case of a realloc that stays in place, decided with the same
// checks as the free fast path; everything else goes through heap_realloc.
STRATA_API void* strata_realloc(void* p, size_t n) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t e = chunk_map::lookup_unchecked(a);
  Span* s;
  if (small_block_start(a, e, &s)) {
    std::size_t bs = s->block_size;
    if (static_cast<Block*>(p)->cookie != (a ^ s->secret) && n <= bs && 4 * n >= bs) return p;
  } else if (chunk_map::kind_of(e) == ChunkKind::kMedium && (a & (kMinAlign - 1)) == 0) {
    auto* pool = chunk_map::owner_of<MediumPool>(e);
    if (medium_is_live_start(pool, p) && static_cast<Block*>(p)->cookie != (a ^ secret())) {
      std::size_t usable = medium_block_size_racy(p) - kMediumHeaderSize;
      // Exactly the cases in which heap_realloc keeps the block untouched.
      if (medium_keeps_in_place(n, usable) && !medium_trims_tail(n, usable)) return p;
    }
  } else if (chunk_map::kind_of(e) == ChunkKind::kLarge) {
    // A live large block (its magic) whose user pointer is p (which also
    // rejects an address the unchecked lookup folded onto it).
    auto* lb = chunk_map::owner_of<LargeBlock>(e);
    if (large_magic(lb) == kLargeMagic && lb->user == p) {
      std::size_t usable = large_usable(lb);
      if (large_keeps_in_place(n, usable)) return p;
    }
  }
  return heap_realloc(nullptr, p, n, "strata_realloc");
}

STRATA_API void* strata_aligned_alloc(size_t alignment, size_t size) noexcept {
  return heap_aligned_alloc(&g_default_heap, alignment, size);
}

STRATA_API size_t strata_usable_size(const void* p) noexcept {
  if (!p) return 0;
  Info in = classify(p);
  if (in.err != STRATA_ERROR_NONE) {
    report(in.err, p, "strata_usable_size", in.msg);
    return 0;
  }
  switch (in.kind) {
    case ChunkKind::kSmall: return in.span->block_size;
    case ChunkKind::kMedium: return medium_usable(p);
    case ChunkKind::kLarge: return large_usable(in.large);
    default: return 0;
  }
}

STRATA_API strata_error_handler_t strata_set_error_handler(strata_error_handler_t handler, void* user) noexcept {
  g_handler_user.store(user, std::memory_order_release);
  return g_handler.exchange(handler, std::memory_order_acq_rel);
}

STRATA_API const char* strata_error_kind_name(strata_error_kind kind) noexcept {
  unsigned k = static_cast<unsigned>(kind);
  return k < sizeof(kKindNames) / sizeof(kKindNames[0]) ? kKindNames[k] : "unknown error";
}

// ---- pools ----
STRATA_API strata_pool_t* strata_pool_create(void) noexcept {
  return reinterpret_cast<strata_pool_t*>(heap_create());
}

STRATA_API void* strata_pool_malloc(strata_pool_t* pool, size_t n) noexcept {
  if (!pool) return strata_malloc(n);
  return heap_alloc(pool_heap(pool), n);
}

STRATA_API void* strata_pool_calloc(strata_pool_t* pool, size_t count, size_t size) noexcept {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = strata_pool_malloc(pool, n);
  if (p) std::memset(p, 0, n);
  return p;
}

STRATA_API void* strata_pool_aligned_alloc(strata_pool_t* pool, size_t alignment, size_t size) noexcept {
  return heap_aligned_alloc(pool ? pool_heap(pool) : &g_default_heap, alignment, size);
}

STRATA_API void* strata_pool_realloc(strata_pool_t* pool, void* p, size_t n) noexcept {
  return heap_realloc(pool ? pool_heap(pool) : &g_default_heap, p, n, "strata_pool_realloc");
}

STRATA_API void strata_pool_free(strata_pool_t* pool, void* p) noexcept {
  if (!pool) return strata_free(p);
  Heap* h = pool_heap(pool);
  ThreadCache* tc = cache_lookup(h);
  heap_free(p, tc ? tc : &g_empty_cache, h, "strata_pool_free");
}

STRATA_API void strata_pool_destroy(strata_pool_t* pool) noexcept {
  if (!pool) return;
  Heap* h = pool_heap(pool);
  STRATA_CHECK(h->magic == kHeapMagic && h->is_pool, "strata_pool_destroy: not a live pool");
  heap_destroy(h);
}

STRATA_API strata_pool_t* strata_pool_of(const void* p) noexcept {
  if (!p) return nullptr;
  Info in = classify(p);
  if (in.err != STRATA_ERROR_NONE || !in.heap || !in.heap->is_pool) return nullptr;
  return reinterpret_cast<strata_pool_t*>(in.heap);
}

STRATA_API void strata_thread_flush(void) noexcept {
  if (ThreadCache* tc = cache_lookup(&g_default_heap)) cache_flush_all(tc);
}

// ---- summary ----
STRATA_API int strata_heap_summary(strata_pool_t* pool, strata_heap_summary_t* out) noexcept {
  if (!out || out->size < offsetof(strata_heap_summary_t, thread_caches) + sizeof(size_t)) return -1;
  Heap* h = pool ? pool_heap(pool) : &g_default_heap;
  strata_heap_summary_t s{};
  s.size = sizeof s;
  s.version = 2;
  std::size_t out_blocks = 0, out_bytes = 0;  // small blocks out of their spans
  std::size_t medium_cached_blocks = 0, medium_cached_bytes = 0;
  std::size_t large_parked_blocks = 0, large_parked_bytes = 0;
  {
    LockGuard g(h->span_lock);
    for (Span* sp = h->all_spans; sp; sp = sp->all_next) {
      if (!sp->assigned) continue;
      std::size_t u = sp->used.get();
      out_blocks += u;
      out_bytes += u * sp->block_size;
    }
  }
  for (unsigned c = 0; c < kNumClasses; ++c) {
    LockGuard g(h->classes[c].lock);
    for (Block* b = h->classes[c].pending.load(std::memory_order_acquire); b; b = b->next) {
      s.cached_blocks++;
      s.cached_bytes += kClassSize[c];
    }
  }
  {
    LockGuard g(h->meta_lock);
    for (ThreadCache* tc = h->caches; tc; tc = tc->next) {
      s.thread_caches++;
      for (unsigned c = 0; c < kNumClasses; ++c) {
        std::size_t n = bin_count(tc->bins[c]) + bin_count(tc->foreign[c]);
        s.cached_blocks += n;
        s.cached_bytes += n * kClassSize[c];
      }
      for (unsigned c = 0; c < kNumMediumClasses; ++c) medium_cached_blocks += bin_count(tc->medium_bins[c]);
      // The exact sum: a block grown in place is filed under a class smaller than it.
      medium_cached_bytes += cache_bytes_racy(tc->medium_cached_bytes);
      // Its size only: the owner may unpark the block, and it may be unmapped, meanwhile.
      if (std::size_t b = cache_bytes_racy(tc->parked_large_bytes)) {
        large_parked_blocks++;
        large_parked_bytes += b;
      }
    }
  }
  s.small_blocks = out_blocks > s.cached_blocks ? out_blocks - s.cached_blocks : 0;
  s.small_bytes = out_bytes > s.cached_bytes ? out_bytes - s.cached_bytes : 0;
  std::size_t medium_blocks = 0, medium_bytes = 0;
  for (MediumTier& m : h->medium) {
    LockGuard g(medium_lock(h, m));
    medium_blocks += m.blocks;
    medium_bytes += m.bytes;
  }
  s.medium_blocks = medium_blocks > medium_cached_blocks ? medium_blocks - medium_cached_blocks : 0;
  s.medium_bytes = medium_bytes > medium_cached_bytes ? medium_bytes - medium_cached_bytes : 0;
  s.cached_blocks += medium_cached_blocks;
  s.cached_bytes += medium_cached_bytes;
  {
    LockGuard g(h->large.lock);
    s.large_blocks = h->large.count;
    s.large_bytes = h->large.bytes;
  }
  // Parked blocks are in the tier's live list: to the program they are free.
  s.large_blocks = s.large_blocks > large_parked_blocks ? s.large_blocks - large_parked_blocks : 0;
  s.large_bytes = s.large_bytes > large_parked_bytes ? s.large_bytes - large_parked_bytes : 0;
  s.cached_blocks += large_parked_blocks;
  s.cached_bytes += large_parked_bytes;
  s.in_use_bytes = s.small_bytes + s.medium_bytes + s.large_bytes;
  // The peak counter lags by up to kCentralAccountSlack per thread; what a
  // summary sees is a peak too, and is kept.
  s.peak_in_use_bytes = h->peak_central_bytes.load(std::memory_order_relaxed);
  if (s.peak_in_use_bytes < s.in_use_bytes + s.cached_bytes) {
    s.peak_in_use_bytes = s.in_use_bytes + s.cached_bytes;
    h->peak_central_bytes.store(s.peak_in_use_bytes, std::memory_order_relaxed);
  }
  s.os_reserved_bytes = h->os_bytes.load(std::memory_order_relaxed);
  s.peak_os_reserved_bytes = h->peak_os_bytes.load(std::memory_order_relaxed);
  s.os_map_calls = h->map_calls.load(std::memory_order_relaxed);
  s.chunk_map_bytes = chunk_map::leaf_bytes();
  std::size_t n = out->size < sizeof s ? out->size : sizeof s;
  std::memcpy(out, &s, n);
  out->size = n;
  return 0;
}

STRATA_API void strata_print_summary(strata_pool_t* pool, int fd) noexcept {
  strata_heap_summary_t s{};
  s.size = sizeof s;
  if (strata_heap_summary(pool, &s) != 0) return;
  MessageBuilder m;
  m.str(pool ? "strata pool " : "strata process heap").str(pool ? "" : "");
  if (pool) m.ptr(pool);
  m.str(" summary\n");
  m.str("  in use:        ").bytes(s.in_use_bytes).str(" (peak handed out ").bytes(s.peak_in_use_bytes).str(")\n");
  m.str("  small blocks:  ").dec(s.small_blocks).str(", ").bytes(s.small_bytes).str("\n");
  m.str("  medium blocks: ").dec(s.medium_blocks).str(", ").bytes(s.medium_bytes).str("\n");
  m.str("  large blocks:  ").dec(s.large_blocks).str(", ").bytes(s.large_bytes).str("\n");
  m.str("  thread caches: ").dec(s.thread_caches).str(" holding ").dec(s.cached_blocks).str(" free blocks, ")
      .bytes(s.cached_bytes).str("\n");
  m.str("  from the OS:   ").bytes(s.os_reserved_bytes).str(" mapped now, peak ").bytes(s.peak_os_reserved_bytes)
      .str(", ").dec(s.os_map_calls).str(" mmap calls\n");
  m.write(fd);
}

#ifdef STRATA_MALLOC_ALIASES
// libstrata.so: malloc, free, calloc and realloc are the same functions as
// their strata_* counterparts (aliases, one address), so a program's call
// reaches the fast path without a wrapper's jump and a PLT call.  The rest of the family is in
// override_malloc.cpp.
__attribute__((visibility("default"), alias("strata_malloc"))) void* malloc(size_t n) noexcept;
__attribute__((visibility("default"), alias("strata_free"))) void free(void* p) noexcept;
__attribute__((visibility("default"), alias("strata_calloc"))) void* calloc(size_t count, size_t size) noexcept;
__attribute__((visibility("default"), alias("strata_realloc"))) void* realloc(void* p, size_t n) noexcept;
#endif

}  // extern "C"
