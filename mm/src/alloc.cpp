// strata — allocation's slow path: what heap_alloc and strata_malloc do
// when the thread's bin is empty or the block is not small.
// Layer: above the heap (fast_path.hpp declares these).
#include <errno.h>

#include "fast_path.hpp"

namespace strata::detail {

void* alloc_slow(Heap* h, std::size_t n) noexcept {
  void* p;
  if (n <= kMaxSmallSize) p = small_alloc_slow(h, cache_for(h), size_to_class(n));
  else if (n <= kMaxMediumSize) p = medium_alloc_cached(h, n);
  else p = large_alloc(h, n, kMinAlign);
  if (STRATA_UNLIKELY(!p)) errno = ENOMEM;
  return p;
}

}  // namespace strata::detail
