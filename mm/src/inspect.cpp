// strata — the core's introspection primitives (<strata/state.h>): the
// state of a heap per size class and tier with the usage summary, the block
// walk delivered in batches with no lock held, and the regions a heap holds.
// The reports (mm/report/) are built on these three and nothing else.
//
// Every function takes the heap's locks one at a time (a class, an arena,
// the large tier, the span store, the metadata lock), each for a bounded
// while: a lock busy beyond wait_ms is skipped and the answer marked
// incomplete.  Thread caches are read as relaxed snapshots without stopping
// their threads, as the summary does.  Nothing here allocates from a heap.
// Layer: report primitives (above the heap; the API's introspection half).
#include <strata/state.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "heap.hpp"
#include "os.hpp"
#include "scratch.hpp"

using namespace strata::detail;

namespace {

// Bounded waits for the heap's locks (FastMM5's lock timeout).
struct Budget {
  unsigned wait_ms;
  unsigned skipped = 0;
  bool take(Lock& l) noexcept {
    if (l.try_lock()) return true;
    if (wait_ms == STRATA_WAIT_FOREVER) {
      l.lock();
      return true;
    }
    // The coarse clock ticks every few milliseconds: one tick more than asked at most.
    const std::uint64_t deadline = os::now_ms() + wait_ms;
    for (unsigned i = 0;; ++i) {
      if (l.try_lock()) return true;
      if (os::now_ms() > deadline) {
        ++skipped;
        return false;
      }
      if (i >= 64) os::yield();
    }
  }
};

// A lock taken through a Budget, released at the end of the scope.
class Held {
 public:
  Held(Lock& l, Budget& b) noexcept : l_(b.take(l) ? &l : nullptr) {}
  ~Held() { if (l_) l_->unlock(); }
  explicit operator bool() const noexcept { return l_ != nullptr; }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

 private:
  Lock* l_;
};

strata_pool_t* pool_handle(Heap* h) noexcept {
  return h == &g_default_heap ? nullptr : reinterpret_cast<strata_pool_t*>(h);
}

std::size_t heap_object_bytes(Heap* h) noexcept { return h->is_pool ? align_up(sizeof(Heap), kChunkSize) : 0; }

// A span's assigned flag and class, read under the span store's lock while
// its class's owner may be assigning it (span_acquire sets them after it
// leaves the store's lock): a snapshot, checked again under the class lock.
__attribute__((no_sanitize("thread"))) bool span_is_of(const Span* s, unsigned c) noexcept {
  return *static_cast<const volatile bool*>(&s->assigned) &&
         *static_cast<const volatile std::uint8_t*>(&s->size_class) == c;
}
__attribute__((no_sanitize("thread"))) bool span_assigned_racy(const Span* s) noexcept {
  return *static_cast<const volatile bool*>(&s->assigned);
}

// ---- state ------------------------------------------------------------------

struct CacheCounts {
  std::size_t small[kNumClasses] = {};
  std::size_t medium_blocks = 0, medium_bytes = 0;
  std::size_t parked = 0, parked_bytes = 0;
};

void state_caches(Heap* h, strata_heap_state_t& s, CacheCounts& cc, Budget& b) noexcept {
  Held g(h->meta_lock, b);
  if (!g) return;
  for (ThreadCache* tc = h->caches; tc; tc = tc->next) {
    s.thread_caches++;
    for (unsigned c = 0; c < kNumClasses; ++c) cc.small[c] += bin_count(tc->bins[c]) + bin_count(tc->foreign[c]);
    for (unsigned c = 0; c < kNumMediumClasses; ++c) cc.medium_blocks += bin_count(tc->medium_bins[c]);
    cc.medium_bytes += cache_bytes_racy(tc->medium_cached_bytes);
    if (std::size_t pb = cache_bytes_racy(tc->parked_large_bytes)) {
      cc.parked++;
      cc.parked_bytes += pb;
    }
  }
  for (MetaRegion* r = h->meta_regions; r; r = r->next) s.bookkeeping_bytes += r->size;
}

// Returns the small tier's overhead bytes (span headers and tails).
std::size_t state_small(Heap* h, strata_heap_state_t& s, const CacheCounts& cc, Budget& b) noexcept {
  std::size_t overhead = 0;
  s.class_count = kNumClasses;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    strata_class_state_t& k = s.classes[c];
    k.block_size = kClassSize[c];
    std::size_t spans = 0, out = 0, pending = 0;
    {
      Held g(h->classes[c].lock, b);
      if (!g) continue;
      pending = small_pending_count_locked(h, c);
      Held st(h->spans.lock, b);
      if (!st) continue;
      for (Span* sp = h->spans.all; sp; sp = sp->all_next) {
        if (!span_is_of(sp, c)) continue;
        ++spans;
        out += sp->used.get();
      }
    }
    const std::size_t capacity = blocks_per_span(c);
    const std::size_t free_blocks = cc.small[c] + pending;
    k.spans = spans;
    k.bytes_reserved = spans * kSpanSize;
    k.blocks_free_in_spans = spans * capacity - out;
    k.blocks_in_thread_caches = free_blocks;
    k.blocks_in_use = out > free_blocks ? out - free_blocks : 0;
    k.bytes_in_use = k.blocks_in_use * k.block_size;
    s.small.blocks_in_use += k.blocks_in_use;
    s.small.bytes_in_use += k.bytes_in_use;
    s.small.free_bytes += (k.blocks_free_in_spans + k.blocks_in_thread_caches) * k.block_size;
    overhead += spans * (kSpanSize - capacity * k.block_size);
  }
  // The rest of a cached bin's count above its blocks (read while the owner
  // pops) is not corrected: exact when the caches' threads are idle.
  Held st(h->spans.lock, b);
  if (st) {
    s.small.empty_spans = h->spans.free_count;
    const std::size_t fresh = static_cast<std::size_t>(h->spans.fresh_end - h->spans.fresh);
    s.small.bytes_reserved = h->spans.count * kSpanSize + fresh;
    s.small.free_bytes += h->spans.free_count * kSpanSize + fresh;
  }
  return overhead;
}

std::size_t state_medium(Heap* h, strata_heap_state_t& s, const CacheCounts& cc, Budget& b) noexcept {
  std::size_t tier_blocks = 0, tier_bytes = 0, pools = 0, free_bytes = 0;
  for (MediumTier& m : h->medium) {
    Held g(medium_lock(h, m), b);
    if (!g) continue;
    pools += m.pool_count;
    tier_blocks += m.blocks;
    tier_bytes += m.bytes;
    for (unsigned w = 0; w < kMediumBins / 32; ++w) s.medium.bins_in_use += std::popcount(m.bin_mask[w]);
    for (unsigned i = 0; i < kMediumBins; ++i)
      for (MediumFree* f = m.bins[i]; f; f = f->next) {
        const std::size_t sz = f->tag.size_flags & kSizeMask;
        free_bytes += sz;
        s.medium.free_runs++;
        if (sz - kMediumHeaderSize > s.medium.largest_free_block) s.medium.largest_free_block = sz - kMediumHeaderSize;
      }
  }
  s.medium.pools = pools;
  s.medium.bytes_reserved = pools * kMediumPoolSize;
  // Cached blocks are in use to the tier (its counts include them).
  const std::size_t cached_blocks = cc.medium_blocks < tier_blocks ? cc.medium_blocks : tier_blocks;
  const std::size_t cached_bytes = cc.medium_bytes < tier_bytes ? cc.medium_bytes : tier_bytes;
  s.medium.blocks_in_thread_caches = cached_blocks;
  s.medium.bytes_in_thread_caches = cached_bytes;
  s.medium.blocks_in_use = tier_blocks - cached_blocks;
  const std::size_t live_bytes = tier_bytes - cached_bytes;  // tags included
  const std::size_t tags = s.medium.blocks_in_use * kMediumHeaderSize;
  s.medium.bytes_in_use = live_bytes > tags ? live_bytes - tags : 0;
  s.medium.free_bytes = free_bytes + cached_bytes;
  // Each pool's header page (less the first tag) and its sentinel tag, and the live blocks' tags.
  return pools * (kMediumDataOffset + kMediumHeaderSize) + tags;
}

std::size_t state_large(Heap* h, strata_heap_state_t& s, Budget& b) noexcept {
  Held g(h->large.lock, b);
  if (!g) return 0;
  std::size_t overhead = 0;
  for (LargeBlock* lb = h->large.blocks; lb; lb = large_next(lb)) {
    if (large_magic(lb) == kLargeMagic) {
      s.large.blocks_in_use++;
      // The size last asked for lies in the header: believed up to the block's size.
      s.large.bytes_requested += std::min(large_requested(lb), large_usable(lb));
      s.large.bytes_in_use += large_usable(lb);
      s.large.bytes_mapped += lb->map_size;
      overhead += lb->map_size - large_usable(lb);
    } else {  // parked in a thread cache: free to the program
      s.large.parked_mappings++;
      s.large.parked_bytes += lb->map_size;
    }
  }
  for (LargeBlock* lb = h->large.cached; lb; lb = large_next(lb)) {
    s.large.kept_mappings++;
    s.large.kept_bytes += lb->map_size;
  }
  return overhead;
}

int fill_state(Heap* h, strata_heap_state_t& s, unsigned wait_ms) noexcept {
  Budget b{wait_ms};
  CacheCounts cc;
  state_caches(h, s, cc, b);
  s.bookkeeping_bytes += heap_object_bytes(h);
  std::size_t overhead = state_small(h, s, cc, b);
  overhead += state_medium(h, s, cc, b);
  overhead += state_large(h, s, b);
  overhead += s.bookkeeping_bytes;
  strata_usage_summary_t& u = s.summary;
  u.allocated_bytes = s.small.bytes_in_use + s.medium.bytes_in_use + s.large.bytes_in_use;
  u.free_bytes = s.small.free_bytes + s.medium.free_bytes + s.large.kept_bytes + s.large.parked_bytes;
  u.overhead_bytes = overhead;
  u.reserved_bytes = u.allocated_bytes + u.free_bytes + u.overhead_bytes;
  u.os_reserved_bytes = h->os_bytes.load(std::memory_order_relaxed);
  u.efficiency_percent = u.reserved_bytes ? 100.0 * static_cast<double>(u.allocated_bytes) /
                                                static_cast<double>(u.reserved_bytes)
                                          : 100.0;
  s.chunk_map_bytes = chunk_map::leaf_bytes();
  s.peak_os_reserved_bytes = h->peak_os_bytes.load(std::memory_order_relaxed);
  s.os_map_calls = h->map_calls.load(std::memory_order_relaxed);
  s.skipped_locks = b.skipped;
  s.complete = b.skipped == 0;
  return 0;
}

// ---- the walk: batches gathered under the locks, delivered without them ----

constexpr unsigned kBatch = 256;
struct Batch {
  strata_block_info_t b[kBatch];
  unsigned n = 0;
  bool full() const noexcept { return n == kBatch; }
  void add(void* p, std::size_t size, strata_pool_t* pool, strata_tier tier, unsigned c, bool live) noexcept {
    b[n++] = strata_block_info_t{p, size, pool, tier, c, live ? 1 : 0};
  }
};

struct Walker {
  Heap* h;
  bool with_free;
  strata_block_visitor_t visit;
  void* ctx;
  Budget budget;
  bool lost = false;     // a part of the heap was not seen (a lock skipped, a cursor gone)
  bool stopped = false;  // the visitor said stop
  Batch batch;
  // Delivers the batch (no lock held); false once the visitor stopped.
  bool flush() noexcept {
    for (unsigned i = 0; i < batch.n && !stopped; ++i)
      if (!visit(&batch.b[i], ctx)) stopped = true;
    batch.n = 0;
    return !stopped;
  }
};

// Whether s is still a span of h (spans.lock held: spans are unmapped only under it).
bool span_still_of(Heap* h, Span* s) noexcept {
  return chunk_map::lookup(reinterpret_cast<std::uintptr_t>(s)) == chunk_map::make(s, ChunkKind::kSmall) &&
         s->heap == h;
}

void walk_small(Walker& w) noexcept {
  const std::uintptr_t sec = secret();
  strata_pool_t* pool = pool_handle(w.h);
  for (unsigned c = 0; c < kNumClasses && !w.stopped; ++c) {
    Span* cursor = nullptr;  // the span to go on with, and the block index in it
    std::uint32_t index = 0;
    for (bool done = false; !done && !w.stopped;) {
      {
        Held g(w.h->classes[c].lock, w.budget);
        if (!g) { w.lost = true; break; }
        Held st(w.h->spans.lock, w.budget);
        if (!st) { w.lost = true; break; }
        Span* s = w.h->spans.all;
        if (cursor) {
          if (!span_still_of(w.h, cursor) || !span_is_of(cursor, c)) {
            w.lost = true;  // freed or reassigned meanwhile: its place in the list is gone
            break;
          }
          s = cursor;
        }
        done = true;
        for (; s; s = s->all_next, index = 0) {
          if (!span_is_of(s, c)) continue;
          const std::uint32_t carved = s->carved.load(std::memory_order_acquire);
          char* base = reinterpret_cast<char*>(s) + kSpanHeaderSize;
          for (; index < carved && !w.batch.full(); ++index) {
            void* p = base + std::size_t{index} * s->block_size;
            const bool live = !carries_free_cookie(p, sec);
            if (live || w.with_free) w.batch.add(p, s->block_size, pool, STRATA_TIER_SMALL, c, live);
          }
          if (w.batch.full()) {  // go on in s at index (past its end: with the next span)
            cursor = s;
            done = false;
            break;
          }
        }
      }
      if (!w.flush()) return;
    }
  }
}

// Whether pool is still a pool of arena m (its lock held: pools are unmapped only under it).
bool pool_still_of(MediumTier& m, MediumPool* p) noexcept {
  return chunk_map::lookup(reinterpret_cast<std::uintptr_t>(p)) == chunk_map::make(p, ChunkKind::kMedium) &&
         p->magic == kMediumPoolMagic && p->arena == &m;
}

void walk_medium(Walker& w) noexcept {
  const std::uintptr_t sec = secret();
  strata_pool_t* handle = pool_handle(w.h);
  for (MediumTier& m : w.h->medium) {
    if (w.stopped) return;
    MediumPool* cursor = nullptr;
    char* resume = nullptr;  // the first block not yet gathered in cursor
    for (bool done = false; !done && !w.stopped;) {
      {
        Held g(medium_lock(w.h, m), w.budget);
        if (!g) { w.lost = true; break; }
        MediumPool* pool = m.pools;
        if (cursor) {
          if (!pool_still_of(m, cursor)) { w.lost = true; break; }
          pool = cursor;
        }
        done = true;
        for (; pool; pool = pool->next, resume = nullptr) {
          char* end = medium_data_end(pool);
          char* b = medium_data_begin(pool);
          for (; b < end; ) {
            const std::size_t sz = reinterpret_cast<MediumTag*>(b)->size_flags & kSizeMask;
            // An overwritten tag cannot be followed: the rest of the pool is
            // skipped (medium_validate reports it).
            if (!sz || sz % kMediumGranule || sz > static_cast<std::size_t>(end - b)) { w.lost = true; break; }
            if (b >= resume) {
              if (w.batch.full()) break;
              char* user = b + kMediumHeaderSize;
              const bool in_use = reinterpret_cast<MediumTag*>(b)->size_flags & kInUse;
              const bool live = in_use && !carries_free_cookie(user, sec);
              if (live || w.with_free) w.batch.add(user, sz - kMediumHeaderSize, handle, STRATA_TIER_MEDIUM, 0, live);
            }
            b += sz;
          }
          if (b < end && w.batch.full() && b >= resume) {
            cursor = pool;
            resume = b;
            done = false;
            break;
          }
        }
      }
      if (!w.flush()) return;
    }
  }
}

bool large_still_of(Heap* h, LargeBlock* lb) noexcept {
  return chunk_map::lookup(reinterpret_cast<std::uintptr_t>(lb)) == chunk_map::make(lb, ChunkKind::kLarge) &&
         lb->heap == h;
}

void walk_large(Walker& w) noexcept {
  strata_pool_t* handle = pool_handle(w.h);
  for (int list = 0; list < (w.with_free ? 2 : 1) && !w.stopped; ++list) {
    LargeBlock* cursor = nullptr;  // the next block to gather
    for (bool done = false; !done && !w.stopped;) {
      {
        Held g(w.h->large.lock, w.budget);
        if (!g) { w.lost = true; break; }
        LargeBlock* lb = list == 0 ? w.h->large.blocks : w.h->large.cached;
        if (cursor) {
          const std::uint64_t want = list == 0 ? 0 : kLargeCachedMagic;
          const std::uint64_t magic = large_magic(cursor);
          if (!large_still_of(w.h, cursor) || (list == 0 ? magic == kLargeCachedMagic : magic != want)) {
            w.lost = true;
            break;
          }
          lb = cursor;
        }
        done = true;
        for (; lb; lb = large_next(lb)) {
          if (w.batch.full()) {
            cursor = lb;
            done = false;
            break;
          }
          const bool live = list == 0 && large_magic(lb) == kLargeMagic;  // else parked or kept
          if (live || w.with_free) w.batch.add(lb->user, large_usable(lb), handle, STRATA_TIER_LARGE, 0, live);
        }
      }
      if (!w.flush()) return;
    }
  }
}

// ---- regions -------------------------------------------------------------------

struct RegionSink {
  Scratch<strata_region_t>& out;
  strata_pool_t* pool;
  void add(const void* start, std::size_t size, strata_map_use use) noexcept {
    auto a = reinterpret_cast<std::uintptr_t>(start);
    if (size) out.push(strata_region_t{a, a + size, use, pool});
  }
};

void regions_of(Heap* h, Scratch<strata_region_t>& out, Budget& b) noexcept {
  RegionSink r{out, pool_handle(h)};
  {
    Held g(h->meta_lock, b);
    if (g)
      for (MetaRegion* m = h->meta_regions; m; m = m->next) r.add(m, m->size, STRATA_MAP_BOOKKEEPING);
  }
  if (h->is_pool) r.add(h, heap_object_bytes(h), STRATA_MAP_BOOKKEEPING);
  {
    Held st(h->spans.lock, b);
    if (st) {
      for (Span* s = h->spans.all; s; s = s->all_next)
        r.add(s, kSpanSize, span_assigned_racy(s) ? STRATA_MAP_SMALL : STRATA_MAP_FREE);
      r.add(h->spans.fresh, static_cast<std::size_t>(h->spans.fresh_end - h->spans.fresh), STRATA_MAP_FREE);
    }
  }
  for (MediumTier& m : h->medium) {
    Held g(medium_lock(h, m), b);
    if (!g) continue;
    constexpr unsigned kChunks = kMediumPoolSize / kChunkSize;
    for (MediumPool* pool = m.pools; pool; pool = pool->next) {
      // A chunk wholly inside a free run is free; every other chunk holds a
      // live or cached block, or the pool's header.
      bool used[kChunks];
      for (bool& u : used) u = true;
      const auto base = reinterpret_cast<std::uintptr_t>(pool);
      char* end = medium_data_end(pool);
      for (char* blk = medium_data_begin(pool); blk < end;) {
        const std::size_t flags = reinterpret_cast<MediumTag*>(blk)->size_flags;
        const std::size_t sz = flags & kSizeMask;
        if (!sz || sz % kMediumGranule || sz > static_cast<std::size_t>(end - blk)) break;
        if (!(flags & kInUse)) {
          const std::uintptr_t from = align_up(reinterpret_cast<std::uintptr_t>(blk), kChunkSize);
          const std::uintptr_t to = (reinterpret_cast<std::uintptr_t>(blk) + sz) & ~(kChunkSize - 1);
          for (std::uintptr_t c = from; c < to; c += kChunkSize) used[(c - base) / kChunkSize] = false;
        }
        blk += sz;
      }
      for (unsigned i = 0; i < kChunks; ++i)
        r.add(reinterpret_cast<char*>(pool) + i * kChunkSize, kChunkSize, used[i] ? STRATA_MAP_MEDIUM : STRATA_MAP_FREE);
    }
  }
  {
    Held g(h->large.lock, b);
    if (g) {
      for (LargeBlock* lb = h->large.blocks; lb; lb = large_next(lb))
        r.add(lb->base, lb->map_size, large_magic(lb) == kLargeMagic ? STRATA_MAP_LARGE : STRATA_MAP_FREE);
      for (LargeBlock* lb = h->large.cached; lb; lb = large_next(lb)) r.add(lb->base, lb->map_size, STRATA_MAP_FREE);
    }
  }
}

}  // namespace

extern "C" {

STRATA_API int strata_heap_state(strata_pool_t* pool, strata_heap_state_t* out, unsigned wait_ms) noexcept {
  if (!out || out->size < offsetof(strata_heap_state_t, classes)) return -1;
  static_assert(kNumClasses <= STRATA_STATE_MAX_CLASSES);
  strata_heap_state_t s{};
  s.size = sizeof s;
  s.version = 1;
  fill_state(heap_or_default(pool), s, wait_ms);
  const std::size_t n = out->size < sizeof s ? out->size : sizeof s;
  std::memcpy(out, &s, n);
  out->size = n;
  return 0;
}

STRATA_API int strata_usage_summary(strata_pool_t* pool, strata_usage_summary_t* out, unsigned wait_ms) noexcept {
  if (!out) return -1;
  strata_heap_state_t s{};
  fill_state(heap_or_default(pool), s, wait_ms);
  *out = s.summary;
  return 0;
}

STRATA_API int strata_heap_walk(strata_pool_t* pool, unsigned flags, strata_block_visitor_t visit, void* ctx,
                                unsigned wait_ms) noexcept {
  if (!visit) return -1;
  Walker w{heap_or_default(pool), (flags & STRATA_WALK_FREE) != 0, visit, ctx, Budget{wait_ms}};
  walk_small(w);
  if (!w.stopped) walk_medium(w);
  if (!w.stopped) walk_large(w);
  if (w.stopped) return 0;
  return w.lost || w.budget.skipped ? -1 : 1;
}

STRATA_API int strata_heap_regions(strata_pool_t* pool, unsigned flags, strata_region_visitor_t visit, void* ctx,
                                   unsigned wait_ms) noexcept {
  if (!visit) return -1;
  Budget b{wait_ms};
  Scratch<strata_region_t> regions;
  if (flags & STRATA_REGIONS_ALL_HEAPS) {
    {
      // The list lock keeps every heap alive while it is read (rank 1, before the heaps' own).
      Held g(g_heaps_lock, b);
      if (g) {
        bool default_listed = false;
        for (Heap* h = g_heaps; h; h = h->next) {
          regions_of(h, regions, b);
          default_listed |= h == &g_default_heap;
        }
        if (!default_listed) regions_of(&g_default_heap, regions, b);
      }
    }
    // The address map's leaves: bookkeeping of the whole copy.
    for (std::size_t i = 0; i < (std::size_t{1} << chunk_map::kTopBits); ++i)
      if (chunk_map::Leaf* leaf = chunk_map::g_top[i].load(std::memory_order_acquire)) {
        // Page aligned: the chunks it touches are shown as strata's.
        auto a = reinterpret_cast<std::uintptr_t>(leaf);
        regions.push(strata_region_t{a & ~(kChunkSize - 1), align_up(a + sizeof(chunk_map::Leaf), kChunkSize),
                                     STRATA_MAP_BOOKKEEPING, nullptr});
      }
  } else {
    regions_of(heap_or_default(pool), regions, b);
  }
  std::sort(regions.begin(), regions.end(),
            [](const strata_region_t& x, const strata_region_t& y) { return x.start < y.start; });
  // Merge neighbours of the same use and heap.
  std::size_t n = 0;
  for (std::size_t i = 0; i < regions.size(); ++i) {
    strata_region_t r = regions[i];
    if (n && r.start < regions[n - 1].end) {  // a rounded leaf's chunk shared with a neighbour
      r.start = regions[n - 1].end;
      if (r.start >= r.end) continue;
    }
    if (n && regions[n - 1].end == r.start && regions[n - 1].use == r.use && regions[n - 1].pool == r.pool)
      regions[n - 1].end = r.end;
    else
      regions[n++] = r;
  }
  for (std::size_t i = 0; i < n; ++i)
    if (!visit(&regions[i], ctx)) return 0;
  return b.skipped || regions.failed() ? -1 : 1;
}

}  // extern "C"
