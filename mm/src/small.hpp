// strata — the small tier's structures and entry points: blocks of up to
// kMaxSmallSize bytes in 64 KiB spans of one size class, one lock per class.
// The code is in small.cpp; the thread-cache side of it (bins) is in
// thread_cache.hpp, the inline fast paths in fast_path.hpp.
// Layer: tier (below the heap; calls only mapping.hpp, chunk_map, lock, os).
#pragma once
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "check.hpp"
#include "config.hpp"
#include "walk.hpp"
#include "lock.hpp"
#include "size_classes.hpp"

namespace strata::detail {

struct Heap;
struct ThreadCache;

// A free small block (and a medium block in a thread cache).  Word 0 holds
// the free cookie (address ^ g_secret) while the block is free and 0 once
// handed out, which makes a double free detectable in O(1) without touching
// any other memory.  Word 1 links it to the next free block, encoded
// (safe-linking, below).  The link is the second word so that an overflow of
// up to 8 bytes out of the block before (an off-by-one, a stray NUL) lands
// on the cookie, never on a pointer strata follows.
struct Block {
  std::uintptr_t cookie;
  std::uintptr_t link;  // next_of / set_next: the next block ^ g_link_key
};

// ---- safe-linking ----
// A link is stored XORed with g_link_key, a per-process secret (glibc 2.32's
// safe-linking does this with the link's own address, which a program that
// holds the pointer knows; the key here is not in any block).  A link a
// program overwrote decodes to an address of no one's choosing, and every
// decoded link is checked before it is followed: on the fast path, for the
// bits no block address has (above 48 bits, below 16-byte alignment; the
// key's bit 0 is set and its top bytes are neither 0x00 nor 0xff, so a word
// of zero, a small or a small negative number never passes, another with
// probability 1 / (64,516 * 16): mapping.cpp), on the slow paths against the
// chunk map (a carved block of
// the list's class and heap).  A thread cache bin ends at kBinEnd, which
// fails the fast check too: the pop's one test sends both an empty bin and a
// forged link to the slow path, which tells them apart.  Lists of the tiers
// (a span's free list, a class's pending list, a refill's chain) end at null.
// Hidden (also where it is only declared): the fast paths read it straight
// from its address, not through the GOT.  With the STRATA_LINK_ROTATE option
// the stored word is also rotated (config.hpp kLinkRotate), so that an
// overflow of 9 to 13 bytes, which changes only the link's low bytes, always
// fails the fast check instead of 1 time in 16.
extern std::uintptr_t g_link_key __attribute__((visibility("hidden")));  // set once by secret_init, before any block exists
inline constexpr std::uintptr_t kLinkBad = ~((std::uintptr_t{1} << kAddressBits) - 1) | (kMinAlign - 1);
STRATA_FAST_PATH bool link_plausible(std::uintptr_t a) noexcept { return (a & kLinkBad) == 0; }
// The decoded link of b: not yet checked.
// (The rotation only where it is on: GCC does not always fold a rotation by
// 0, which cost the medium pairs 4 instructions.)
STRATA_FAST_PATH std::uintptr_t link_of(const Block* b) noexcept {
  if constexpr (kLinkRotate != 0) return std::rotl(b->link, kLinkRotate) ^ g_link_key;
  else return b->link ^ g_link_key;
}
STRATA_FAST_PATH Block* next_of(const Block* b) noexcept { return reinterpret_cast<Block*>(link_of(b)); }
STRATA_FAST_PATH void set_link(Block* b, std::uintptr_t next) noexcept {
  if constexpr (kLinkRotate != 0) b->link = std::rotr(next ^ g_link_key, kLinkRotate);
  else b->link = next ^ g_link_key;
}
STRATA_FAST_PATH void set_next(Block* b, const Block* next) noexcept { set_link(b, reinterpret_cast<std::uintptr_t>(next)); }

// Whether the block at p (a small block, or a medium block's user pointer)
// carries its free cookie.  Read as a relaxed snapshot: a thread cache pops
// and pushes without a lock while a walk or a validator looks.
__attribute__((no_sanitize("thread"))) inline bool carries_free_cookie(const void* p, std::uintptr_t secret) noexcept {
  return *static_cast<const volatile std::uintptr_t*>(&static_cast<const Block*>(p)->cookie) ==
         (reinterpret_cast<std::uintptr_t>(p) ^ secret);
}

// Relaxed atomic counters written by one owner and read by reporters.
struct Counter32 {
  std::atomic<std::uint32_t> v{0};
  std::uint32_t get() const noexcept { return v.load(std::memory_order_relaxed); }
  void set(std::uint32_t x) noexcept { v.store(x, std::memory_order_relaxed); }
};

// A span: one 64 KiB chunk of one size class, header at offset 0, blocks from
// kSpanHeaderSize on.  Invariants (under its class lock; checked by
// validate_span_locked in small.cpp at debug level 3):
//   [S1] used == blocks carved - |free_list| (blocks in thread caches and on
//        the class's pending list count as used)                   O(n)
//   [S2] in_partial == (free_list != null || carved < capacity); the list
//        is its owner's own_partial[class] if it has an owner, else the
//        class's partial list                                      O(list)
//   [S3] carved <= capacity; carved only grows while the span is assigned
//   [S4] owner != null iff the span is on owner->owned[class]      O(list)
//   [S5] SizeClass::span_count == the assigned spans of the class
//   [S6] SpanStore: free spans are unassigned, counts match the lists
// ([S0]: the span header itself is intact.)
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
  Span* all_next;                      // every span of the heap (spans.lock)
  Span* all_prev;
};
static_assert(sizeof(Span) <= kSpanHeaderSize);

inline Span* span_of(const void* p) noexcept {
  return reinterpret_cast<Span*>(reinterpret_cast<std::uintptr_t>(p) & ~(kChunkSize - 1));
}

struct alignas(64) SizeClass {
  Lock lock;
  Span* partial = nullptr;               // spans without an owner that have a free or uncarved block
  std::atomic<Block*> pending{nullptr};  // blocks freed while the lock was busy (FastMM5)
  std::uint32_t span_count = 0;          // spans assigned to this class
};

// The heap's span store (Heap::spans), guarded by its own lock.
struct SpanStore {
  Lock lock;
  Span* all = nullptr;              // every span of the heap, assigned or free (all_next)
  Span* free = nullptr;             // empty spans, newest first (doubly linked through next/prev)
  Span* free_tail = nullptr;        // the oldest empty span
  std::uint64_t purge_ms = 0;       // os::now_ms() of the last purge of old free spans
  char* fresh = nullptr;            // [fresh, fresh_end): the never-used rest of the
  char* fresh_end = nullptr;        //   last region mapped for spans (chunk map: none)
  unsigned regions = 0;             // regions mapped for spans so far (their size doubles)
  std::size_t free_count = 0;
  std::size_t count = 0;
};
// More free spans than the purge keeps (kFreeSpansKept), the count read
// without the lock.
inline bool small_purge_hint(const SpanStore& st) noexcept {
  return __atomic_load_n(&st.free_count, __ATOMIC_RELAXED) > kFreeSpansKept;
}

// ---- small.cpp ----
// Refills tc's bin of class c (tc may be null: one block straight from the
// class) and returns one block, or null when the OS refuses memory.
void* small_alloc_slow(Heap* h, ThreadCache* tc, unsigned c) noexcept;
void small_free_central(Heap* h, Block* b, unsigned c) noexcept;
void cache_overflow(ThreadCache* tc, unsigned c) noexcept;
void small_free_foreign(ThreadCache* tc, unsigned c, Block* b, std::uintptr_t cookie) noexcept;  // b's span is not tc's
// Gives tc's small blocks (own and foreign bins) back to their spans, then
// every span tc owns to its class.
void small_flush_cache(ThreadCache* tc) noexcept;
void small_return_chain(Heap* h, unsigned c, Block* head, Block* tail, std::uint32_t n) noexcept;
// Whether a (a link decoded from a free list of class c of heap h) is a free
// block of that class and heap, the chunk map read first: what every slow
// path checks before it follows a link.
bool small_link_valid(const Heap* h, unsigned c, std::uintptr_t a) noexcept;
// Blocks on class c's pending list (its lock held), for a report: every link
// checked before it is followed (the count ends at a forged one).
std::size_t small_pending_count_locked(const Heap* h, unsigned c) noexcept;
std::size_t small_trim(Heap* h) noexcept;  // unmaps the heap's free spans
// ---- the purge (docs/design.md, "Giving memory back") ----
// Unmaps the free spans beyond the kept limit that went empty at least
// min_age_ms ago (0: all of them; a thread's exit); nothing when the purge
// delay is "never".  The bytes unmapped.
std::size_t small_purge(Heap* h, std::uint64_t min_age_ms) noexcept;
// A slow path's check (a refill, a spill): small_purge_hint — more free
// spans than a heap always keeps, read without the lock (below SpanStore) —
// then small_purge_due reads the clock and purges what has been free for the
// delay, at most once per delay.
void small_purge_due(Heap* h) noexcept;
// Drops every block of h: every span goes to the free-span list, kept
// mapped for reuse (it decays like any empty span).  No thread may use the
// heap meanwhile; thread caches are reset by the caller (their owned lists
// name these spans).
void small_reset_all(Heap* h) noexcept;
// Unmaps every span of h and leaves the tier as freshly constructed (no
// thread may use the heap meanwhile).
void small_release_all(Heap* h) noexcept;
// Calls visit for every carved block of h's spans (live ones, and free ones
// too when `with_free`), under each class's lock; false if visit stopped it.
bool small_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept;
// [S1]-[S4] for every span of h, and the span store's counts: aborts with
// the invariant's id on a violation.  O(heap).
void small_validate(Heap* h) noexcept;

}  // namespace strata::detail
