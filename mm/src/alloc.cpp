// strata — allocation's slow path: what heap_alloc and strata_malloc do
// when the thread's bin is empty or the block is not small.
// Layer: above the heap (fast_path.hpp declares these).
#include <errno.h>

#include "fast_path.hpp"

namespace strata::detail {

namespace {
STRATA_FAST_PATH void* alloc_once(Heap* h, std::size_t n) noexcept {
  if (n <= kMaxSmallSize) return small_alloc_slow(h, cache_for(h), size_to_class(n));
  if (n <= kMaxMediumSize) return medium_alloc_cached(h, n);
  return large_alloc(h, n, kMinAlign);
}
}  // namespace

void release_free_memory(Heap* h) noexcept {
  heap_trim(h);  // the calling thread's cache of h first, then every tier
  if (h != &g_default_heap) heap_trim(&g_default_heap);
}

void* aligned_alloc_retry(Heap* h, std::size_t align, std::size_t n) noexcept {
  void* p = nullptr;
  if (n <= kMaxRequest) {
    release_free_memory(h);
    if (n <= kMaxMediumSize && align <= kChunkSize) p = medium_alloc(h, n, align);
    if (!p) p = large_alloc(h, n, align);
  }
  if (!p) errno = ENOMEM;
  return p;
}

void* alloc_slow(Heap* h, std::size_t n) noexcept {
  void* p = alloc_once(h, n);
  if (STRATA_UNLIKELY(!p)) {
    if (n <= kMaxRequest) {  // larger: no machine can back it, fail at once
      release_free_memory(h);
      p = alloc_once(h, n);
    }
    if (!p) errno = ENOMEM;
  }
  return p;
}

}  // namespace strata::detail
