// strata — the large tier's structures and entry points: one mapping per
// block, 64 KiB granular, grown and shrunk in place with mremap; freed
// mappings kept for reuse (merged with kept neighbours) and a thread's last
// freed block parked in its cache.  The code is in large.cpp.
// Layer: tier (below the heap; calls only mapping.hpp, chunk_map, lock, os).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "check.hpp"
#include "chunk_map.hpp"
#include "config.hpp"
#include "walk.hpp"
#include "lock.hpp"

namespace strata::detail {

struct Heap;
struct ThreadCache;

inline constexpr std::uint64_t kLargeMagic = 0x5354524c41524745ull;        // "STRLARGE"
inline constexpr std::uint64_t kLargeCachedMagic = 0x5354524c43414348ull;  // "STRLCACH": freed, kept mapped
inline constexpr std::uint64_t kLargeParkedMagic = 0x5354524c5041524bull;  // "STRLPARK": freed, parked in a thread cache
// The header sits just below the user pointer, inside the mapping.
// Invariants (tier lock held; large_validate):
//   [L1] every block on `blocks` has magic kLargeMagic or kLargeParkedMagic,
//        every block on `cached` kLargeCachedMagic; heap == the tier's heap
//   [L2] the block's index in the chunk map (chunk_map::Extent: O(log n)
//        entries) is written: its anchors -- first and last chunk, the
//        chunks of its header and user pointer -- name it, interior marks
//        cover the chunks between them; the chunk after it does not name it
//   [L3] count/bytes and cached_count/cached_bytes are the lists' sums
struct LargeBlock {
  std::uint64_t magic;   // read without the tier's lock: use large_magic / set_large_magic
  Heap* heap;            // read by a neighbouring heap's merge check: use large_heap / set_large_heap
  LargeBlock* next;
  LargeBlock* prev;
  char* base;            // start of the mapping (64 KiB aligned); the header lies inside it
  std::size_t map_size;  // bytes mapped, multiple of 64 KiB
  void* user;            // the pointer handed out; the header sits just below it
  std::size_t requested; // live: the size last asked for (large_set_requested), for the reports only;
                         // kept: os::now_ms() when it was kept (large_purge)
};
static_assert(sizeof(LargeBlock) <= kLargeHeaderSize);

struct LargeTier {
  Lock lock;
  // A header found forged under the lock (its list links): reported by the
  // guard that releases the lock (large.cpp's TierGuard), then cleared.
  const void* corrupt = nullptr;
  LargeBlock* blocks = nullptr;
  std::size_t count = 0;
  std::size_t bytes = 0;         // mapped bytes of live large blocks
  LargeBlock* cached = nullptr;  // freed blocks kept mapped for reuse (magic kLargeCachedMagic)
  std::size_t cached_count = 0;
  std::size_t cached_bytes = 0;
};

// A header's list links lie in its mapping, where an underflow of the block
// can reach them: a link is followed only to a header the chunk map names
// (large_next; a forged one ends the walk), and a block leaves its list only
// if its neighbours link back to it (large.cpp).
inline bool large_link_ok(const LargeBlock* x) noexcept {
  return !x || chunk_map::lookup(reinterpret_cast<std::uintptr_t>(x)) == chunk_map::make(x, ChunkKind::kLarge);
}
inline LargeBlock* large_next(const LargeBlock* lb) noexcept { return large_link_ok(lb->next) ? lb->next : nullptr; }

// ---- large.cpp ----
// A block of at least `size` bytes aligned to `align`.  With use_cache, a
// kept freed mapping may be reused (its contents are then not zero).
void* large_alloc(Heap* h, std::size_t size, std::size_t align, bool use_cache = true) noexcept;
std::size_t large_trim(Heap* h) noexcept;  // unmaps the kept freed mappings
// Unmaps the kept mappings kept at least min_age_ms ago (the background purge).
std::size_t large_purge(Heap* h, std::uint64_t min_age_ms) noexcept;
// false: lb's list links were forged (reported as CORRUPTION; the block
// is left mapped and on its list, never handed out again).
// keep false: unmapped at once, never kept for reuse (a thread's exit).
bool large_free(Heap* h, LargeBlock* lb, bool keep = true) noexcept;
// Resizes in place (mremap without moving); true on success.
bool large_resize_in_place(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept;
// Moves the block to a new mapping of at least new_size usable bytes without
// copying (mremap); returns the new user pointer or null.
void* large_move(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept;
inline std::size_t large_usable(const LargeBlock* lb) noexcept {
  return static_cast<std::size_t>(lb->base + lb->map_size - static_cast<char*>(lb->user));
}
// Frees every live (and parked) block of h as large_free does: kept for
// reuse within the tier's budget.  Thread caches must have forgotten their
// parked blocks first.
void large_reset_all(Heap* h) noexcept;
// Unmaps every block and kept mapping of h and leaves the tier as freshly
// constructed (parked blocks are on the live list: they go too).
void large_release_all(Heap* h) noexcept;
// Calls visit for every live block of h (and kept or parked mappings too
// when `with_free`) under the tier lock; false if visit stopped it.
bool large_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept;
// [L1]-[L3]: aborts with the invariant's id on a violation.
void large_validate(Heap* h) noexcept;
// A block's magic, read and written as a relaxed atomic: parking changes a
// live block's magic without the tier's lock, while another thread may read
// it (a free's classification, a neighbour's merge check under the lock).
inline std::uint64_t large_magic(const LargeBlock* lb) noexcept {
  return std::atomic_ref<std::uint64_t>(const_cast<LargeBlock*>(lb)->magic).load(std::memory_order_relaxed);
}
inline void set_large_magic(LargeBlock* lb, std::uint64_t m) noexcept {
  std::atomic_ref<std::uint64_t>(lb->magic).store(m, std::memory_order_relaxed);
}
// A kept block's neighbour may be another heap's, whose lock the merge
// check (make_kept_locked) does not hold: it reads the neighbour's magic and
// heap racily, and the rest of its header only once the heap is its own.
inline Heap* large_heap(const LargeBlock* lb) noexcept { return __atomic_load_n(&lb->heap, __ATOMIC_RELAXED); }
inline void set_large_heap(LargeBlock* lb, Heap* h) noexcept { __atomic_store_n(&lb->heap, h, __ATOMIC_RELAXED); }
// The size the program (or realloc's growth policy) last asked of a live
// block, for the reports: written after the block is linked, read by a
// report under the tier lock.
inline void large_set_requested(void* user, std::size_t size) noexcept {
  auto* lb = reinterpret_cast<LargeBlock*>(static_cast<char*>(user) - kLargeHeaderSize);
  std::atomic_ref<std::size_t>(lb->requested).store(size, std::memory_order_relaxed);
}
inline std::size_t large_requested(const LargeBlock* lb) noexcept {
  return std::atomic_ref<std::size_t>(const_cast<LargeBlock*>(lb)->requested).load(std::memory_order_relaxed);
}
// Parks lb, a live block of tc's heap that the thread frees, in tc (the
// block parked before goes to large_free); false if lb cannot be parked
// (too big, or its header is not at its mapping's start).
bool large_park(ThreadCache* tc, LargeBlock* lb) noexcept;
// Gives tc's parked block, if any, to large_free (cache flush).
// keep false: the parked block is unmapped, not kept (the thread exits).
void large_unpark(ThreadCache* tc, bool keep = true) noexcept;
// The background purge (process heap only: a pool's reset or destroy frees
// its caches' parked blocks itself, with no lock this could take): every
// block parked in a thread's cache since the previous call is taken and
// unmapped.  A thread that idles keeps no parked mapping for long.
void large_reclaim_parked(Heap* h) noexcept;

}  // namespace strata::detail
