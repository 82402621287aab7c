// strata — the large tier: one mapping per block, 64 KiB granular, grown and
// shrunk in place with mremap; one that must move is copied up to
// kLargeCopyMax (realloc.cpp) and moved with mremap above.
// The header (LargeBlock) sits just below the user pointer, inside the mapping.
#include "error.hpp"
#include "heap.hpp"
#include "track.hpp"
#include "list.hpp"
#include "os.hpp"

namespace strata::detail {

namespace {

// Live (and parked) blocks are on LargeTier::blocks, kept mappings on
// LargeTier::cached; a block is on one of them at a time.
using LargeList = IntrusiveList<&LargeBlock::next, &LargeBlock::prev>;

// The tier's lock; a forged header found under it is reported once it is
// released (the handler may call strata).
class TierGuard {
 public:
  explicit TierGuard(LargeTier& t) noexcept : t_(t) { t_.lock.lock(); }
  ~TierGuard() {
    const void* bad = t_.corrupt;
    t_.corrupt = nullptr;
    t_.lock.unlock();
    if (STRATA_UNLIKELY(bad))
      report(STRATA_ERROR_CORRUPTION, bad, "free",
             "a large block's header (its list links) was overwritten: the block is left as it is, never handed "
             "out again");
  }
  TierGuard(const TierGuard&) = delete;
  TierGuard& operator=(const TierGuard&) = delete;

 private:
  LargeTier& t_;
};

// Safe unlinking: lb leaves list `head` only if its links lead to headers
// the chunk map names and those link back to it; else it is recorded as
// corrupt (lock held) and stays where it is.
bool list_remove_locked(LargeTier& t, LargeBlock*& head, LargeBlock* lb) noexcept {
  LargeBlock* n = lb->next;
  LargeBlock* p = lb->prev;
  if (STRATA_UNLIKELY(!large_link_ok(n) || !large_link_ok(p) || (n && n->prev != lb) ||
                      (p ? p->next != lb : head != lb))) {
    if (!t.corrupt) t.corrupt = reinterpret_cast<const char*>(lb) + kLargeHeaderSize;  // its user pointer
    return false;
  }
  LargeList::remove(head, lb);
  return true;
}

void link_locked(LargeTier& t, LargeBlock* lb) noexcept {
  LargeList::push_front(t.blocks, lb);
  t.count++;
  t.bytes += lb->map_size;
}
[[nodiscard]] bool unlink_locked(LargeTier& t, LargeBlock* lb) noexcept {
  if (!list_remove_locked(t, t.blocks, lb)) return false;
  t.count--;
  t.bytes -= lb->map_size;
  return true;
}

// A block's index in the chunk map (chunk_map.hpp, O(log n) entries): its
// anchors are the first and last chunk of its mapping and the chunks of its
// header and user pointer; interior marks cover the chunks between them.
chunk_map::Extent extent_of(const LargeBlock* lb) noexcept {
  return {reinterpret_cast<std::uintptr_t>(lb->base), lb->map_size, reinterpret_cast<std::uintptr_t>(lb),
          reinterpret_cast<std::uintptr_t>(lb->user)};
}
// A kept block's (its header at the mapping's start).
chunk_map::Extent kept_extent(const char* base, std::size_t size) noexcept {
  auto b = reinterpret_cast<std::uintptr_t>(base);
  return {b, size, b, b + kLargeHeaderSize};
}
inline std::uintptr_t entry_of(const LargeBlock* lb) noexcept { return chunk_map::make(lb, ChunkKind::kLarge); }
// Re-indexes lb, whose header changed from `was` (lock held), inside ranges
// indexed before: no new leaf is needed (set_extent mapped every leaf of
// an indexed range), so this cannot fail.
void reindex_locked(const chunk_map::Extent& was, const LargeBlock* lb) noexcept {
  const bool ok = chunk_map::move_extent(was, extent_of(lb), entry_of(lb));
  STRATA_CHECK(ok, "a large block's chunk-map leaf is missing");
}

void cache_push_locked(LargeTier& t, LargeBlock* lb) noexcept {
  set_large_magic(lb, kLargeCachedMagic);
  lb->requested = os::now_ms();  // a kept block's: when it was kept (large_purge)
  LargeList::push_front(t.cached, lb);
  t.cached_count++;
  t.cached_bytes += lb->map_size;
}
[[nodiscard]] bool cache_remove_locked(LargeTier& t, LargeBlock* lb) noexcept {
  if (!list_remove_locked(t, t.cached, lb)) return false;
  t.cached_count--;
  t.cached_bytes -= lb->map_size;
  return true;
}
// The kept list found forged: dropped whole (its mappings stay mapped and
// indexed, never reused); the tier's kept counts start again from zero.
void cache_drop_locked(LargeTier& t) noexcept {
  t.cached = nullptr;
  t.cached_count = t.cached_bytes = 0;
}

// Best fit among the kept mappings (lock held), removed from the cache.
LargeBlock* cache_take_locked(LargeTier& t, std::size_t map_size) noexcept {
  LargeBlock* best = nullptr;
  for (LargeBlock* lb = t.cached; lb; lb = large_next(lb))
    if (lb->map_size >= map_size && (!best || lb->map_size < best->map_size)) best = lb;
  if (best && !cache_remove_locked(t, best)) {
    cache_drop_locked(t);
    best = nullptr;
  }
  return best;
}

// The smallest piece worth keeping is kLargeMinKeptPiece (config.hpp): a
// piece too small to serve a large request alone is still kept, because it
// merges with its neighbours when they come back (giving touched pages back
// to the OS only to fault fresh ones in soon after is what makes large-block
// churn slow).

// Rule: a large block's header is read through the chunk map under the tier
// lock (kept_block_at, the left-neighbour look-up), so a block leaves the map
// and loses its magic under that lock, and is unmapped only after that.
void unindex_locked(LargeBlock* lb) noexcept {
  set_large_magic(lb, 0);
  chunk_map::clear_extent(extent_of(lb), static_cast<std::uintptr_t>(ChunkKind::kFreed));
}
void release_unindexed(Heap* h, char* base, std::size_t size) noexcept {
  os::unmap(base, size);
  heap_account_os(h, -static_cast<std::ptrdiff_t>(size));
}
// Takes kept block lb off the tier and the chunk map onto *chain (linked
// through next), for release_chain once the lock is released; false, the
// kept list dropped, if its links were forged.
bool cache_evict_locked(LargeTier& t, LargeBlock* lb, LargeBlock** chain) noexcept {
  if (!cache_remove_locked(t, lb)) {
    cache_drop_locked(t);
    return false;
  }
  unindex_locked(lb);
  lb->next = *chain;
  *chain = lb;
  return true;
}
// Unmaps a chain (linked through next) of mappings taken off the tier and
// the chunk map under the lock; the bytes unmapped.
std::size_t release_chain(Heap* h, LargeBlock* chain) noexcept {
  std::size_t released = 0;
  while (chain) {
    LargeBlock* next = chain->next;
    released += chain->map_size;
    release_unindexed(h, chain->base, chain->map_size);
    chain = next;
  }
  return released;
}

// The kept block of heap h that starts exactly at `at`, or null (lock held).
// The chunk map tells whether `at` is strata's large memory before its header
// is read.
LargeBlock* kept_block_at(Heap* h, char* at) noexcept {
  std::uintptr_t e = chunk_map::lookup(reinterpret_cast<std::uintptr_t>(at));
  if (chunk_map::kind_of(e) != ChunkKind::kLarge) return nullptr;
  auto* lb = chunk_map::owner_of<LargeBlock>(e);
  return large_magic(lb) == kLargeCachedMagic && large_heap(lb) == h && lb->base == at ? lb : nullptr;
}

// Makes [base, base + size) a kept block with its header at base, merged with
// kept neighbours (lock held).  Neighbours may be separate mappings; a merged
// block is still unmapped correctly, and mremap on it simply fails over to a
// move when the kernel kept the mappings apart.  `was`: the range's index
// in the chunk map now (a freed block's; null: not indexed), rewritten only
// where it differs (a freed block whose header was at its mapping's start
// is indexed as a kept block already).
LargeBlock* make_kept_locked(Heap* h, char* base, std::size_t size, const chunk_map::Extent* was = nullptr) noexcept {
  LargeTier& t = h->large;
  if (base == nullptr) return nullptr;  // never a mapping (and base - kChunkSize below must not wrap)
  // Index the piece first (this may need a new chunk-map leaf, and fail with
  // nothing changed); merged neighbours are indexed already, so from here on
  // no new leaf is needed.
  const chunk_map::Extent piece = kept_extent(base, size);
  const std::uintptr_t piece_entry = chunk_map::make(base, ChunkKind::kLarge);
  if (!was ? !chunk_map::set_extent(piece, piece_entry)
           : !(*was == piece) && !chunk_map::move_extent(*was, piece, piece_entry))
    return nullptr;
  chunk_map::Extent right_x{}, left_x{};
  bool merged_right = false, merged_left = false;
  if (LargeBlock* right = kept_block_at(h, base + size); right && cache_remove_locked(t, right)) {
    right_x = extent_of(right);
    merged_right = true;
    set_large_magic(right, 0);
    size += right->map_size;
  }
  {
    std::uintptr_t e = chunk_map::lookup(reinterpret_cast<std::uintptr_t>(base) - kChunkSize);
    if (chunk_map::kind_of(e) == ChunkKind::kLarge) {
      auto* left = chunk_map::owner_of<LargeBlock>(e);
      if (large_magic(left) == kLargeCachedMagic && large_heap(left) == h && left->base + left->map_size == base &&
          cache_remove_locked(t, left)) {
        left_x = extent_of(left);
        merged_left = true;
        base = left->base;
        size += left->map_size;
      }
    }
  }
  auto* lb = reinterpret_cast<LargeBlock*>(base);
  set_large_heap(lb, h);
  lb->base = base;
  lb->map_size = size;
  lb->user = base + kLargeHeaderSize;
  if (merged_right || merged_left) {
    // The merged block's index, then what is left of the pieces' cleared.
    const chunk_map::Extent merged = extent_of(lb);
    reindex_locked(piece, lb);
    const auto none = static_cast<std::uintptr_t>(ChunkKind::kNone);
    if (merged_right) chunk_map::clear_extent(right_x, none, &merged);
    if (merged_left) chunk_map::clear_extent(left_x, none, &merged);
  }
  cache_push_locked(h->large, lb);
  return lb;
}

// Makes the mapping [base, base + map_size) a live block whose user pointer
// is `user` (header just below it) and indexes it; null if the chunk map
// cannot (the caller unmaps).  The header is written before the chunk map
// publishes the block (a release store; lookup() reads with acquire): another
// thread merging a kept block with its right neighbour reads the header of
// whatever the map shows at that address, and this mapping may have landed
// just there.
LargeBlock* publish_live(Heap* h, char* base, std::size_t map_size, char* user) noexcept {
  auto* lb = reinterpret_cast<LargeBlock*>(user - kLargeHeaderSize);
  set_large_magic(lb, kLargeMagic);
  set_large_heap(lb, h);
  lb->base = base;
  lb->map_size = map_size;
  lb->user = user;
  if (!chunk_map::set_extent(extent_of(lb), entry_of(lb))) return nullptr;
  os::name_region(base, map_size, "strata:large");
  return lb;
}

// The mapped bytes a request of `size` bytes needs with its header at the
// mapping's start (it wraps for a size near 2^64: callers bound size).
inline std::size_t request_map_size(std::size_t size) noexcept {
  return align_up(size + kLargeHeaderSize, kChunkSize);
}
// A mapping of `have` >= map_size bytes serves a request of map_size bytes
// whole when it is at most an eighth too big; a bigger one is split.
inline bool serves_whole(std::size_t have, std::size_t map_size) noexcept { return have - map_size <= map_size / 8; }

// A kept mapping for a request of `size` bytes, or null (no kept one fits).
void* large_alloc_cached(Heap* h, std::size_t size) noexcept {
  if (size > kLargeCacheMaxBlock) return nullptr;
  std::size_t map_size = request_map_size(size);
  LargeBlock* lb;
  {
    TierGuard g(h->large);
    lb = cache_take_locked(h->large, map_size);
    if (lb) {
      set_large_magic(lb, kLargeMagic);  // taken: never again a kept neighbour of its own tail
      // Split off what is more than an eighth too much and keep it (the
      // pieces merge again when the block comes back).
      if (!serves_whole(lb->map_size, map_size)) {
        const chunk_map::Extent whole = extent_of(lb);
        const std::size_t rest = lb->map_size - map_size;
        lb->map_size = map_size;
        reindex_locked(whole, lb);
        if (!make_kept_locked(h, lb->base + map_size, rest)) {  // kept whole after all
          const chunk_map::Extent cut = extent_of(lb);
          lb->map_size += rest;
          reindex_locked(cut, lb);
        }
      }
      link_locked(h->large, lb);
    }
  }
  if (!lb) return nullptr;
  heap_account_central(h, static_cast<std::ptrdiff_t>(lb->map_size));
  return lb->user;
}

// Takes tc's parked block out of tc and makes it live again; null if it has
// none (or the background purge took it first).
LargeBlock* take_parked(ThreadCache* tc) noexcept {
  LargeBlock* lb = __atomic_exchange_n(&tc->parked_large, nullptr, __ATOMIC_ACQ_REL);
  if (!lb) return nullptr;
  __atomic_store_n(&tc->parked_large_bytes, 0, __ATOMIC_RELAXED);
  set_large_magic(lb, kLargeMagic);
  return lb;
}

}  // namespace

bool large_park(ThreadCache* tc, LargeBlock* lb) noexcept {
  if (lb->map_size > kLargeParkMax || reinterpret_cast<char*>(lb) != lb->base) return false;
  large_unpark(tc);  // the block parked before
  set_large_magic(lb, kLargeParkedMagic);
  __atomic_store_n(&tc->parked_large_bytes, lb->map_size, __ATOMIC_RELAXED);
  __atomic_store_n(&tc->parked_large, lb, __ATOMIC_RELEASE);
  return true;
}

void large_unpark(ThreadCache* tc, bool keep) noexcept {
  if (LargeBlock* lb = take_parked(tc)) large_free(tc->heap, lb, keep);
}

void large_reclaim_parked(Heap* h) noexcept {
  constexpr unsigned kMax = 64;  // per call: the rest on the next
  LargeBlock* taken[kMax];
  unsigned n = 0;
  {
    LockGuard g(h->meta_lock);  // the cache list
    for (ThreadCache* tc = h->caches; tc && n < kMax; tc = tc->next) {
      LargeBlock* seen = tc->parked_seen;
      LargeBlock* now = __atomic_load_n(&tc->parked_large, __ATOMIC_ACQUIRE);
      tc->parked_seen = now;
      if (!now || now != seen) continue;
      // Parked since the last call: its thread has not freed or allocated a
      // large block for at least a purge period.  Taken unless its thread
      // takes it first.
      if (!__atomic_compare_exchange_n(&tc->parked_large, &now, nullptr, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        continue;
      __atomic_store_n(&tc->parked_large_bytes, 0, __ATOMIC_RELAXED);
      tc->parked_seen = nullptr;
      taken[n++] = now;
    }
  }
  for (unsigned i = 0; i < n; ++i) {
    set_large_magic(taken[i], kLargeMagic);
    large_free(h, taken[i], /*keep=*/false);  // it has idled a period already: unmapped
  }
}

namespace {
void* large_alloc_block(Heap* h, std::size_t size, std::size_t align, bool use_cache) noexcept {
  if (use_cache && align <= kLargeHeaderSize) {
    // The thread's parked block, if it fits the request with at most an
    // eighth to spare (the rule a kept mapping is split by); else it joins
    // the kept mappings first, where it merges with its kept neighbours
    // and may serve this request.
    if (ThreadCache* tc = cache_lookup(h); tc && __atomic_load_n(&tc->parked_large, __ATOMIC_RELAXED)) {
      if (LargeBlock* lb = take_parked(tc)) {  // (the background purge may have taken it meanwhile)
        std::size_t have = lb->map_size;
        std::size_t map_size = request_map_size(size);  // wrapped for a huge size, which the bound rejects
        if (size <= kLargeParkMax && have >= map_size && serves_whole(have, map_size)) return lb->user;
        large_free(h, lb);
      }
    }
    if (void* p = large_alloc_cached(h, size)) return p;
  }
  if (align < kLargeHeaderSize) align = kLargeHeaderSize;
  std::size_t extra = align + kLargeHeaderSize;  // room for the header below an aligned user pointer
  if (size > kMaxRequest || align > (std::size_t{1} << 40)) return nullptr;
  std::size_t map_size = align_up(size + extra, kChunkSize);
  // A cacheable request maps at least kLargeMapMin and keeps the rest: untouched
  // pages cost no memory, and later requests are served without a system call.
  std::size_t spare = 0;
  if (use_cache && map_size < kLargeMapMin && align <= kLargeHeaderSize) spare = kLargeMapMin - map_size;
  char* base = static_cast<char*>(os::map_aligned(map_size + spare, kChunkSize, /*checked=*/true));
  if (!base) return nullptr;
  auto user = reinterpret_cast<char*>(align_up(reinterpret_cast<std::uintptr_t>(base) + kLargeHeaderSize, align));
  LargeBlock* lb = publish_live(h, base, map_size, user);
  if (!lb) {
    os::unmap(base, map_size + spare);  // the spare too: it is not kept yet
    return nullptr;
  }
  // The spare part after the block (indexed only now that the block is, so
  // its left neighbour is this live block and never a stale entry).
  if (spare) {
    bool kept = false;
    if (spare >= kLargeMinKeptPiece) {
      TierGuard g(h->large);
      kept = make_kept_locked(h, base + map_size, spare) != nullptr;
    }
    if (kept) heap_account_os(h, static_cast<std::ptrdiff_t>(spare));  // given back when it is unmapped
    else os::unmap(base + map_size, spare);
  }
  h->map_calls.fetch_add(1, std::memory_order_relaxed);
  heap_account_os(h, static_cast<std::ptrdiff_t>(map_size));
  {
    TierGuard g(h->large);
    link_locked(h->large, lb);
  }
  heap_account_central(h, static_cast<std::ptrdiff_t>(map_size));
  return user;
}
}  // namespace

void* large_alloc(Heap* h, std::size_t size, std::size_t align, bool use_cache) noexcept {
  void* p = large_alloc_block(h, size, align, use_cache);
  if (p) {
    large_set_requested(p, size);
    track_alloc(h, p);
  }
  return p;
}

bool large_free(Heap* h, LargeBlock* lb, bool keep) noexcept {
  std::size_t size = lb->map_size;
  if (keep && size <= kLargeCacheMaxBlock) {
    LargeBlock* evicted = nullptr;  // chain of kept blocks over the budget, unmapped after the lock
    bool kept;
    {
      TierGuard g(h->large);
      LargeTier& t = h->large;
      if (!unlink_locked(t, lb)) return false;
      set_large_magic(lb, 0);
      // Kept with its header at the mapping's start (an aligned block's
      // header was elsewhere).
      const chunk_map::Extent was = extent_of(lb);
      kept = make_kept_locked(h, lb->base, size, &was) != nullptr;
      if (!kept) chunk_map::clear_extent(was, static_cast<std::uintptr_t>(ChunkKind::kFreed));
      std::size_t budget = t.bytes + (t.bytes < kLargeCacheMaxExtra ? t.bytes : kLargeCacheMaxExtra);
      if (budget < kLargeCacheMinBytes) budget = kLargeCacheMinBytes;
      while (kept && (t.cached_bytes > budget || t.cached_count > kLargeCacheMaxBlocks)) {
        LargeBlock* oldest = t.cached;
        while (oldest->next && large_link_ok(oldest->next)) oldest = oldest->next;
        if (STRATA_UNLIKELY(oldest->next)) {  // a forged link: the kept list is dropped
          if (!t.corrupt) t.corrupt = reinterpret_cast<char*>(oldest) + kLargeHeaderSize;
          cache_drop_locked(t);
          break;
        }
        std::size_t excess = align_up(t.cached_bytes - budget, kChunkSize);
        if (t.cached_count <= kLargeCacheMaxBlocks && t.cached_bytes > budget && oldest->map_size > excess) {
          // Only part of the oldest block is over the budget: give back its
          // top, keep the rest (merged blocks can be big).
          char* cut = oldest->base + oldest->map_size - excess;
          const chunk_map::Extent whole = extent_of(oldest);
          oldest->map_size -= excess;
          reindex_locked(whole, oldest);
          t.cached_bytes -= excess;
          auto* piece = reinterpret_cast<LargeBlock*>(cut);
          piece->base = cut;
          piece->map_size = excess;
          piece->next = evicted;
          evicted = piece;
          break;
        }
        if (!cache_evict_locked(t, oldest, &evicted)) break;
      }
    }
    heap_account_central(h, -static_cast<std::ptrdiff_t>(size));
    release_chain(h, evicted);
    if (!kept) release_unindexed(h, lb->base, size);
    return true;
  }
  char* base = lb->base;
  {
    TierGuard g(h->large);
    if (!unlink_locked(h->large, lb)) return false;
    unindex_locked(lb);
  }
  heap_account_central(h, -static_cast<std::ptrdiff_t>(size));
  release_unindexed(h, base, size);
  return true;
}

namespace {
bool resize_in_place(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept {
  std::size_t head = static_cast<std::size_t>(static_cast<char*>(lb->user) - lb->base);
  if (new_size > kMaxRequest) return false;
  std::size_t new_map = align_up(head + new_size, kChunkSize);
  std::size_t old_map = lb->map_size;
  if (new_map == old_map) return true;
  const chunk_map::Extent was = extent_of(lb);
  if (new_map < old_map) {
    // The tail is kept for reuse when it can serve a large request.
    char* tail = lb->base + new_map;
    std::size_t rest = old_map - new_map;
    bool kept;
    {
      TierGuard g(h->large);
      lb->map_size = new_map;
      h->large.bytes -= rest;
      reindex_locked(was, lb);
      kept = rest >= kLargeMinKeptPiece && make_kept_locked(h, tail, rest) != nullptr;
    }
    if (!kept) release_unindexed(h, tail, rest);
    heap_account_central(h, -static_cast<std::ptrdiff_t>(rest));
    return true;
  }
  // Grow into a kept neighbour first, then by mremap.
  const std::size_t grow = new_map - old_map;
  char* drop = nullptr;
  std::size_t drop_size = 0;
  bool absorbed = false;
  {
    TierGuard g(h->large);
    if (LargeBlock* right = kept_block_at(h, lb->base + old_map);
        right && right->map_size >= grow && cache_remove_locked(h->large, right)) {
      const chunk_map::Extent right_x = extent_of(right);
      set_large_magic(right, 0);
      const std::size_t rest = right->map_size - grow;
      chunk_map::clear_extent(right_x, static_cast<std::uintptr_t>(ChunkKind::kNone));
      lb->map_size = new_map;
      h->large.bytes += grow;
      reindex_locked(was, lb);  // over the neighbour's range, whose leaves exist
      if (rest) {
        char* tail = lb->base + new_map;
        if (rest < kLargeMinKeptPiece || !make_kept_locked(h, tail, rest)) {
          drop = tail;
          drop_size = rest;
        }
      }
      absorbed = true;
    }
  }
  if (drop) release_unindexed(h, drop, drop_size);
  if (!absorbed) {
    if (!os::remap_in_place(lb->base, old_map, new_map)) return false;
    bool indexed;
    {
      TierGuard g(h->large);
      lb->map_size = new_map;
      indexed = chunk_map::move_extent(was, extent_of(lb), entry_of(lb));  // may need a new leaf
      if (indexed) h->large.bytes += grow;
      else lb->map_size = old_map;
    }
    if (!indexed) {
      os::remap_in_place(lb->base, new_map, old_map);
      return false;
    }
    heap_account_os(h, static_cast<std::ptrdiff_t>(grow));
  }
  heap_account_central(h, static_cast<std::ptrdiff_t>(grow));
  return true;
}

}  // namespace

bool large_resize_in_place(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept {
  if (!resize_in_place(h, lb, new_size)) return false;
  large_set_requested(lb->user, new_size);
  return true;
}

void* large_move(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept {
  std::size_t head = static_cast<std::size_t>(static_cast<char*>(lb->user) - lb->base);
  if (new_size > kMaxRequest) return nullptr;
  std::size_t new_map = align_up(head + new_size, kChunkSize);
  std::size_t old_map = lb->map_size;
  char* old_base = lb->base;
  TierGuard g(h->large);
  if (!unlink_locked(h->large, lb)) return nullptr;
  const chunk_map::Extent was = extent_of(lb);  // read before the header moves away
  auto* nb = static_cast<char*>(os::remap_move_aligned(old_base, old_map, new_map, kChunkSize));
  if (!nb) {
    link_locked(h->large, lb);
    return nullptr;
  }
  auto* nlb = reinterpret_cast<LargeBlock*>(nb + (reinterpret_cast<char*>(lb) - old_base));
  const auto nba = reinterpret_cast<std::uintptr_t>(nb);
  if (!chunk_map::set_extent({nba, new_map, reinterpret_cast<std::uintptr_t>(nlb), nba + head}, entry_of(nlb))) {
    // Cannot index the new place: move back (the old range is still indexed).
    void* back = os::remap_move_aligned(nb, new_map, old_map, kChunkSize);
    STRATA_CHECK(back, "large block lost while moving back");
    return nullptr;
  }
  chunk_map::clear_extent(was, static_cast<std::uintptr_t>(ChunkKind::kFreed));
  // The old range may overlap the new one only if mremap reused it; it cannot
  // (the destination was a fresh reservation), so the tombstones are safe.
  nlb->base = nb;
  nlb->map_size = new_map;
  nlb->user = nb + head;
  nlb->requested = new_size;
  link_locked(h->large, nlb);
  h->map_calls.fetch_add(1, std::memory_order_relaxed);
  heap_account_os(h, static_cast<std::ptrdiff_t>(new_map) - static_cast<std::ptrdiff_t>(old_map));
  heap_account_central(h, static_cast<std::ptrdiff_t>(new_map) - static_cast<std::ptrdiff_t>(old_map));
  return nlb->user;
}

std::size_t large_purge(Heap* h, std::uint64_t min_age_ms) noexcept {
  const std::uint64_t now = os::now_ms();
  LargeBlock* chain = nullptr;
  {
    TierGuard g(h->large);
    LargeTier& t = h->large;
    for (LargeBlock* lb = t.cached; lb;) {
      LargeBlock* next = large_next(lb);
      if (lb->requested + min_age_ms <= now && !cache_evict_locked(t, lb, &chain)) break;
      lb = next;
    }
  }
  return release_chain(h, chain);
}

// Every kept mapping: each was kept at or before now.
std::size_t large_trim(Heap* h) noexcept { return large_purge(h, 0); }

void large_release_all(Heap* h) noexcept {
  LargeTier& t = h->large;
  TierGuard g(t);
  for (LargeBlock* list : {t.cached, t.blocks}) {
    while (list) {
      LargeBlock* next = large_next(list);
      char* base = list->base;
      std::size_t size = list->map_size;
      unindex_locked(list);
      release_unindexed(h, base, size);
      list = next;
    }
  }
  t.blocks = t.cached = nullptr;
  t.count = t.bytes = t.cached_count = t.cached_bytes = 0;
}

void large_reset_all(Heap* h) noexcept {
  for (;;) {
    LargeBlock* lb;
    {
      TierGuard g(h->large);
      lb = h->large.blocks;
    }
    if (!lb) break;
    set_large_magic(lb, kLargeMagic);  // a parked one is live to large_free (the caches forgot it)
    if (!large_free(h, lb)) {  // a forged header: the rest of the list is left mapped (reported)
      TierGuard g(h->large);
      h->large.blocks = nullptr;
      h->large.count = h->large.bytes = 0;
      break;
    }
  }
}

bool large_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept {
  LargeTier& t = h->large;
  TierGuard g(t);
  for (LargeBlock* lb = t.blocks; lb; lb = large_next(lb)) {
    const bool live = large_magic(lb) == kLargeMagic;  // else parked in a thread cache
    if (!live && !with_free) continue;
    if (!visit(BlockInfo{lb->user, large_usable(lb), h, Tier::kLarge, 0, live}, ctx)) return false;
  }
  if (with_free)
    for (LargeBlock* lb = t.cached; lb; lb = large_next(lb))
      if (!visit(BlockInfo{lb->user, large_usable(lb), h, Tier::kLarge, 0, false}, ctx)) return false;
  return true;
}

void large_validate(Heap* h) noexcept {
  LargeTier& t = h->large;
  TierGuard g(t);
  std::size_t count = 0, bytes = 0;
  auto check_index = [](LargeBlock* lb) {
    STRATA_CHECK(chunk_map::extent_indexed(extent_of(lb), entry_of(lb)),
                 "[L2] a large block's index in the chunk map is not what its header says");
    STRATA_CHECK(chunk_map::lookup(reinterpret_cast<std::uintptr_t>(lb->base + lb->map_size)) != entry_of(lb),
                 "[L2] the chunk after a large block maps to it");
  };
  for (LargeBlock* lb = t.blocks; lb; lb = lb->next) {
    STRATA_CHECK(large_link_ok(lb->next), "[L1] a live large block's list link was overwritten");
    std::uint64_t magic = large_magic(lb);
    STRATA_CHECK((magic == kLargeMagic || magic == kLargeParkedMagic) && lb->heap == h,
                 "[L1] a live large block's header was overwritten");
    STRATA_CHECK(static_cast<char*>(lb->user) - kLargeHeaderSize == reinterpret_cast<char*>(lb) &&
                     reinterpret_cast<char*>(lb) >= lb->base && lb->map_size % kChunkSize == 0,
                 "[L1] a live large block's header does not describe its mapping");
    check_index(lb);
    ++count;
    bytes += lb->map_size;
  }
  STRATA_CHECK(count == t.count && bytes == t.bytes, "[L3] the large tier's live counts are wrong");
  count = bytes = 0;
  for (LargeBlock* lb = t.cached; lb; lb = lb->next) {
    STRATA_CHECK(large_link_ok(lb->next), "[L1] a kept large mapping's list link was overwritten");
    STRATA_CHECK(large_magic(lb) == kLargeCachedMagic && lb->heap == h && lb->base == reinterpret_cast<char*>(lb),
                 "[L1] a kept large mapping's header was overwritten");
    check_index(lb);
    ++count;
    bytes += lb->map_size;
  }
  STRATA_CHECK(count == t.cached_count && bytes == t.cached_bytes, "[L3] the large tier's kept counts are wrong");
}

}  // namespace strata::detail
