// strata — the heap object: the three tiers, the thread caches and the
// bookkeeping of one heap, and every byte it takes from the OS.
//
// The process heap (g_default_heap, static), a module's private heap (the
// process heap of a copy of strata linked into a module) and an explicit pool
// (strata_pool_t, mapped) are all Heaps.  heap_release returns everything a
// heap holds and leaves it as freshly constructed; heap_destroy is a release
// plus the unmapping of a pool's Heap object itself.
//
// Files: mapping.cpp (maps and accounts a heap's memory: below the tiers),
// heap.cpp (the heap list, create / release / destroy / trim / walk /
// validate: above the tiers).
// Layer: heap (tiers below it, thread_cache beside it, the API above it).
#pragma once
#include <strata/strata.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "check.hpp"
#include "chunk_map.hpp"
#include "config.hpp"
#include "large.hpp"
#include "lock.hpp"
#include "medium.hpp"
#include "size_classes.hpp"
#include "small.hpp"
#include "thread_cache.hpp"

namespace strata::detail {

struct ThreadLocalSlot;  // thread_local.hpp

struct MetaRegion {
  MetaRegion* next;
  std::size_t size;
};

inline constexpr std::uint64_t kHeapMagic = 0x5354524148454150ull;  // "STRAHEAP"

struct alignas(4096) Heap {  // page-aligned: its locks share one page (see below)
  // kHeapMagic in a live pool (heap_create); 0 in the process heap, which is
  // then all zeros and lives in .bss, not in .data (less to map at start-up).
  std::uint64_t magic = 0;
  bool is_pool = false;
  Heap* next = nullptr;  // g_heaps list
  Heap* prev = nullptr;
  // Nested pools (g_heaps_lock): destroying or resetting a heap does the
  // same to its children first.
  Heap* parent = nullptr;
  Heap* children = nullptr;
  Heap* sibling_next = nullptr;
  Heap* sibling_prev = nullptr;
  // Every lock of the heap sits in its first pages (classes, large, the
  // medium arenas', the span store's, meta_lock): fork's handlers write
  // them in both processes after fork, and each page written is a
  // copy-on-write fault (about 11 us on the benchmark VM) in a program that
  // forks a lot (git: about 13 per fork and process with 8 arenas' locks
  // spread over 8 KiB arenas).
  SizeClass classes[kNumClasses];
  LargeTier large;
  Lock medium_locks[kMediumArenas];  // medium_locks[i] guards medium[i]

  SpanStore spans;

  Lock meta_lock;
  MetaRegion* meta_regions = nullptr;
  char* meta_cursor = nullptr;
  char* meta_end = nullptr;
  ThreadCache* free_caches = nullptr;
  ThreadCache* caches = nullptr;
  std::size_t cache_count = 0;
  std::atomic<ThreadCache**> dir[kMaxThreadSlots / kSlotsPerDirPage] = {};
  // Thread-local handles (meta_lock; thread_local.cpp): pages of slots,
  // destroyed slots for reuse, and the number of slots ever made.
  ThreadLocalSlot* tl_slots[kThreadLocalPages] = {};
  ThreadLocalSlot* tl_free = nullptr;
  std::uint32_t tl_count = 0;

  // Arenas beyond g_medium_arena_mask are never used (nor locked at fork).
  MediumTier medium[kMediumArenas];

  std::atomic<std::size_t> os_bytes{0};
  std::atomic<std::size_t> peak_os_bytes{0};
  std::atomic<std::size_t> map_calls{0};
  std::atomic<std::size_t> central_bytes{0};  // bytes handed out by the shared tiers (incl. cached)
  std::atomic<std::size_t> peak_central_bytes{0};
};
static_assert(offsetof(Heap, meta_lock) + sizeof(Lock) <= 4096, "a heap's locks share its first page");

extern std::atomic<std::uintptr_t> g_secret;  // per-process random, for free cookies; set once, before any block exists
inline std::uintptr_t secret() noexcept { return g_secret.load(std::memory_order_relaxed); }

// The size of b, found on a thread's medium cache list, if b is a block that
// was put there: the chunk map says medium (so reading the pool's header is
// safe), it is a live start of that pool (the start bitmap), it carries the
// free cookie only strata can compute, and its tag's size is paired ([M5]).
// 0 otherwise: a link a use-after-free write forged (to the stack, say), or
// a tag overwritten while the block waited, fails before it is followed or
// handed out.
// The link half of it, for a flush (whose locked free checks the tags):
// whether b is a live start of a medium pool carrying its free cookie.
__attribute__((no_sanitize("thread"))) STRATA_FAST_PATH bool medium_cached_link_ok(const Block* b) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(b);
  std::uintptr_t e = chunk_map::lookup_unchecked(a);
  return chunk_map::kind_of(e) == ChunkKind::kMedium &&
         medium_is_live_start(chunk_map::owner_of<MediumPool>(e), b) && b->cookie == (a ^ secret());
}
__attribute__((no_sanitize("thread"))) STRATA_FAST_PATH std::size_t medium_cached_size(const Block* b) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(b);
  // Unchecked: an address above 48 bits reads another chunk's entry, whose
  // pool's range check (medium_is_live_start) it then fails.
  std::uintptr_t e = chunk_map::lookup_unchecked(a);
  if (chunk_map::kind_of(e) != ChunkKind::kMedium) return 0;
  auto* pool = chunk_map::owner_of<MediumPool>(e);
  if (!medium_is_live_start(pool, b) || b->cookie != (a ^ secret())) return 0;
  std::size_t size = medium_block_size_racy(b);
  return medium_size_paired(pool, reinterpret_cast<const char*>(b) - kMediumHeaderSize, size) ? size : 0;
}
void secret_init() noexcept;  // idempotent; called before strata maps anything

// Medium arenas in use, minus one: the number of CPUs rounded down to a power
// of two, at most kMediumArenas (more arenas than threads that can run at
// once only spread memory over more pools).  Set once at process start.
extern std::atomic<std::uint32_t> g_medium_arena_mask;
// The medium arena the calling thread allocates from.
inline MediumTier& medium_arena_for(Heap* h) noexcept {
  std::uint32_t s = t_slot;
  return h->medium[s ? (s - 1) & g_medium_arena_mask.load(std::memory_order_relaxed) : 0];
}
inline Lock& medium_lock(Heap* h, const MediumTier& m) noexcept { return h->medium_locks[&m - h->medium]; }

// ---- mapping.cpp: a heap's memory and its accounting (below the tiers) ----
void* heap_map(Heap* h, std::size_t size, ChunkKind kind, const void* owner_or_null, const char* name) noexcept;
void heap_unmap(Heap* h, void* base, std::size_t size) noexcept;
// Bytes handed out by (delta > 0) or returned to the shared tiers: batched in
// the calling thread's cache of h (kCentralAccountSlack), then counted.
void heap_account_central(Heap* h, std::ptrdiff_t delta) noexcept;
// Counts delta in h's shared count of bytes handed out, and its peak.
void heap_count_central(Heap* h, std::ptrdiff_t delta) noexcept;
void heap_account_os(Heap* h, std::ptrdiff_t delta) noexcept;  // bytes mapped for h, and their peak
// Bump allocation of bookkeeping (thread caches, slot directory pages) from
// h's metadata regions, 64-byte aligned (meta_lock held); null when the OS
// refuses.  Never freed one by one: heap_release unmaps the regions.
void* meta_alloc_locked(Heap* h, std::size_t size) noexcept;

// ---- heap.cpp: the heap list and whole-heap operations (above the tiers) ----
extern Lock g_heaps_lock;  // rank 1: the heap list, thread slots
extern Heap* g_heaps;      // every live heap of this copy (g_heaps_lock)
void heap_link_locked(Heap* h) noexcept;
void heap_unlink_locked(Heap* h) noexcept;
// A new pool; with a parent, a child of that pool (destroyed and reset with it).
Heap* heap_create(Heap* parent = nullptr) noexcept;
// Drops every block of a pool and of its children (children first) in one
// call: spans, medium pools and large mappings stay mapped for reuse (within
// the usual decay and budgets), every thread's cache of it is emptied.  No
// thread may use the pool or its blocks meanwhile.  O(mappings).
void heap_reset(Heap* h) noexcept;
// Returns every mapping h holds (blocks of all tiers, kept and cached
// memory, thread caches, bookkeeping) and leaves h as freshly constructed,
// still on the heap list.  No thread may use h meanwhile or after, unless it
// allocates anew; threads' caches of h are forgotten, not flushed.
void heap_release(Heap* h) noexcept;
// A pool: its children destroyed first, then off the heap list (and its
// parent's children), released, its Heap object unmapped.  O(mappings).
void heap_destroy(Heap* h) noexcept;
std::size_t heap_trim(Heap* h) noexcept;  // gives back free memory (strata_heap_trim)
// Calls visit for every block of h (with_free: free blocks too), tier by
// tier, each under its own locks; returns false if visit returned false.
// Exact when no other thread allocates or frees in h meanwhile.  visit must
// not allocate from or free into h.
bool heap_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept;
// Every tier's invariants ([S], [M], [L] ids) and the thread caches' bins
// (blocks of h, each carrying its free cookie): aborts with the broken
// invariant's id.  O(heap); run at debug level 3 and by tests.
void heap_validate(Heap* h) noexcept;
// What a release of this whole copy found and gave back.
struct ReleaseReport {
  std::size_t heaps;        // heaps released (the process heap and every pool)
  std::size_t live_blocks;  // blocks still live at the release (leaks, or the owner's promise)
  std::size_t live_bytes;   // their usable bytes
  std::size_t os_bytes;     // bytes unmapped (the heaps' mappings and the chunk map's leaves)
};
// Releases every heap of this copy of strata: pools are destroyed, the
// process heap released (usable again afterwards), then the chunk map's
// leaves unmapped.  The copy's promise: no thread uses any of its heaps
// meanwhile (strata_release_all, or the unload of the module).
ReleaseReport heap_release_all() noexcept;
// Whether h has handed out memory that is still live (blocks in thread
// caches do not count).  Exact when no other thread uses h meanwhile.
bool heap_has_live_blocks(Heap* h) noexcept;

// The heap a pool handle names; null names the process heap.
inline Heap* heap_or_default(strata_pool_t* pool) noexcept {
  return pool ? reinterpret_cast<Heap*>(pool) : &g_default_heap;
}

inline std::size_t align_up(std::size_t v, std::size_t a) noexcept { return (v + a - 1) & ~(a - 1); }

}  // namespace strata::detail
