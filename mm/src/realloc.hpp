// strata — the reallocation policy (FastMM's), one copy of each rule: when
// a block is resized in place, when it moves, and how much headroom a moved
// or grown block gets.  realloc.cpp applies them (heap_realloc, every tier);
// strata_realloc's fast path (api.cpp) uses the same predicates to return a
// block that stays untouched without a lock or a call.
// Layer: above the heap.
#pragma once
#include <cstddef>

#include "config.hpp"

namespace strata::detail {

struct Heap;

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

}  // namespace strata::detail
