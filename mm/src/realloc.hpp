// strata — the reallocation policy (FastMM's), one copy of each rule: when
// a block is resized in place, when it moves, and how much headroom a moved
// or grown block gets.  realloc.cpp applies them (heap_realloc, every tier);
// strata_realloc's fast path (api.cpp, fast_path.hpp) uses the same
// predicates to return a block that stays untouched without a lock or a call.
// Layer: above the heap.
#pragma once
#include <cstddef>

#include "config.hpp"

namespace strata::detail {

struct Heap;
struct LargeBlock;

// The small tier's: a block of bs bytes resized to n <= bs stays where it is
// unless n is under a quarter of it (FastMM); a bigger n moves.
inline bool small_keeps_in_place(std::size_t n, std::size_t bs) noexcept { return n <= bs && 4 * n >= bs; }
// A small block that must grow moves to at least twice its size plus 32
// bytes (FastMM's upsize), so a block grown a byte at a time moves rarely.
inline std::size_t small_grow_target(std::size_t n, std::size_t bs) noexcept { return n > 2 * bs + 32 ? n : 2 * bs + 32; }

// The medium tier's shrink rule.  A block of `usable` bytes resized to n <= usable stays where it
// is unless n is under half of it; the slack of two granules keeps a block
// that a small upsize just moved here (2 x + 32, rounded up to granules) from
// moving straight back.
inline bool medium_keeps_in_place(std::size_t n, std::size_t usable) noexcept {
  return n <= usable && 2 * n + 2 * kMediumGranule >= usable;
}
// A block kept in place gives its tail back when more than a quarter of it
// would be spare (the 25% growth headroom is kept).
inline bool medium_trims_tail(std::size_t n, std::size_t usable) noexcept {
  return n > kMaxSmallSize && 4 * n < 3 * usable;
}

// Both at once, for strata_realloc's fast path: whether a request of n
// bytes leaves a medium block of `usable` bytes exactly as it is (kept in
// place, its tail not trimmed).  Never for n == 0 (realloc(p, 0) frees: n - 1
// wraps).  Above kMaxSmallSize the trim rule's bound is the tighter one
// (4 n >= 3 usable gives 2 n >= usable).  Exact only for a usable size
// under 2^62: the caller believes the answer only for a paired size.
inline bool medium_keeps_untouched(std::size_t n, std::size_t usable) noexcept {
  if (n - 1 >= usable) return false;
  return n > kMaxSmallSize ? 4 * n >= 3 * usable : 2 * n + 2 * kMediumGranule >= usable;
}

// The large tier's: a block resized to n <= usable is left as it is unless n
// is under half of it (then it shrinks or moves).
inline bool large_keeps_in_place(std::size_t n, std::size_t usable) noexcept { return n <= usable && 2 * n >= usable; }

// n plus headroom, saturating.
inline std::size_t grow_target(std::size_t n, std::size_t extra) noexcept {
  return n + extra < n ? n : n + extra;
}

// Resizes p (which must belong to `expect` unless it is null) to n bytes by
// the rules above: in place when they allow, else moved (copied and freed);
// realloc(NULL, n) allocates, realloc(p, 0) frees and returns null.  Bad
// pointers are reported and give null.
void* heap_realloc(Heap* expect, void* p, std::size_t n, const char* op) noexcept;
// strata_realloc's large case, out of line (its header check is a call, which
// would cost the small and medium fast paths a stack frame): p when lb is a
// live large block whose user pointer is p, whose header holds and which a
// request of n bytes leaves as it is; else heap_realloc decides.
void* large_realloc(LargeBlock* lb, void* p, std::size_t n) noexcept;

}  // namespace strata::detail
