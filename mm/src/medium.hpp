// strata — the medium tier's structures and entry points: blocks of up to
// kMaxMediumSize bytes carved from 1.25 MiB pools with boundary tags, 1,024
// bins per arena, neighbours coalesced on free (FastMM).  The code is in
// medium.cpp; a thread's cache of freed medium blocks is in thread_cache.hpp.
// Layer: tier (below the heap; calls only mapping.hpp, chunk_map, lock, os).
#pragma once
#include <strata/strata.h>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "check.hpp"
#include "config.hpp"
#include "walk.hpp"

namespace strata::detail {

struct Heap;
struct Block;

// Every medium block starts with a 16-byte boundary tag; blocks tile the pool
// data area exactly, ending with an in-use sentinel tag of size 0.
// Invariants (arena lock held; validate_pool_locked at debug level 3):
//   [M1] size_flags & kSizeMask is a multiple of 256, > 0 except the sentinel
//   [M2] no two free blocks are adjacent (coalesced on free)
//   [M3] kPrevFree is set iff the previous block is free; then prev_size is its size
//   [M4] starts bit g is set iff an in-use block starts at granule g
//   [M5] an in-use block's size is also in the prev_size of the tag after it
//        (unused there while the block is in use): the boundary-tag pair
//        a free checks before it believes the size (medium_size_paired)
struct MediumTag {
  std::size_t prev_size;   // size of the previous block when it is free
  std::size_t size_flags;  // block size (incl. tag) | kInUse | kPrevFree
};
inline constexpr std::size_t kInUse = 1, kPrevFree = 2, kSizeMask = ~std::size_t{255};

// A live medium block's size, read without the tier lock: the size bits do
// not change while the block is live; the flag bits next to them may.
__attribute__((no_sanitize("thread"))) inline std::size_t medium_block_size_racy(const void* p) noexcept {
  const volatile std::size_t* sf =
      &reinterpret_cast<const MediumTag*>(static_cast<const char*>(p) - kMediumHeaderSize)->size_flags;
  return *sf & kSizeMask;
}

struct MediumFree {
  MediumTag tag;
  MediumFree* next;  // bin list
  MediumFree* prev;
};

struct MediumTier;
inline constexpr std::uint64_t kMediumPoolMagic = 0x5354524d504f4f4cull;  // "STRMPOOL"
struct MediumPool {
  std::uint64_t magic;
  Heap* heap;
  MediumTier* arena;  // the arena whose lock guards this pool
  MediumPool* next;
  MediumPool* prev;
  std::size_t used_blocks;
  std::size_t used_bytes;
  char* clean_from;  // page-aligned: the pages from here to the sentinel's page were never touched or were given back
  std::size_t top_keep;  // bytes of a free run at the end kept dirty (kMediumTopKeep, doubled when trimmed pages are reused)
  bool trimmed;          // pages were given back since the last time the top was written again
  std::uint64_t trim_since_ms;  // os::now_ms() since its free top has been over the trim threshold; 0: it is not
  std::uint64_t starts[(kMediumPoolGranules + 63) / 64];
};
static_assert(sizeof(MediumPool) <= kMediumDataOffset);
// The sentinel's granule has a bit in `starts` (never set): medium_extent_valid reads e's word.
static_assert(kMediumPoolGranules % 64 != 0);
// A pool's blocks tile [medium_data_begin, medium_data_end); the sentinel
// tag sits at medium_data_end.
inline char* medium_data_begin(MediumPool* pool) noexcept { return reinterpret_cast<char*>(pool) + kMediumDataOffset; }
inline char* medium_data_end(MediumPool* pool) noexcept {
  return medium_data_begin(pool) + kMediumPoolGranules * kMediumGranule;
}

// One medium arena: its own lock, pools and bins.  A heap has kMediumArenas
// of them; a thread allocates from arena (thread slot % arenas in use), a
// block goes back to the arena of its pool (MediumPool::arena), so threads
// allocating medium blocks at the same time do not share a lock.
struct alignas(64) MediumTier {
  // Its lock is Heap::medium_locks[its index] (medium_lock()), with the
  // heap's other locks.
  MediumPool* pools = nullptr;
  std::size_t pool_count = 0;
  std::size_t empty_pools = 0;
  std::size_t blocks = 0;  // in use
  std::size_t bytes = 0;   // in use (block sizes incl. tag)
  std::uint64_t trim_due_ms = 0;  // earliest trim_since_ms + trim delay of its pools; 0: none waits
  // Allocations and frees so far (written under the lock, read without it),
  // and what the background purge saw last time and did (its own fields):
  // an arena whose count stands still between two of its calls is idle, and
  // has all its free memory given back once (medium_purge_due).
  std::uint64_t changes = 0;
  std::uint64_t changes_seen = 0;
  bool idle_trimmed = false;
  std::uint32_t group_mask = 0;
  // A bin link found forged (a use after free wrote into a free block's
  // links): the first such address since the lock was taken, reported by
  // the caller once the lock is released (medium.cpp, take_corruption).
  const void* corrupt_at = nullptr;
  std::uint32_t bin_mask[kMediumBins / 32] = {};
  MediumFree* bins[kMediumBins] = {};
};

// How long a medium pool's free top waits before it is given back: the
// trim-delay option (kMediumTrimDelayMs by default), set at start-up.
extern std::atomic<std::uint64_t> g_medium_trim_delay_ms;

// ---- medium.cpp ----
void* medium_alloc(Heap* h, std::size_t size, std::size_t align) noexcept;
// Validates p as the start of a live block of `pool`: STRATA_ERROR_NONE, or
// the error (interior pointer, double free, corruption).
strata_error_kind medium_check(MediumPool* pool, const void* p) noexcept;
// Frees p after validating it under the tier lock; returns the error if invalid.
strata_error_kind medium_free(Heap* h, MediumPool* pool, void* p) noexcept;
// Resizes p's block to new_size bytes in place (a shrink always works; a
// growth takes the free block after it, up to `want` usable bytes (rounded
// down to granules) when it is that big, at least new_size); false if it
// cannot grow.
bool medium_resize_in_place(Heap* h, MediumPool* pool, void* p, std::size_t new_size, std::size_t want = 0) noexcept;
// A live block's usable bytes, read without the lock: its size is read once
// and believed only if the tag after the block repeats it (0 otherwise: a
// tag overwritten since it was checked).
std::size_t medium_usable(MediumPool* pool, const void* p) noexcept;
// Frees a chain of medium blocks of live starts (linked through Block::next)
// under one lock; returns those whose tags are not to be believed
// (check_locked), not freed, for the caller to report.
Block* medium_free_chain(Heap* h, Block* head) noexcept;
// The granule index of a byte offset into a pool's data, rotated rather
// than shifted: an offset that is not a whole number of granules carries its
// low bits into the top ones (as does a negative one), so one compare,
// `< kMediumPoolGranules`, tests both that the offset is at a granule and
// that it lies inside the data.
STRATA_FAST_PATH std::size_t medium_granule_index(std::uintptr_t off) noexcept {
  return std::rotr(off, std::countr_zero(kMediumGranule));
}
// Unlocked check that p is the start of a block the medium tier considers in
// use (a racy read of the start bitmap: only for fast decisions; anything
// doubtful goes to the locked path).
STRATA_RACY_FAST_PATH bool medium_is_live_start(MediumPool* pool, const void* p) noexcept {
  // data + kMediumHeaderSize is 4 KiB aligned, so user pointers sit at whole granules from it.
  std::uintptr_t off = reinterpret_cast<std::uintptr_t>(p) - (reinterpret_cast<std::uintptr_t>(pool) + kMediumDataOffset +
                                                              kMediumHeaderSize);
  std::size_t g = medium_granule_index(off);
  if (g >= kMediumPoolGranules) return false;
  const volatile std::uint64_t* w = &pool->starts[g / 64];
  return (*w >> (g % 64)) & 1;
}
// The pair check ([M5]): the tag's size `size` of the live block at `block`
// lies inside the pool and is repeated at the block's end.  Two loads and a
// few compares: what the unlocked paths (the thread cache, realloc in place)
// check before they believe a size; a size forged in one word fails, and the
// locked path (medium_extent_valid as well) decides.
STRATA_FAST_PATH bool medium_size_paired(MediumPool* pool, const char* block, std::size_t size) noexcept {
  auto off = static_cast<std::size_t>(block - medium_data_begin(pool));
  constexpr std::size_t kTotal = kMediumPoolGranules * kMediumGranule;
  // Whole granules, at least one (size - 1 wraps for 0), up to the pool's end.
  if ((size & (kMediumGranule - 1)) || size - 1 >= kTotal - off) return false;
  const auto* end = reinterpret_cast<const MediumTag*>(block + size);
  return __atomic_load_n(&end->prev_size, __ATOMIC_RELAXED) == size;
}

// A word of the start bitmap, read under the arena lock (which every writer
// of the bitmap holds): a plain load, so that the checks of one locked
// operation that read the same word share the load.
inline std::uint64_t medium_starts_word(const MediumPool* pool, std::size_t w) noexcept { return pool->starts[w]; }
// Whether an in-use block starts at granule g (the same plain load).
inline bool medium_start_bit(const MediumPool* pool, std::size_t g) noexcept {
  return (medium_starts_word(pool, g / 64) >> (g % 64)) & 1;
}
// The size of the free block at data offset `off` if its tags can be
// believed (its size ends at a tag that repeats it and says "in use, the
// block before is free": an in-use start or the pool's sentinel), else 0;
// its tag is read once.  The free-neighbour case of medium_extent_valid (out
// of line: the common case of an in-use neighbour stays small enough to
// inline).
std::size_t medium_free_run(MediumPool* pool, std::size_t off) noexcept;
// Whether the tag of the live block starting at `block` tells its true size
// (`size`, read by the caller) — checked against the pool's start bitmap,
// which lives in the pool header away from every block a program can write:
// whole granules inside the pool, no other in-use block starting inside it,
// and at its end the sentinel, the start of an in-use block, or a free block
// whose size its own tag and the tag after it agree on, followed by the
// sentinel or an in-use start.  A size made larger (over a live neighbour or
// into a free one), or garbage, fails.  Reads the bitmap words of the
// block's own extent (one for most blocks) and one or two tags.  Called
// under the arena lock only (tags_valid_locked), where it is exact.
inline bool medium_extent_valid(MediumPool* pool, const char* block, std::size_t size) noexcept {
  auto off = static_cast<std::size_t>(block - medium_data_begin(pool));
  constexpr std::size_t kTotal = kMediumPoolGranules * kMediumGranule;
  if (size < kMediumGranule || (size & (kMediumGranule - 1)) || size > kTotal - off) return false;
  // No in-use start in granules (g0, e), then what starts at e.
  const std::size_t g0 = off / kMediumGranule, n = size / kMediumGranule, e = g0 + n;
  bool next_start;
  if (n < 64) {
    // A block under 16 KiB: its granules and the one after it lie in one
    // bitmap word or two, taken as one window; one mask tests the inside,
    // one bit the end.  (The second word is at most e's: inside `starts`.)
    const std::size_t s = g0 % 64;
    std::uint64_t bits = medium_starts_word(pool, g0 / 64) >> s;
    if (s + n >= 64) bits |= medium_starts_word(pool, g0 / 64 + 1) << (64 - s);
    if (bits & ((std::uint64_t{1} << n) - 2)) return false;
    next_start = (bits >> n) & 1;
  } else {
    for (std::size_t g = g0 + 1; g < e;) {
      std::uint64_t bits = medium_starts_word(pool, g / 64) >> (g % 64);
      const std::size_t k = 64 - g % 64;
      if (e - g < k) bits &= (std::uint64_t{1} << (e - g)) - 1;
      if (bits) return false;
      g += k;
    }
    next_start = medium_start_bit(pool, e);
  }
  // The pool's sentinel or an in-use start: its tag must say "in use" (an
  // overflow into the sentinel would otherwise make the free merge with it).
  if (e == kMediumPoolGranules || next_start)
    return __atomic_load_n(&reinterpret_cast<const MediumTag*>(block + size)->size_flags, __ATOMIC_RELAXED) & kInUse;
  return medium_free_run(pool, off + size) != 0;
}
std::size_t medium_trim(Heap* h) noexcept;
// Gives back the pool tops whose trim delay is over (the background purge).
void medium_purge_due(Heap* h) noexcept;  // unmaps empty medium pools and gives back the whole free pages of the others
// Drops every block of h: each pool becomes one free run again (kept
// mapped; its dirty pages are trimmed after the delay).  No thread may use
// the heap meanwhile; thread caches are reset by the caller.
void medium_reset_all(Heap* h) noexcept;
// Unmaps every pool of h and leaves the arenas as freshly constructed.
void medium_release_all(Heap* h) noexcept;
// Calls visit for every block of h's pools (live ones, and free runs too
// when `with_free`), one arena lock at a time; false if visit stopped it.
// A block held in a thread's medium cache is live to the tier: the caller
// tells it apart by its free cookie.
bool medium_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept;
// [M1]-[M4] for every pool of h, the bins against the pools and the arena
// counters: aborts with the invariant's id on a violation.  O(heap).
void medium_validate(Heap* h) noexcept;

}  // namespace strata::detail
