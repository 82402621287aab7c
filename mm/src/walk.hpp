// strata — the block walk's vocabulary: what a walk tells about each block.
// Every tier walks its own blocks (small_walk, medium_walk, large_walk);
// heap_walk (heap.cpp) runs them in turn.  The reports, the leak report and
// the validators read the heap through these walks only.
// Layer: bottom (no strata includes).
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata::detail {

struct Heap;

enum class Tier : std::uint8_t { kSmall, kMedium, kLarge };

struct BlockInfo {
  void* p;                  // the user pointer (a free medium run: where its block would start)
  std::size_t size;         // usable bytes (small: the class size; medium: the block minus its tag; large: to the mapping's end)
  Heap* heap;
  Tier tier;
  std::uint8_t size_class;  // small: its class; otherwise 0
  bool live;                // false: free (in a span, a thread cache, a bin, kept or parked)
};

// Returns false to stop the walk.  Called with the walked tier's lock held:
// it must not allocate from or free into the heap being walked.
using BlockVisitor = bool (*)(const BlockInfo& b, void* ctx) noexcept;

}  // namespace strata::detail
