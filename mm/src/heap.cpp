// strata — whole heaps: the heap list, creating a pool, releasing and
// destroying a heap, trimming it, walking its blocks and validating it.
// Every operation here calls down into the tiers and the thread caches.
// Layer: heap (above the tiers; process.cpp and the API above it).
#include "heap.hpp"

#include <new>

#include "list.hpp"
#include "os.hpp"
#include "process.hpp"
#include "thread_local.hpp"

namespace strata::detail {

constinit Heap g_default_heap;
constinit Lock g_heaps_lock;  // rank 1: g_heaps, thread slots
Heap* g_heaps = nullptr;
std::atomic<std::uint32_t> g_medium_arena_mask{0};  // set by ensure_process_init

namespace {
using HeapList = IntrusiveList<&Heap::next, &Heap::prev>;
using ChildList = IntrusiveList<&Heap::sibling_next, &Heap::sibling_prev>;  // Heap::children
inline std::size_t heap_object_size() noexcept { return align_up(sizeof(Heap), kChunkSize); }
}  // namespace

void heap_link_locked(Heap* h) noexcept { HeapList::push_front(g_heaps, h); }
void heap_unlink_locked(Heap* h) noexcept {
  HeapList::remove(g_heaps, h);
  h->next = h->prev = nullptr;
}

Heap* heap_create(Heap* parent) noexcept {
  ensure_process_init();
  std::size_t size = heap_object_size();
  void* mem = os::map_aligned(size, kChunkSize);
  if (!mem) return nullptr;
  Heap* h = new (mem) Heap();
  h->magic = kHeapMagic;
  h->is_pool = true;
  if (!chunk_map::set_range(mem, size, chunk_map::make(mem, ChunkKind::kMeta))) {
    os::unmap(mem, size);
    return nullptr;
  }
  os::name_region(mem, size, "strata:pool");
  h->os_bytes.store(size, std::memory_order_relaxed);
  h->peak_os_bytes.store(size, std::memory_order_relaxed);
  h->map_calls.store(1, std::memory_order_relaxed);
  LockGuard g(g_heaps_lock);
  heap_link_locked(h);
  if (parent) {
    h->parent = parent;
    ChildList::push_front(parent->children, h);
  }
  return h;
}

void heap_reset(Heap* h) noexcept {
  // Children first (their own children before them).  A reset does not
  // change the list of children, which nobody may change meanwhile.
  for (Heap* child = h->children; child; child = child->sibling_next) heap_reset(child);
  if constexpr (kDebugLevel >= 3) heap_validate(h);
  thread_cache_reset_all(h);
  small_reset_all(h);
  medium_reset_all(h);
  large_reset_all(h);
  // Nothing is handed out any more: the large frees above were counted in
  // the calling thread's cache of h, which the reset empties again.
  thread_cache_reset_all(h);
  h->central_bytes.store(0, std::memory_order_relaxed);
  if constexpr (kDebugLevel >= 3) heap_validate(h);
}

void heap_release(Heap* h) noexcept {
  if constexpr (kDebugLevel >= 3) heap_validate(h);
  // Thread-local blocks' finalizers run while everything is still there
  // (they may free into the heap); the blocks go with the heap's memory.
  thread_local_finalize_heap(h);
  // The caches first: they live in the metadata regions unmapped below, and
  // the process heap's users must find g_empty_cache, not a stale cache.
  thread_cache_forget_all(h);
  small_release_all(h);
  medium_release_all(h);
  large_release_all(h);
  {
    LockGuard m(h->meta_lock);
    MetaRegion* r = h->meta_regions;
    while (r) {
      MetaRegion* next = r->next;
      heap_unmap(h, r, r->size);
      r = next;
    }
    h->meta_regions = nullptr;
    h->meta_cursor = h->meta_end = nullptr;
    for (auto& page : h->tl_slots) page = nullptr;  // thread-local handles lived there: all invalid now
    h->tl_free = nullptr;
    h->tl_count = 0;
  }
  // The counters as a fresh heap has them: a pool holds its Heap object.
  const std::size_t own = h->is_pool ? heap_object_size() : 0;
  STRATA_ASSERT(h->os_bytes.load(std::memory_order_relaxed) == own);  // every mapping was counted when given back
  h->os_bytes.store(own, std::memory_order_relaxed);
  h->peak_os_bytes.store(own, std::memory_order_relaxed);
  h->map_calls.store(own ? 1 : 0, std::memory_order_relaxed);
  h->central_bytes.store(0, std::memory_order_relaxed);
  h->peak_central_bytes.store(0, std::memory_order_relaxed);
}

void heap_destroy(Heap* h) noexcept {
  for (;;) {  // children first
    Heap* child;
    {
      LockGuard g(g_heaps_lock);
      child = h->children;
    }
    if (!child) break;
    heap_destroy(child);
  }
  {
    // Off the list first: exiting threads then no longer look at it.
    LockGuard g(g_heaps_lock);
    heap_unlink_locked(h);
    if (h->parent) ChildList::remove(h->parent->children, h);
    h->parent = nullptr;
  }
  heap_release(h);
  h->magic = 0;
  std::size_t size = heap_object_size();
  chunk_map::clear_range(h, size);
  os::unmap(h, size);
}

std::size_t heap_trim(Heap* h) noexcept {
  if (ThreadCache* tc = cache_lookup(h)) cache_flush_all(tc);
  return small_trim(h) + medium_trim(h) + large_trim(h);
}

bool heap_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept {
  return small_walk(h, with_free, visit, ctx) && medium_walk(h, with_free, visit, ctx) &&
         large_walk(h, with_free, visit, ctx);
}

ReleaseReport heap_release_all() noexcept {
  ReleaseReport r{};
  auto release_one = [&r](Heap* h) {
    heap_walk(
        h, false,
        [](const BlockInfo& b, void* ctx) noexcept {
          auto* rr = static_cast<ReleaseReport*>(ctx);
          rr->live_blocks++;
          rr->live_bytes += b.size;
          return true;
        },
        &r);
    r.os_bytes += h->os_bytes.load(std::memory_order_relaxed);
    r.heaps++;
  };
  for (;;) {
    Heap* pool = nullptr;
    {
      LockGuard g(g_heaps_lock);
      for (Heap* h = g_heaps; h && !pool; h = h->next)
        if (h->is_pool) pool = h;
    }
    if (!pool) break;
    release_one(pool);
    heap_destroy(pool);
  }
  release_one(&g_default_heap);
  heap_release(&g_default_heap);
  r.os_bytes += chunk_map::release_empty_leaves();
  return r;
}

bool heap_has_live_blocks(Heap* h) noexcept {
  // A walk of live blocks that stops at the first one.
  return !heap_walk(h, false, [](const BlockInfo&, void*) noexcept { return false; }, nullptr);
}

void heap_validate(Heap* h) noexcept {
  small_validate(h);
  medium_validate(h);
  large_validate(h);
  // The calling thread's cache of h: every cached block is a block of h
  // that carries its free cookie, in the bin of its class.
  if (ThreadCache* tc = cache_lookup(h)) {
    for (unsigned c = 0; c < kNumClasses; ++c) {
      for (const CacheBin* bin : {&tc->bins[c], &tc->foreign[c]}) {
        // A bin may hold more than its bound for a while: a refill that takes
        // a span's whole free list (take_locked) can overfill it, by design,
        // up to 2.5 times; the owner's next frees spill it.
        const std::int32_t count = bin->max - bin->room;
        STRATA_CHECK(count >= 0 && count <= 3 * bin->max, "[C1] a thread cache bin's count is out of its range");
        std::int32_t n = 0;
        for (std::uintptr_t a = bin->head; a != kBinEnd; a = link_of(reinterpret_cast<const Block*>(a)), ++n) {
          STRATA_CHECK(n < count, "[C1] a thread cache bin holds more blocks than it counts");
          STRATA_CHECK(small_link_valid(h, c, a),
                       "[C2] a cached small block of another heap or class, or without its free cookie");
        }
        STRATA_CHECK(n == count, "[C1] a thread cache bin's count is wrong");
      }
    }
    std::size_t medium_bytes = 0;
    for (unsigned c = 0; c < kNumMediumClasses; ++c)
      for (auto* b = reinterpret_cast<const Block*>(tc->medium_bins[c].head); b != reinterpret_cast<const Block*>(kBinEnd);
           b = next_of(b)) {
        STRATA_CHECK(carries_free_cookie(b, secret()), "[C3] a cached medium block without its free cookie");
        medium_bytes += medium_block_size_racy(b);
      }
    STRATA_CHECK(medium_bytes == tc->medium_cached_bytes, "[C4] a thread cache's medium byte count is wrong");
  }
}

}  // namespace strata::detail
