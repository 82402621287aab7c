// strata — the medium tier: 1.25 MiB pools carved into 256-byte-granular
// blocks with boundary tags, 1024 size bins found through a two-level bitmap,
// neighbours coalesced on free (FastMM).  A heap has kMediumArenas arenas,
// each with its own lock; a thread allocates from the arena of its slot, a
// block is freed into the arena of its pool.  Empty pools are returned to the
// OS beyond kEmptyMediumPoolsKept per arena.
#include "error.hpp"  // a forged bin link is reported once the arena lock is released
#include "heap.hpp"
#include "track.hpp"
#include "list.hpp"
#include "os.hpp"

namespace strata::detail {

std::atomic<std::uint64_t> g_medium_trim_delay_ms{kMediumTrimDelayMs};

namespace {

using PoolList = IntrusiveList<&MediumPool::next, &MediumPool::prev>;  // MediumTier::pools
using BinList = IntrusiveList<&MediumFree::next, &MediumFree::prev>;   // MediumTier::bins[i]

// (A size below one granule, which only a forged tag holds, maps to bin 0
// rather than outside the bins.)
inline unsigned bin_index(std::size_t bytes) noexcept {
  std::size_t g = bytes / kMediumGranule;
  return static_cast<unsigned>((g > kMediumBins ? kMediumBins : g < 1 ? 1 : g) - 1);
}
inline std::size_t size_of(const MediumTag* t) noexcept { return t->size_flags & kSizeMask; }
inline MediumTag* tag_at(char* p) noexcept { return reinterpret_cast<MediumTag*>(p); }
// The pool a block (or free run) of this tier lies in, from the chunk map.
inline MediumPool* pool_of(const char* block) noexcept {
  return chunk_map::owner_of<MediumPool>(chunk_map::lookup(reinterpret_cast<std::uintptr_t>(block)));
}
inline char* data_of(MediumPool* pool) noexcept { return medium_data_begin(pool); }
inline char* data_end(MediumPool* pool) noexcept { return medium_data_end(pool); }
inline char* page_up(char* p) noexcept { return reinterpret_cast<char*>(align_up(reinterpret_cast<std::uintptr_t>(p), kPageSize)); }
inline char* page_down(char* p) noexcept { return reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(p) & ~(kPageSize - 1)); }
// The page holding the sentinel tag: always touched, never given back.
inline char* clean_end(MediumPool* pool) noexcept {
  return page_down(data_end(pool));
}
// Memory up to `end` is (about to be) written: it is no longer clean.
// Writing again into pages a trim gave back doubles the pool's pad: a pool
// whose top keeps shrinking and growing stops paying a fault per page and
// turn, while a pool that grew once and shrank for good still gives back.
inline void mark_dirty(MediumPool* pool, char* end) noexcept {
  char* e = page_up(end);
  if (e <= pool->clean_from) return;
  pool->clean_from = e;
  if (pool->trimmed) {
    pool->trimmed = false;
    if (pool->top_keep < kMediumPoolSize) pool->top_keep *= 2;
  }
}
// The free run that ends the pool (its size in *size), or null when the
// pool ends with a block in use.
inline char* top_run(MediumPool* pool, std::size_t* size) noexcept {
  MediumTag* sentinel = tag_at(data_end(pool));
  if (!(sentinel->size_flags & kPrevFree)) return nullptr;
  *size = sentinel->prev_size;
  return data_end(pool) - *size;
}
// The dirty pages of the free run [block, block + size) beyond its header
// page and its first `keep` bytes, as [*from, *to), if the run ends the pool
// and they reach `threshold` bytes; else false.
bool top_dirty_locked(MediumPool* pool, char* block, std::size_t size, std::size_t keep, std::size_t threshold,
                      char** from_out, char** to_out) noexcept {
  if (block + size != data_end(pool)) return false;
  char* from = page_up(block + sizeof(MediumFree));
  if (static_cast<std::size_t>(data_end(pool) - from) <= keep) return false;
  from += keep;
  char* to = pool->clean_from < clean_end(pool) ? pool->clean_from : clean_end(pool);
  if (to <= from || static_cast<std::size_t>(to - from) < threshold) return false;
  *from_out = from;
  *to_out = to;
  return true;
}
// Gives those pages back (lock held).  Returns the bytes given back.
std::size_t give_back_top_locked(MediumPool* pool, char* block, std::size_t size, std::size_t keep,
                                 std::size_t threshold) noexcept {
  char *from, *to;
  if (!top_dirty_locked(pool, block, size, keep, threshold, &from, &to)) return 0;
  os::discard(from, static_cast<std::size_t>(to - from));
  pool->clean_from = from;
  return static_cast<std::size_t>(to - from);
}
// The automatic trim after a free or shrink made [block, block + size) free:
// a top over the threshold starts its delay (g_medium_trim_delay_ms); the
// arena's sweep gives it back when the delay is over and the top is still
// free.  A trim is remembered, so reuse of those pages grows the pad.
void trim_top_locked(MediumTier& m, MediumPool* pool, char* block, std::size_t size) noexcept {
  if (block + size != data_end(pool)) return;
  char *from, *to;
  if (!top_dirty_locked(pool, block, size, pool->top_keep, kMediumTrimThreshold, &from, &to)) {
    pool->trim_since_ms = 0;
    return;
  }
  if (pool->trim_since_ms) return;
  std::uint64_t now = os::now_ms();
  pool->trim_since_ms = now;
  std::uint64_t due = now + g_medium_trim_delay_ms.load(std::memory_order_relaxed);
  // (Stored atomically: medium_purge_due reads it as a hint without the lock.)
  if (!m.trim_due_ms || m.trim_due_ms > due) __atomic_store_n(&m.trim_due_ms, due, __ATOMIC_RELAXED);
}
// Gives back the tops whose delay is over (arena lock held).
void sweep_trims_locked(MediumTier& m, std::uint64_t now) noexcept {
  const std::uint64_t delay = g_medium_trim_delay_ms.load(std::memory_order_relaxed);
  std::uint64_t next = 0;
  for (MediumPool* pool = m.pools; pool; pool = pool->next) {
    if (!pool->trim_since_ms) continue;
    std::uint64_t due = pool->trim_since_ms + delay;
    if (now < due) {
      if (!next || due < next) next = due;
      continue;
    }
    pool->trim_since_ms = 0;
    std::size_t size;
    if (char* top = top_run(pool, &size); top && give_back_top_locked(pool, top, size, pool->top_keep, kMediumTrimThreshold))
      pool->trimmed = true;
  }
  __atomic_store_n(&m.trim_due_ms, next, __ATOMIC_RELAXED);
}
// Sweeps when a delay is over: the clock is read only while one runs.
inline void maybe_sweep_trims_locked(MediumTier& m) noexcept {
  if (!m.trim_due_ms) return;
  if (std::uint64_t now = os::now_ms(); now >= m.trim_due_ms) sweep_trims_locked(m, now);
}

// The arena lock, and on its release the report of a forged bin link found
// under it (the handler may call strata: never with the lock held).
class ArenaGuard {
 public:
  ArenaGuard(Heap* h, MediumTier& m) noexcept : m_(m), lock_(medium_lock(h, m)) { lock_.lock(); }
  ~ArenaGuard() {
    const void* bad = m_.corrupt_at;
    m_.corrupt_at = nullptr;
    lock_.unlock();
    if (STRATA_UNLIKELY(bad != nullptr)) report_forged_link(bad);
  }
  ArenaGuard(const ArenaGuard&) = delete;
  ArenaGuard& operator=(const ArenaGuard&) = delete;
  static void report_forged_link(const void* where) noexcept {
    report(STRATA_ERROR_CORRUPTION, where, "malloc",
           "a free medium block's bin links were overwritten (a use after free): its bin is dropped, its blocks "
           "are never handed out");
  }

 private:
  MediumTier& m_;
  Lock& lock_;
};

inline bool is_start(MediumPool* pool, char* block) noexcept;

// ---- the bins' links, checked before they are followed ----
// A free block's links sit in its first user bytes, where a use after free
// writes: a link is followed only if it leads to a granule start of a pool
// of this arena (the chunk map says so before the pool's header is read)
// where no in-use block starts, and a block is unlinked only if its
// neighbours link back to it (glibc's "corrupted double-linked list" check).  A bin with a forged link
// is dropped whole (its blocks are never handed out again: a leak, not an
// overlap) and the address noted for the caller to report.
// (Inlined into its callers: a call and its frame were a quarter of its cost.)
// `home`: the pool the caller knows the linking block lies in (or null): a
// link into it needs no chunk-map look-up (bins are per arena, and most
// links of a block lead into its own pool).
STRATA_FAST_PATH bool free_link_valid(MediumTier& m, MediumPool* home, const MediumFree* x) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(x);
  MediumPool* pool = home;
  if (a - reinterpret_cast<std::uintptr_t>(home) >= kMediumPoolSize) {
    std::uintptr_t e = chunk_map::lookup(a);
    if (chunk_map::kind_of(e) != ChunkKind::kMedium) return false;
    pool = chunk_map::owner_of<MediumPool>(e);
    if (pool->magic != kMediumPoolMagic || pool->arena != &m) return false;
  }
  // One compare: x lies in the pool's data and starts at a granule.
  const std::size_t g = medium_granule_index(a - reinterpret_cast<std::uintptr_t>(data_of(pool)));
  if (g >= kMediumPoolGranules) return false;
  return !medium_start_bit(pool, g) && !(x->tag.size_flags & kInUse);
}

void bin_drop_locked(MediumTier& m, unsigned i, const void* where) noexcept {
  m.bins[i] = nullptr;
  m.bin_mask[i / 32] &= ~(1u << (i % 32));
  if (!m.bin_mask[i / 32]) m.group_mask &= ~(1u << (i / 32));
  if (!m.corrupt_at) m.corrupt_at = where;
}

// A link of a free block, read once: a use after free of the program's may
// write it at any moment, so the value checked is the value used.
inline MediumFree* link_once(MediumFree* const& link) noexcept { return __atomic_load_n(&link, __ATOMIC_RELAXED); }

// f's successor in bin i, or null at the end, or null with the bin dropped
// when the link is forged.
MediumFree* next_free(MediumTier& m, unsigned i, MediumFree* f) noexcept {
  MediumFree* n = link_once(f->next);
  if (n && STRATA_UNLIKELY(!free_link_valid(m, nullptr, n) || link_once(n->prev) != f)) {
    bin_drop_locked(m, i, f);
    return nullptr;
  }
  return n;
}

void bin_insert(MediumTier& m, char* block, std::size_t size) noexcept {
  auto* f = reinterpret_cast<MediumFree*>(block);
  unsigned i = bin_index(size);
  BinList::push_front(m.bins[i], f);
  m.bin_mask[i / 32] |= 1u << (i % 32);
  m.group_mask |= 1u << (i / 32);
}

// Unlinks free block `block` of `pool` from its bin, its links checked.
void bin_remove(MediumTier& m, MediumPool* pool, char* block) noexcept {
  auto* f = reinterpret_cast<MediumFree*>(block);
  unsigned i = bin_index(size_of(&f->tag));
  MediumFree* n = link_once(f->next);
  MediumFree* p = link_once(f->prev);
  bool linked = p ? free_link_valid(m, pool, p) && link_once(p->next) == f : m.bins[i] == f;
  if (STRATA_UNLIKELY(!linked || (n && (!free_link_valid(m, pool, n) || link_once(n->prev) != f)))) {
    bin_drop_locked(m, i, f);
    return;
  }
  // BinList::remove with the links checked above (it would read them again).
  if (p) p->next = n; else m.bins[i] = n;
  if (n) n->prev = p;
  if (!m.bins[i]) {
    m.bin_mask[i / 32] &= ~(1u << (i % 32));
    if (!m.bin_mask[i / 32]) m.group_mask &= ~(1u << (i / 32));
  }
}

// The size of free block f of bin b if its tag can be believed, else 0: an
// overflow of the live block before it writes that tag.  A bin below the
// last holds one size, which the tag must say exactly (and no flag: a free
// block is not in use and never follows a free one), one load and compare;
// the size of a block of the last bin must lie inside its pool and be
// repeated after it (the pair, [M5]).  The tag is read once.
std::size_t free_size_checked(unsigned b, MediumFree* f) noexcept {
  const std::size_t tag = __atomic_load_n(&f->tag.size_flags, __ATOMIC_RELAXED);
  if (STRATA_LIKELY(b < kMediumBins - 1)) return tag == std::size_t{b + 1} * kMediumGranule ? tag : 0;
  auto* block = reinterpret_cast<char*>(f);
  return (tag & ~kSizeMask) == 0 && medium_size_paired(pool_of(block), block, tag) ? tag : 0;
}

// Smallest free block of at least `need` bytes (lock held), its size in
// *size.  A block whose tags were forged is not handed out: its bin is
// dropped, and the search goes on.
char* bin_find(MediumTier& m, std::size_t need, std::size_t* size) noexcept {
  for (;;) {
    unsigned i = bin_index(need);
    unsigned g = i / 32;
    std::uint32_t mask = m.bin_mask[g] & (~0u << (i % 32));
    if (!mask) {
      std::uint32_t gm = g == 31 ? 0 : (m.group_mask & (~0u << (g + 1)));
      if (!gm) return nullptr;
      g = static_cast<unsigned>(__builtin_ctz(gm));
      mask = m.bin_mask[g];
    }
    unsigned b = g * 32 + static_cast<unsigned>(__builtin_ctz(mask));
    MediumFree* f = m.bins[b];
    if (b == kMediumBins - 1) {  // the last bin holds every size from 256 KiB up: first fit
      while (f && size_of(&f->tag) < need) f = next_free(m, b, f);
      if (!f) return nullptr;
    }
    if (STRATA_LIKELY((*size = free_size_checked(b, f)) >= need)) return reinterpret_cast<char*>(f);
    bin_drop_locked(m, b, f);
  }
}

// A free block that an aligned request fits in (lock held): the first one,
// from the smallest bin that can hold `need` up, whose first user pointer
// aligned to `align` leaves `need` bytes before its end; at most
// kMediumAlignedScan blocks are looked at, then the smallest block of
// need + align - kMediumGranule bytes, which always fits.  (Asking for the
// latter only, as all aligned requests once did, skips exact fits: a freed
// 64 KiB-aligned block of 64 KiB was never reused by the same request.)
char* bin_find_aligned(MediumTier& m, std::size_t need, std::size_t align, std::size_t* size) noexcept {
  unsigned looked = 0;
  for (unsigned i = bin_index(need); i < kMediumBins && looked < kMediumAlignedScan; ++i) {
    std::uint32_t mask = m.bin_mask[i / 32] & (~0u << (i % 32));
    if (!mask) {
      i = (i / 32) * 32 + 31;  // the next group
      continue;
    }
    i = (i / 32) * 32 + static_cast<unsigned>(__builtin_ctz(mask));
    for (MediumFree* f = m.bins[i]; f && looked < kMediumAlignedScan; f = next_free(m, i, f), ++looked) {
      auto b = reinterpret_cast<std::uintptr_t>(f);
      if (align_up(b + kMediumHeaderSize, align) - kMediumHeaderSize + need > b + size_of(&f->tag)) continue;
      if (STRATA_LIKELY((*size = free_size_checked(i, f)) != 0 && *size == size_of(&f->tag)))
        return reinterpret_cast<char*>(f);
      bin_drop_locked(m, i, f);  // forged tags: the next bins
      break;
    }
  }
  return bin_find(m, need + align - kMediumGranule, size);  // medium_alloc made sure a pool can hold it
}

inline std::size_t granule_of(MediumPool* pool, char* block) noexcept {
  return static_cast<std::size_t>(block - data_of(pool)) / kMediumGranule;
}
inline void set_start(MediumPool* pool, char* block) noexcept {
  std::size_t g = granule_of(pool, block);
  pool->starts[g / 64] |= std::uint64_t{1} << (g % 64);
}
inline void clear_start(MediumPool* pool, char* block) noexcept {
  std::size_t g = granule_of(pool, block);
  pool->starts[g / 64] &= ~(std::uint64_t{1} << (g % 64));
}
inline bool is_start(MediumPool* pool, char* block) noexcept { return medium_start_bit(pool, granule_of(pool, block)); }

// The pool's data as one free run ending at the sentinel, in its bin (lock
// held; no block of the pool is in use or in a bin).
void make_one_free_run_locked(MediumTier& m, MediumPool* pool) noexcept {
  char* data = data_of(pool);
  std::size_t size = kMediumPoolGranules * kMediumGranule;
  tag_at(data)->prev_size = 0;
  tag_at(data)->size_flags = size;
  MediumTag* sentinel = tag_at(data + size);
  sentinel->prev_size = size;
  sentinel->size_flags = kInUse | kPrevFree;
  bin_insert(m, data, size);
}

MediumPool* pool_create(Heap* h, MediumTier& m) noexcept {
  void* mem = heap_map(h, kMediumPoolSize, ChunkKind::kMedium, nullptr, "strata:medium");
  if (!mem) return nullptr;
  auto* pool = static_cast<MediumPool*>(mem);
  pool->magic = kMediumPoolMagic;
  pool->heap = h;
  pool->arena = &m;
  pool->used_blocks = pool->used_bytes = 0;
  pool->clean_from = page_up(data_of(pool) + sizeof(MediumFree));
  pool->top_keep = kMediumTopKeep;
  pool->trimmed = false;
  pool->trim_since_ms = 0;
  PoolList::push_front(m.pools, pool);
  m.pool_count++;
  m.empty_pools++;
  make_one_free_run_locked(m, pool);
  return pool;
}

void pool_destroy_locked(Heap* h, MediumPool* pool) noexcept {
  MediumTier& m = *pool->arena;
  PoolList::remove(m.pools, pool);
  m.pool_count--;
  pool->magic = 0;
  heap_unmap(h, pool, kMediumPoolSize);
}

// Whether the tags of the live block at `block` can be believed by
// free_locked and the resize: its size (medium_extent_valid) and, when it
// says the block before is free, that block's size at both of its ends with
// no in-use block inside it.  Every tag this reads lies inside the pool.
bool tags_valid_locked(MediumPool* pool, char* block) noexcept {
  // The tag is read once.  medium_extent_valid bounds the size as
  // medium_size_paired does (whole granules, at least one, inside the
  // pool), so the pair is only its one load here.
  const std::size_t flags = __atomic_load_n(&tag_at(block)->size_flags, __ATOMIC_RELAXED), size = flags & kSizeMask;
  if (!(flags & kInUse) || !medium_extent_valid(pool, block, size) ||
      __atomic_load_n(&tag_at(block + size)->prev_size, __ATOMIC_RELAXED) != size)
    return false;
  if (!(flags & kPrevFree)) return true;
  std::size_t ps = tag_at(block)->prev_size;
  auto before = static_cast<std::size_t>(block - data_of(pool));
  if (ps < kMediumGranule || ps % kMediumGranule || ps > before) return false;
  char* prev = block - ps;
  // Its size at both of its ends, and not an in-use start (no scan of its
  // granules: a free block can be most of the pool, and this is every free).
  // Its tag is read once: "free" and the size in one compare.
  return (__atomic_load_n(&tag_at(prev)->size_flags, __ATOMIC_RELAXED) & (kSizeMask | kInUse)) == ps &&
         !is_start(pool, prev);
}

strata_error_kind check_locked(MediumPool* pool, const void* p) noexcept {
  if (pool->magic != kMediumPoolMagic) return STRATA_ERROR_CORRUPTION;
  char* block = static_cast<char*>(const_cast<void*>(p)) - kMediumHeaderSize;
  // One compare: the block lies in the pool's data and starts at a granule.
  const std::size_t g = medium_granule_index(static_cast<std::size_t>(block - data_of(pool)));
  if (g >= kMediumPoolGranules) return STRATA_ERROR_INTERIOR_POINTER;
  if (medium_start_bit(pool, g))
    return tags_valid_locked(pool, block) ? STRATA_ERROR_NONE : STRATA_ERROR_CORRUPTION;
  // Not a live block start: a freed block's tag still says "free" unless a
  // neighbour's coalescing overwrote it.
  std::size_t sz = size_of(tag_at(block));
  if (!(tag_at(block)->size_flags & kInUse) && sz && sz <= static_cast<std::size_t>(data_end(pool) - block))
    return STRATA_ERROR_DOUBLE_FREE;
  return STRATA_ERROR_INTERIOR_POINTER;
}

// [M1]-[M4] over one pool: O(pool).  Run at debug level 3 after every change.
void validate_pool_locked(MediumTier& m, MediumPool* pool) noexcept {
  char* b = data_of(pool);
  bool prev_free = false;
  std::size_t prev_size = 0, used = 0, used_bytes = 0;
  while (b < data_end(pool)) {
    MediumTag* t = tag_at(b);
    std::size_t sz = size_of(t);
    STRATA_CHECK(sz && sz % kMediumGranule == 0 && sz <= static_cast<std::size_t>(data_end(pool) - b), "[M1] medium tag size");
    STRATA_CHECK(((t->size_flags & kPrevFree) != 0) == prev_free, "[M3] kPrevFree mismatch");
    if (prev_free) STRATA_CHECK(t->prev_size == prev_size, "[M3] prev_size mismatch");
    bool in_use = t->size_flags & kInUse;
    STRATA_CHECK(is_start(pool, b) == in_use, "[M4] start bitmap mismatch");
    STRATA_CHECK(in_use || !prev_free, "[M2] two adjacent free blocks");
    if (in_use) STRATA_CHECK(tag_at(b + sz)->prev_size == sz, "[M5] an in-use block's size is not repeated after it");
    if (!in_use) {
      bool found = false;
      for (MediumFree* f = m.bins[bin_index(sz)]; f && !found; f = f->next) found = reinterpret_cast<char*>(f) == b;
      STRATA_CHECK(found, "free medium block missing from its bin");
    } else {
      used++;
      used_bytes += sz;
    }
    prev_free = !in_use;
    prev_size = sz;
    b += sz;
  }
  STRATA_CHECK(b == data_end(pool), "medium blocks do not tile the pool");
  STRATA_CHECK(size_of(tag_at(b)) == 0 && (tag_at(b)->size_flags & kInUse), "medium sentinel overwritten");
  STRATA_CHECK(used == pool->used_blocks && used_bytes == pool->used_bytes, "medium pool counters");
}

inline void maybe_validate(MediumTier& m, MediumPool* pool) noexcept {
  if constexpr (kDebugLevel >= 3) validate_pool_locked(m, pool);
  else (void)m, (void)pool;
}

std::size_t free_locked(Heap* h, MediumPool* pool, char* block) noexcept;

}  // namespace

namespace {
void unlock_reporting(Heap* h, MediumTier& m) noexcept {
  const void* bad = m.corrupt_at;
  m.corrupt_at = nullptr;
  medium_lock(h, m).unlock();
  if (STRATA_UNLIKELY(bad != nullptr)) ArenaGuard::report_forged_link(bad);
}
}  // namespace

Block* medium_free_chain(Heap* h, Block* head) noexcept {
  Block* rejected = nullptr;
  std::size_t freed = 0;
  MediumTier* held = nullptr;  // the arena whose lock is held: runs of blocks of one arena take it once
  while (head) {
    Block* next = next_of(head);
    char* block = reinterpret_cast<char*>(head) - kMediumHeaderSize;
    auto* pool = pool_of(block);
    if (pool->arena != held) {
      if (held) unlock_reporting(h, *held);
      held = pool->arena;
      medium_lock(h, *held).lock();
    }
    if (STRATA_UNLIKELY(check_locked(pool, head) != STRATA_ERROR_NONE)) {
      // Overwritten while it waited in a thread's cache (a use after free):
      // left alone (never freed on what its tags say), for the caller to report.
      set_next(head, rejected);
      rejected = head;
      head = next;
      continue;
    }
    freed += free_locked(h, pool, block);
    head = next;
  }
  if (held) unlock_reporting(h, *held);
  heap_account_central(h, -static_cast<std::ptrdiff_t>(freed));
  return rejected;
}

strata_error_kind medium_check(MediumPool* pool, const void* p) noexcept {
  // pool->heap and pool->arena are read before the lock: a pool keeps them
  // for life, and a pointer that is not a pool start is caught by the magic
  // check.
  LockGuard g(medium_lock(pool->heap, *pool->arena));
  return check_locked(pool, p);
}

void* medium_alloc(Heap* h, std::size_t size, std::size_t align) noexcept {
  std::size_t need = align_up(size + kMediumHeaderSize, kMediumGranule);
  const bool aligned = align > kMediumGranule;
  if ((aligned ? need + align - kMediumGranule : need) > kMediumPoolGranules * kMediumGranule) return nullptr;
  MediumTier& m = medium_arena_for(h);
  char* block;
  {
    ArenaGuard g(h, m);
    std::size_t fsize;  // its size, read once and checked (bin_find)
    block = aligned ? bin_find_aligned(m, need, align, &fsize) : bin_find(m, need, &fsize);
    if (!block) {
      if (!pool_create(h, m)) return nullptr;
      block = aligned ? bin_find_aligned(m, need, align, &fsize) : bin_find(m, need, &fsize);
      STRATA_CHECK(block, "fresh medium pool has no fitting block");
    }
    auto* pool = pool_of(block);
    bin_remove(m, pool, block);
    if (block + fsize == data_end(pool)) pool->trim_since_ms = 0;  // the top is in use again
    std::size_t prev_flag = tag_at(block)->size_flags & kPrevFree;  // always 0: free blocks never touch
    if (aligned) {
      auto user = align_up(reinterpret_cast<std::uintptr_t>(block) + kMediumHeaderSize, align);
      std::size_t lead = user - kMediumHeaderSize - reinterpret_cast<std::uintptr_t>(block);
      if (lead) {  // a multiple of 256: user pointers of medium blocks are 256-aligned
        tag_at(block)->size_flags = lead | prev_flag;
        bin_insert(m, block, lead);
        block += lead;
        fsize -= lead;
        tag_at(block)->prev_size = lead;
        prev_flag = kPrevFree;
      }
    }
    if (fsize - need >= kMediumGranule) {
      char* rem = block + need;
      std::size_t rsize = fsize - need;
      tag_at(rem)->size_flags = rsize;
      tag_at(rem + rsize)->prev_size = rsize;  // its kPrevFree is already set
      bin_insert(m, rem, rsize);
      fsize = need;
    } else {
      tag_at(block + fsize)->size_flags &= ~kPrevFree;
    }
    tag_at(block)->size_flags = fsize | kInUse | prev_flag;
    tag_at(block + fsize)->prev_size = fsize;  // [M5]
    // The block, and the tag after it (a remainder's header or the next block's flags).
    mark_dirty(pool, block + fsize + sizeof(MediumFree));
    set_start(pool, block);
    if (pool->used_blocks++ == 0) m.empty_pools--;
    pool->used_bytes += fsize;
    m.blocks++;
    m.bytes += fsize;
    __atomic_store_n(&m.changes, m.changes + 1, __ATOMIC_RELAXED);  // read without the lock by medium_purge_due
    need = fsize;
    maybe_validate(m, pool);
  }
  heap_account_central(h, static_cast<std::ptrdiff_t>(need));
  reinterpret_cast<Block*>(block + kMediumHeaderSize)->cookie = 0;  // no stale free cookie
  track_alloc(h, block + kMediumHeaderSize);
  return block + kMediumHeaderSize;
}

strata_error_kind medium_free(Heap* h, MediumPool* pool, void* p) noexcept {
  MediumTier& m = *pool->arena;
  std::size_t freed;
  {
    ArenaGuard g(pool->heap, m);
    strata_error_kind err = check_locked(pool, p);
    if (err != STRATA_ERROR_NONE) return err;
    freed = free_locked(h, pool, static_cast<char*>(p) - kMediumHeaderSize);
  }
  heap_account_central(h, -static_cast<std::ptrdiff_t>(freed));
  return STRATA_ERROR_NONE;
}

namespace {
// Frees a validated block (lock held); returns its size.
std::size_t free_locked(Heap* h, MediumPool* pool, char* block) noexcept {
  MediumTier& m = *pool->arena;
  {
    std::size_t fsize = size_of(tag_at(block));
    std::size_t freed = fsize;
    clear_start(pool, block);
    pool->used_blocks--;
    pool->used_bytes -= fsize;
    m.blocks--;
    m.bytes -= fsize;
    __atomic_store_n(&m.changes, m.changes + 1, __ATOMIC_RELAXED);
    char* next = block + fsize;
    if (!(tag_at(next)->size_flags & kInUse)) {
      bin_remove(m, pool, next);
      fsize += size_of(tag_at(next));
    }
    if (tag_at(block)->size_flags & kPrevFree) {
      char* prev = block - tag_at(block)->prev_size;
      bin_remove(m, pool, prev);
      fsize += size_of(tag_at(prev));
      tag_at(block)->size_flags &= ~kInUse;  // leave a "free" tag behind for double-free diagnosis
      block = prev;
    }
    tag_at(block)->size_flags = fsize;
    MediumTag* after = tag_at(block + fsize);
    after->size_flags |= kPrevFree;
    after->prev_size = fsize;
    if (pool->used_blocks == 0) {
      if (m.empty_pools >= kEmptyMediumPoolsKept) {
        pool_destroy_locked(h, pool);
      } else {
        m.empty_pools++;
        trim_top_locked(m, pool, block, fsize);
        bin_insert(m, block, fsize);
      }
    } else {
      trim_top_locked(m, pool, block, fsize);
      bin_insert(m, block, fsize);
      maybe_validate(m, pool);
    }
    maybe_sweep_trims_locked(m);
    return freed;
  }
}
}  // namespace

bool medium_resize_in_place(Heap* h, MediumPool* pool, void* p, std::size_t new_size, std::size_t want) noexcept {
  MediumTier& m = *pool->arena;
  std::size_t need = align_up(new_size + kMediumHeaderSize, kMediumGranule);
  if (want > kMaxMediumSize) want = kMaxMediumSize;
  std::ptrdiff_t delta;
  {
    ArenaGuard g(pool->heap, m);
    char* block = static_cast<char*>(p) - kMediumHeaderSize;
    // Its tags and its neighbour's are believed only once checked (the
    // caller's unlocked look checked the pair only): else the move path
    // frees it, and the free reports it.
    if (!tags_valid_locked(pool, block)) return false;
    std::size_t fsize = size_of(tag_at(block));
    std::size_t flags = tag_at(block)->size_flags & ~kSizeMask;
    if (need <= fsize) {
      if (fsize - need < kMediumGranule) return true;
      // Shrink: the tail becomes free, merged with a free right neighbour.
      char* tail = block + need;
      std::size_t tsize = fsize - need;
      char* next = block + fsize;
      if (!(tag_at(next)->size_flags & kInUse)) {
        bin_remove(m, pool, next);
        tsize += size_of(tag_at(next));
      }
      tag_at(tail)->size_flags = tsize;
      tag_at(tail + tsize)->size_flags |= kPrevFree;
      tag_at(tail + tsize)->prev_size = tsize;
      trim_top_locked(m, pool, tail, tsize);
      bin_insert(m, tail, tsize);
      maybe_sweep_trims_locked(m);
      tag_at(block)->size_flags = need | flags;
      tag_at(tail)->prev_size = need;  // [M5]
      delta = -static_cast<std::ptrdiff_t>(fsize - need);
    } else {
      char* next = block + fsize;
      if (tag_at(next)->size_flags & kInUse) return false;
      std::size_t nsize = size_of(tag_at(next));
      if (fsize + nsize < need) return false;
      // Up to `want` bytes (rounded down to granules: never so far over
      // new_size that a realloc to about new_size would trim the tail again)
      // when the free neighbour has them: a block grown a little at a time
      // then takes the lock once per quarter of its size.
      if (std::size_t pref = (want + kMediumHeaderSize) & ~(kMediumGranule - 1); pref > need)
        need = pref < fsize + nsize ? pref : fsize + nsize;
      bin_remove(m, pool, next);
      std::size_t total = fsize + nsize;
      if (total - need >= kMediumGranule) {
        char* rem = block + need;
        std::size_t rsize = total - need;
        tag_at(rem)->size_flags = rsize;
        tag_at(rem + rsize)->prev_size = rsize;
        bin_insert(m, rem, rsize);
        total = need;
      } else {
        tag_at(block + total)->size_flags &= ~kPrevFree;
      }
      tag_at(block)->size_flags = total | flags;
      tag_at(block + total)->prev_size = total;  // [M5]
      mark_dirty(pool, block + total + sizeof(MediumFree));
      delta = static_cast<std::ptrdiff_t>(total - fsize);
    }
    pool->used_bytes += static_cast<std::size_t>(delta);
    m.bytes += static_cast<std::size_t>(delta);
    maybe_validate(m, pool);
  }
  heap_account_central(h, delta);
  return true;
}

std::size_t medium_usable(MediumPool* pool, const void* p) noexcept {
  // Unlocked: the size bits of a live block are stable, neighbours may flip its flag bits.
  std::size_t size = medium_block_size_racy(p);
  return medium_size_paired(pool, static_cast<const char*>(p) - kMediumHeaderSize, size) ? size - kMediumHeaderSize : 0;
}

namespace {
// Gives back the whole pages inside every free run of arena m that does not
// end its pool (lock held; the tops are give_back_top_locked's), as glibc's
// malloc_trim does with the free chunks in the middle of its heaps.  A run
// keeps its first page (its bin links) and its last (the next block's tag).
// Returns the bytes given back, resident or not: the pages of such a run are
// not tracked, and one that was given back before is given back again.
std::size_t give_back_inner_runs_locked(MediumTier& m) noexcept {
  std::size_t released = 0;
  // Only the bins the masks mark as holding a block (a few of the 1,024).
  for (std::uint32_t groups = m.group_mask; groups; groups &= groups - 1) {
    const unsigned g = static_cast<unsigned>(__builtin_ctz(groups));
    for (std::uint32_t bits = m.bin_mask[g]; bits; bits &= bits - 1) {
      const unsigned i = g * 32 + static_cast<unsigned>(__builtin_ctz(bits));
      for (MediumFree* f = m.bins[i]; f; f = next_free(m, i, f)) {
        char* block = reinterpret_cast<char*>(f);
        std::size_t size = size_of(&f->tag);
        auto* pool = pool_of(block);
        if (block + size == data_end(pool)) continue;
        char* from = page_up(block + sizeof(MediumFree));
        char* to = page_down(block + size);
        if (to <= from) continue;
        os::discard(from, static_cast<std::size_t>(to - from));
        released += static_cast<std::size_t>(to - from);
      }
    }
  }
  return released;
}

// Everything free in arena m goes back (lock held): its empty pools are
// unmapped, the dirty pages of the other pools' free tops (the pad
// included: a trim does not grow the pad) and the whole pages inside their
// other free runs are given back.  Returns the bytes.
std::size_t trim_arena_locked(Heap* h, MediumTier& m) noexcept {
  std::size_t released = 0;
  MediumPool* pool = m.pools;
  while (pool) {
    MediumPool* next = pool->next;
    if (pool->used_blocks == 0) {
      bin_remove(m, pool, data_of(pool));  // its one free block
      m.empty_pools--;
      pool_destroy_locked(h, pool);
      released += kMediumPoolSize;
    } else if (std::size_t size; char* top = top_run(pool, &size)) {
      released += give_back_top_locked(pool, top, size, 0, kPageSize);
      pool->trim_since_ms = 0;
    }
    pool = next;
  }
  return released + give_back_inner_runs_locked(m);
}
}  // namespace

void medium_purge_due(Heap* h) noexcept {
  for (MediumTier& m : h->medium) {
    // An arena nobody has allocated from or freed into since the last call
    // (the background purge calls every half delay) is idle: all its free
    // memory goes back, once.  Otherwise only the tops whose delay is over.
    const std::uint64_t changes = __atomic_load_n(&m.changes, __ATOMIC_RELAXED);
    const bool idle = changes == m.changes_seen;
    m.changes_seen = changes;
    if (idle && !m.idle_trimmed) {
      ArenaGuard g(h, m);
      if (m.changes == changes) {
        trim_arena_locked(h, m);
        m.idle_trimmed = true;
      }
      continue;
    }
    if (!idle) m.idle_trimmed = false;
    if (!__atomic_load_n(&m.trim_due_ms, __ATOMIC_RELAXED)) continue;  // no top waits (a hint)
    ArenaGuard g(h, m);
    maybe_sweep_trims_locked(m);
  }
}

std::size_t medium_trim(Heap* h) noexcept {
  std::size_t released = 0;
  for (MediumTier& m : h->medium) {
    ArenaGuard g(h, m);
    released += trim_arena_locked(h, m);
  }
  return released;
}

void medium_release_all(Heap* h) noexcept {
  for (MediumTier& m : h->medium) {
    LockGuard g(medium_lock(h, m));
    MediumPool* pool = m.pools;
    while (pool) {
      MediumPool* next = pool->next;
      pool->magic = 0;
      heap_unmap(h, pool, kMediumPoolSize);
      pool = next;
    }
    m = MediumTier{};  // as freshly constructed: no pools, empty bins and masks, zero counts
  }
}

void medium_reset_all(Heap* h) noexcept {
  for (MediumTier& m : h->medium) {
    LockGuard g(medium_lock(h, m));
    m.group_mask = 0;
    for (auto& w : m.bin_mask) w = 0;
    for (auto& b : m.bins) b = nullptr;
    for (MediumPool* pool = m.pools; pool; pool = pool->next) {
      pool->used_blocks = pool->used_bytes = 0;
      for (auto& w : pool->starts) w = 0;
      pool->trim_since_ms = 0;
      make_one_free_run_locked(m, pool);
      // Its dirty pages wait for the trim delay like any free top.
      trim_top_locked(m, pool, data_of(pool), kMediumPoolGranules * kMediumGranule);
    }
    m.empty_pools = m.pool_count;
    m.blocks = m.bytes = 0;
  }
}


bool medium_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept {
  const std::uintptr_t sec = secret();
  for (MediumTier& m : h->medium) {
    LockGuard g(medium_lock(h, m));
    for (MediumPool* pool = m.pools; pool; pool = pool->next) {
      for (char* b = data_of(pool); b < data_end(pool);) {
        const std::size_t sz = size_of(tag_at(b));
        // A tag a program overwrote cannot be followed: the rest of the
        // pool is skipped (medium_validate reports it).
        if (!sz || sz % kMediumGranule || sz > static_cast<std::size_t>(data_end(pool) - b)) break;
        char* user = b + kMediumHeaderSize;
        // A block in a thread's medium cache is in use to the tier and
        // carries the free cookie: free to the program.
        const bool live = (tag_at(b)->size_flags & kInUse) && !carries_free_cookie(user, sec);
        if (live || with_free) {
          const BlockInfo info{user, sz - kMediumHeaderSize, h, Tier::kMedium, 0, live};
          if (!visit(info, ctx)) return false;
        }
        b += sz;
      }
    }
  }
  return true;
}

void medium_validate(Heap* h) noexcept {
  for (MediumTier& m : h->medium) {
    LockGuard g(medium_lock(h, m));
    std::size_t pools = 0, empty = 0, blocks = 0, bytes = 0;
    for (MediumPool* pool = m.pools; pool; pool = pool->next) {
      STRATA_CHECK(pool->magic == kMediumPoolMagic && pool->heap == h && pool->arena == &m,
                   "[M0] a medium pool's header was overwritten or it is on another arena's list");
      validate_pool_locked(m, pool);
      ++pools;
      if (!pool->used_blocks) ++empty;
      blocks += pool->used_blocks;
      bytes += pool->used_bytes;
    }
    STRATA_CHECK(pools == m.pool_count && empty == m.empty_pools, "[M5] an arena's pool counts are wrong");
    STRATA_CHECK(blocks == m.blocks && bytes == m.bytes, "[M5] an arena's block counts are not its pools' sums");
    // Every bin holds free blocks of this arena's pools of the bin's size;
    // the masks say which bins hold any.
    for (unsigned i = 0; i < kMediumBins; ++i) {
      const bool bit = (m.bin_mask[i / 32] >> (i % 32)) & 1;
      STRATA_CHECK(bit == (m.bins[i] != nullptr), "[M6] a bin's mask bit does not say whether it holds a block");
      for (MediumFree* f = m.bins[i]; f; f = f->next) {
        STRATA_CHECK(!(f->tag.size_flags & kInUse) && bin_index(size_of(&f->tag)) == i,
                     "[M6] a bin holds a block in use or of another size");
        STRATA_CHECK(pool_of(reinterpret_cast<char*>(f))->arena == &m, "[M6] a bin holds a block of another arena");
      }
    }
    for (unsigned g32 = 0; g32 < kMediumBins / 32; ++g32)
      STRATA_CHECK(((m.group_mask >> g32) & 1) == (m.bin_mask[g32] != 0), "[M6] a group mask bit is wrong");
  }
}

// The free block at data offset `off`: its size at both of its ends, then
// the sentinel or an in-use start (medium.hpp), under the arena lock (its
// tags read once each: a use after free may write them at any moment).
std::size_t medium_free_run(MediumPool* pool, std::size_t off) noexcept {
  constexpr std::size_t kTotal = kMediumPoolGranules * kMediumGranule;
  char* data = data_of(pool);
  auto* free_tag = tag_at(data + off);
  std::size_t flags = __atomic_load_n(&free_tag->size_flags, __ATOMIC_RELAXED), fs = flags & kSizeMask;
  if ((flags & kInUse) || fs < kMediumGranule || fs > kTotal - off) return 0;
  const std::size_t f_end = (off + fs) / kMediumGranule;
  auto* after = tag_at(data + f_end * kMediumGranule);
  const std::size_t after_flags = __atomic_load_n(&after->size_flags, __ATOMIC_RELAXED);
  bool valid = (after_flags & kPrevFree) && (after_flags & kInUse) &&
               __atomic_load_n(&after->prev_size, __ATOMIC_RELAXED) == fs &&
               (f_end == kMediumPoolGranules || medium_start_bit(pool, f_end));
  return valid ? fs : 0;
}

}  // namespace strata::detail
