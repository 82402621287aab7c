// strata — the heap object and everything it owns.
//
// A Heap owns every byte it takes from the OS: small spans, medium pools,
// large blocks, its thread caches and its bookkeeping.  The process heap
// (g_default_heap, static), a module's private heap and an explicit pool
// (strata_pool_t, mapped) are all Heaps; destroying one unmaps everything it
// owns (heap_destroy).  Invariants are written above each structure.
//
// Layer: heap.hpp is included by small/medium/large/heap/api .cpp files.
#pragma once
#include <strata/strata.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "check.hpp"
#include "chunk_map.hpp"
#include "config.hpp"
#include "lock.hpp"
#include "size_classes.hpp"

namespace strata::detail {

struct Heap;

// A free small block.  word 0 links it; word 1 holds the free cookie
// (address ^ g_secret) while the block is free and 0 once handed out, which
// makes a double free detectable in O(1) without touching any other memory.
struct Block {
  Block* next;
  std::uintptr_t cookie;
};

// Relaxed atomic counters written by one owner and read by reporters.
struct Counter32 {
  std::atomic<std::uint32_t> v{0};
  std::uint32_t get() const noexcept { return v.load(std::memory_order_relaxed); }
  void set(std::uint32_t x) noexcept { v.store(x, std::memory_order_relaxed); }
};

// ---- small tier --------------------------------------------------------
struct ThreadCache;
struct LargeBlock;
struct MediumTier;
// A span: one 64 KiB chunk of one size class, header at offset 0, blocks from
// kSpanHeaderSize on.  Invariants (under its class lock):
//   [S1] used == blocks carved - |free_list| - (nothing else)     O(n)
//   [S2] in_partial == (free_list != null || carved < capacity); the list is
//        its owner's own_partial[class] if it has an owner, else the class's
//        partial list                                              O(1)
//   [S3] carved <= capacity; carved only grows while the span is assigned
//   [S4] owner != null iff the span is on owner->owned[class]
// Ownership: a thread cache that refills from a span owns it (claims it) until
// the span empties or the thread exits.  Only the owner's bin takes blocks of
// the span when they are freed; another thread's free sends them back to the
// span (through that thread's foreign bin and the class lock), so a thread
// never reuses a block next to blocks other threads write (passive false
// sharing, Hoard's cache-scratch) and a refill gives a thread blocks of its
// own spans.
struct Span {
  std::atomic<ThreadCache*> owner;     // the owning thread cache or null; read by the free fast path
  Heap* heap;                          // the heap it belongs to
  std::uintptr_t secret;               // == g_secret: the free cookie of block b is b ^ secret
  std::uint32_t bin_offset;            // offsetof(ThreadCache, bins[size_class]): the fast paths' bin
  std::uint32_t block_size;            // bytes per block
  std::uint32_t recip;                 // class_reciprocal(size_class)
  std::atomic<std::uint32_t> carved;   // blocks ever handed out of the bump area
  std::uint32_t capacity;              // blocks_per_span(size_class)
  std::uint8_t size_class;
  bool in_partial;                     // on its class's partial list
  bool assigned;                       // false while on the heap's free-span list
  Counter32 used;                      // blocks out of the span (in caches or in use)
  Block* free_list;                    // blocks returned to the span (carved - used of them, [S1])
  Block* free_tail;                    // its last block: a refill takes the whole list without walking it
  Span* next;                          // partial list (class or owner) / heap free-span list (newest first)
  Span* prev;
  Span* own_next;                      // owner->owned[size_class] (class lock)
  Span* own_prev;
  std::uint64_t freed_ms;              // os::now_ms() when it went on the free-span list
  Span* all_next;                      // every span of the heap (span_lock)
  Span* all_prev;
};
static_assert(sizeof(Span) <= kSpanHeaderSize);

struct alignas(64) SizeClass {
  Lock lock;
  Span* partial = nullptr;               // spans without an owner that have a free or uncarved block
  std::atomic<Block*> pending{nullptr};  // blocks freed while the lock was busy (FastMM5)
  std::uint32_t span_count = 0;          // spans assigned to this class
};

// One size class of a thread cache.  `room` counts down as blocks are freed
// into the bin (count == max - room); the owning thread alone writes it, a
// reporter reads it racily (see bin_count).
struct CacheBin {
  Block* head;
  std::int32_t room;
  std::int32_t max;
};
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

// A thread's cache of free small blocks for one heap.  Owned by the heap
// (carved from its metadata), reached by the thread through t_cache (process
// heap) or the heap's slot directory (pools).
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
  LargeBlock* parked_large;
  std::size_t parked_large_bytes;  // its mapped bytes (0 when none): a report reads this, never the block
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
};


// ---- medium tier -------------------------------------------------------
// Every medium block starts with a 16-byte boundary tag; blocks tile the pool
// data area exactly, ending with an in-use sentinel tag of size 0.
//   [M1] size_flags & kSizeMask is a multiple of 256, > 0 except the sentinel
//   [M2] no two free blocks are adjacent (coalesced on free)
//   [M3] kPrevFree is set iff the previous block is free; then prev_size is its size
//   [M4] starts bit g is set iff an in-use block starts at granule g
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

// One medium arena: its own lock, pools and bins.  A heap has kMediumArenas
// of them; a thread allocates from arena (thread slot % kMediumArenas), a
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
  std::uint64_t trim_due_ms = 0;  // earliest trim_since_ms + kMediumTrimDelayMs of its pools; 0: none waits
  std::uint32_t group_mask = 0;
  std::uint32_t bin_mask[kMediumBins / 32] = {};
  MediumFree* bins[kMediumBins] = {};
};

// ---- large tier --------------------------------------------------------
inline constexpr std::uint64_t kLargeMagic = 0x5354524c41524745ull;  // "STRLARGE"
inline constexpr std::uint64_t kLargeCachedMagic = 0x5354524c43414348ull;  // "STRLCACH": freed, kept mapped
inline constexpr std::uint64_t kLargeParkedMagic = 0x5354524c5041524bull;  // "STRLPARK": freed, parked in a thread cache
struct LargeBlock {
  std::uint64_t magic;   // read without the tier's lock: use large_magic / set_large_magic
  Heap* heap;
  LargeBlock* next;
  LargeBlock* prev;
  char* base;            // start of the mapping (64 KiB aligned); the header lies inside it
  std::size_t map_size;  // bytes mapped, multiple of 64 KiB
  void* user;            // the pointer handed out; the header sits just below it
};
static_assert(sizeof(LargeBlock) <= kLargeHeaderSize);

struct LargeTier {
  Lock lock;
  LargeBlock* blocks = nullptr;
  std::size_t count = 0;
  std::size_t bytes = 0;         // mapped bytes of live large blocks
  LargeBlock* cached = nullptr;  // freed blocks kept mapped for reuse (magic kLargeCachedMagic)
  std::size_t cached_count = 0;
  std::size_t cached_bytes = 0;
};

// ---- the heap ----------------------------------------------------------
struct MetaRegion {
  MetaRegion* next;
  std::size_t size;
};

inline constexpr std::uint64_t kHeapMagic = 0x5354524148454150ull;  // "STRAHEAP"
inline constexpr unsigned kSlotsPerDirPage = 256;
inline constexpr unsigned kMaxThreadSlots = 65536;

struct alignas(4096) Heap {  // page-aligned: its locks share one page (see below)
  // kHeapMagic in a live pool (heap_create); 0 in the process heap, which is
  // then all zeros and lives in .bss, not in .data (less to map at start-up).
  std::uint64_t magic = 0;
  bool is_pool = false;
  Heap* next = nullptr;  // g_heaps list
  Heap* prev = nullptr;
  // Every lock of the heap sits in its first pages (classes, large, the
  // medium arenas', span_lock, meta_lock): fork's handlers write
  // them in both processes after fork, and each page written is a
  // copy-on-write fault (about 11 us on the benchmark VM) in a program that
  // forks a lot (git: about 13 per fork and process with 8 arenas' locks
  // spread over 8 KiB arenas).
  SizeClass classes[kNumClasses];
  LargeTier large;
  Lock medium_locks[kMediumArenas];  // medium_locks[i] guards medium[i]

  Lock span_lock;
  Span* all_spans = nullptr;
  Span* free_spans = nullptr;       // empty spans, newest first (doubly linked)
  Span* free_spans_tail = nullptr;  // the oldest empty span
  std::uint64_t span_purge_ms = 0;  // os::now_ms() of the last purge of old free spans
  char* fresh_spans = nullptr;      // [fresh_spans, fresh_spans_end): the never-used rest of the
  char* fresh_spans_end = nullptr;  //   last region mapped for spans (chunk map: none)
  unsigned span_regions = 0;        // regions mapped for spans so far (their size doubles)
  std::size_t free_span_count = 0;
  std::size_t span_count = 0;

  Lock meta_lock;
  MetaRegion* meta_regions = nullptr;
  char* meta_cursor = nullptr;
  char* meta_end = nullptr;
  ThreadCache* free_caches = nullptr;
  ThreadCache* caches = nullptr;
  std::size_t cache_count = 0;
  std::atomic<ThreadCache**> dir[kMaxThreadSlots / kSlotsPerDirPage] = {};

  // Arenas beyond g_medium_arena_mask are never used (nor locked at fork).
  MediumTier medium[kMediumArenas];

  std::atomic<std::size_t> os_bytes{0};
  std::atomic<std::size_t> peak_os_bytes{0};
  std::atomic<std::size_t> map_calls{0};
  std::atomic<std::size_t> central_bytes{0};  // bytes handed out by the shared tiers (incl. cached)
  std::atomic<std::size_t> peak_central_bytes{0};
};

extern Heap g_default_heap;
extern ThreadCache g_empty_cache;  // all bins empty, heap == nullptr: forces the slow path
extern std::atomic<std::uintptr_t> g_secret;  // per-process random, for free cookies; set once, before any block exists
inline std::uintptr_t secret() noexcept { return g_secret.load(std::memory_order_relaxed); }
void secret_init() noexcept;  // idempotent; called before strata maps anything

extern __thread ThreadCache* t_cache;  // the process heap's cache of this thread
extern __thread std::uint32_t t_slot;  // this thread's slot + 1, 0 = none yet

// Medium arenas in use, minus one: the number of CPUs rounded down to a power
// of two, at most kMediumArenas (more arenas than threads that can run at
// once only spread memory over more pools).  Set once at process start.
extern std::atomic<std::uint32_t> g_medium_arena_mask;
// The medium arena the calling thread allocates from.
inline MediumTier& medium_arena_for(Heap* h) noexcept {
  std::uint32_t s = t_slot;
  return h->medium[s ? (s - 1) & g_medium_arena_mask.load(std::memory_order_relaxed) : 0];
}

// How long a medium pool's free top waits before it is given back:
// kMediumTrimDelayMs, or STRATA_TRIM_DELAY_MS from the environment (read once
// at process start; 0 gives back at once, as glibc does).
extern std::atomic<std::uint64_t> g_medium_trim_delay_ms;

static_assert(offsetof(Heap, meta_lock) + sizeof(Lock) <= 4096, "a heap's locks share its first page");
inline Lock& medium_lock(Heap* h, const MediumTier& m) noexcept { return h->medium_locks[&m - h->medium]; }

// ---- heap.cpp ----
void ensure_process_init() noexcept;
ThreadCache* cache_for(Heap* h) noexcept;          // the calling thread's cache of h, created on demand; may be null
ThreadCache* cache_lookup(Heap* h) noexcept;       // existing cache or null
Heap* heap_create() noexcept;
void heap_destroy(Heap* h) noexcept;
void* heap_map(Heap* h, std::size_t size, ChunkKind kind, const void* owner_or_null, const char* name) noexcept;
void heap_unmap(Heap* h, void* base, std::size_t size) noexcept;
// Bytes handed out by (delta > 0) or returned to the shared tiers: batched in
// the calling thread's cache of h (kCentralAccountSlack), then counted.
void heap_account_central(Heap* h, std::ptrdiff_t delta) noexcept;
void heap_account_os(Heap* h, std::ptrdiff_t delta) noexcept;  // bytes mapped for h, and their peak
void cache_flush_all(ThreadCache* tc) noexcept;
// Gives every medium block a thread cache holds back to its arena.
void medium_cache_flush(ThreadCache* tc) noexcept;

// ---- small.cpp ----
void* small_alloc_slow(Heap* h, unsigned c) noexcept;        // refill cache or allocate from the class directly
void small_free_central(Heap* h, Block* b, unsigned c) noexcept;
void cache_overflow(ThreadCache* tc, unsigned c) noexcept;
void small_free_foreign(ThreadCache* tc, unsigned c, Block* b, std::uintptr_t cookie) noexcept;  // b's span is not tc's
// Gives tc's small blocks (own and foreign bins) back to their spans, then
// every span tc owns to its class.
void small_flush_cache(ThreadCache* tc) noexcept;
void small_return_chain(Heap* h, unsigned c, Block* head, Block* tail, std::uint32_t n) noexcept;
void small_release_all(Heap* h) noexcept;
std::size_t small_trim(Heap* h) noexcept;  // unmaps the heap's free spans
void small_reset_locks(Heap* h, bool lock_them) noexcept;

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
std::size_t medium_usable(const void* p) noexcept;
void medium_release_all(Heap* h) noexcept;
// Frees a chain of validated medium blocks (linked through Block::next) under one lock.
void medium_free_chain(Heap* h, Block* head) noexcept;
// Unlocked check that p is the start of a block the medium tier considers in
// use (a racy read of the start bitmap: only for fast decisions; anything
// doubtful goes to the locked path).
__attribute__((no_sanitize("thread"))) inline bool medium_is_live_start(MediumPool* pool, const void* p) noexcept {
  // data + kMediumHeaderSize is 4 KiB aligned, so user pointers sit at whole granules from it.
  std::uintptr_t off = reinterpret_cast<std::uintptr_t>(p) - (reinterpret_cast<std::uintptr_t>(pool) + kMediumDataOffset +
                                                              kMediumHeaderSize);
  if (off >= kMediumPoolGranules * kMediumGranule || (off & (kMediumGranule - 1))) return false;
  std::size_t g = off / kMediumGranule;
  const volatile std::uint64_t* w = &pool->starts[g / 64];
  return (*w >> (g % 64)) & 1;
}
std::size_t medium_trim(Heap* h) noexcept;  // unmaps empty medium pools and gives back the whole free pages of the others

// ---- large.cpp ----
// A block of at least `size` bytes aligned to `align`.  With use_cache, a
// kept freed mapping may be reused (its contents are then not zero).
void* large_alloc(Heap* h, std::size_t size, std::size_t align, bool use_cache = true) noexcept;
std::size_t large_trim(Heap* h) noexcept;  // unmaps the kept freed mappings
void large_free(Heap* h, LargeBlock* lb) noexcept;
// Resizes in place (mremap without moving); true on success.
bool large_resize_in_place(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept;
// Moves the block to a new mapping of at least new_size usable bytes without
// copying (mremap); returns the new user pointer or null.
void* large_move(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept;
inline std::size_t large_usable(const LargeBlock* lb) noexcept {
  return static_cast<std::size_t>(lb->base + lb->map_size - static_cast<char*>(lb->user));
}
void large_release_all(Heap* h) noexcept;
// A block's magic, read and written as a relaxed atomic: parking changes a
// live block's magic without the tier's lock, while another thread may read
// it (a free's classification, a neighbour's merge check under the lock).
inline std::uint64_t large_magic(const LargeBlock* lb) noexcept {
  return std::atomic_ref<std::uint64_t>(const_cast<LargeBlock*>(lb)->magic).load(std::memory_order_relaxed);
}
inline void set_large_magic(LargeBlock* lb, std::uint64_t m) noexcept {
  std::atomic_ref<std::uint64_t>(lb->magic).store(m, std::memory_order_relaxed);
}
// Parks lb, a live block of tc's heap that the thread frees, in tc (the
// block parked before goes to large_free); false if lb cannot be parked
// (too big, or its header is not at its mapping's start).
bool large_park(ThreadCache* tc, LargeBlock* lb) noexcept;
// Gives tc's parked block, if any, to large_free (cache flush).
void large_unpark(ThreadCache* tc) noexcept;

inline std::size_t align_up(std::size_t v, std::size_t a) noexcept { return (v + a - 1) & ~(a - 1); }

}  // namespace strata::detail
