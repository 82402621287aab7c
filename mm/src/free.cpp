// strata — free's slow paths: a block the fast path cannot take (another
// heap's, a medium block of another arena, a large block, a full cache) and
// every bad pointer, classified and reported.
// Layer: above the heap (fast_path.hpp declares these).
#include "error.hpp"
#include "fast_path.hpp"

namespace strata::detail {

// A cache over its budget gives back what it holds (blocks of sizes the
// thread may no longer use) and keeps the new block: the last block kept
// may take it over the budget.
void medium_cache_push_over_budget(ThreadCache* tc, CacheBin& bin, Block* b, std::size_t size) noexcept {
  medium_cache_flush(tc);
  medium_bin_push(tc, bin, b, size);
}
void medium_cache_poisoned(ThreadCache* tc, CacheBin& bin, const Block* b) noexcept {
  (void)tc;
  bin_clear(bin);
  report(STRATA_ERROR_CORRUPTION, b, "malloc",
         "a medium block's link in a thread cache was overwritten after it was freed (a use after free): the "
         "list is dropped, its blocks are never handed out");
}
// heap_free's medium case, from the chunk-map entry e of p's address: a block
// of tc's arena that is a live start (its range check also rejects addresses
// the unchecked lookup folded onto the pool) and carries no free cookie (one
// that does may already be in a cache: classify tells a double free from a
// coincidence) goes into tc's cache; anything else to free_slow.  (It calls
// free_slow itself so that heap_free's call to it is a tail call: heap_free
// keeps no stack frame for the small fast path.)
void free_medium(void* p, std::uintptr_t e, ThreadCache* tc, Heap* expect, const char* op) noexcept {
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

}  // namespace strata::detail
