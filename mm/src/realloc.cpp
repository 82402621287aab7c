// strata — realloc for every tier (the policy is in realloc.hpp).
#include "realloc.hpp"
#include "track.hpp"

#include <errno.h>

#include <cstring>

#include "error.hpp"
#include "fast_path.hpp"

namespace strata::detail {

namespace {
void* move_block(Heap* h, const Info& in, void* p, std::size_t copy, std::size_t new_size, const char* op) noexcept {
  void* q = heap_alloc(h, new_size);
  if (!q) {
    errno = ENOMEM;
    return nullptr;
  }
  std::memcpy(q, p, copy);
  free_valid(in, p, op);
  return q;
}
}  // namespace

void* heap_realloc(Heap* expect, void* p, std::size_t n, const char* op) noexcept {
  if (!p) return heap_alloc(expect ? expect : &g_default_heap, n);
  Info in = classify(p, /*check_medium=*/false);
  // A medium block that the unlocked look does not confirm (a live start
  // whose tag's size agrees with the start bitmap) gets the locked, precise
  // diagnosis.  Its size is read once: the value checked is the value used.
  std::size_t msize = 0;
  if (in.err == STRATA_ERROR_NONE && in.kind == ChunkKind::kMedium &&
      !(medium_is_live_start(in.pool, p) &&
        medium_size_paired(in.pool, static_cast<char*>(p) - kMediumHeaderSize, msize = medium_block_size_racy(p)))) {
    in.err = medium_check(in.pool, p);
    if (in.err != STRATA_ERROR_NONE) in.msg = medium_message(in.err);
    msize = medium_block_size_racy(p);  // checked under the lock
  }
  if (in.err != STRATA_ERROR_NONE) {
    report(in.err, p, op, in.msg);
    return nullptr;
  }
  if (expect && in.heap != expect) {
    report(STRATA_ERROR_WRONG_POOL, p, op, "the block belongs to another pool (or to the process heap)");
    return nullptr;
  }
  Heap* h = in.heap;
  if (n == 0) {  // glibc: realloc(p, 0) frees p and returns NULL
    free_valid(in, p, op);
    return nullptr;
  }
  switch (in.kind) {
    case ChunkKind::kSmall: {
      std::size_t bs = in.span->block_size;
      if (n <= bs) {
        if (small_keeps_in_place(n, bs)) return p;
        return move_block(h, in, p, n, n, op);
      }
      return move_block(h, in, p, bs, small_grow_target(n, bs), op);
    }
    case ChunkKind::kMedium: {
      std::size_t usable = msize - kMediumHeaderSize;
      if (n <= usable) {
        if (medium_keeps_in_place(n, usable)) {
          if (medium_trims_tail(n, usable)) medium_resize_in_place(h, in.pool, p, n);
          return p;
        }
        return move_block(h, in, p, n, n, op);
      }
      // Grown in place with the same quarter of headroom as a moved block.
      const std::size_t grown = grow_target(n, n / 4);
      if (n <= kMaxMediumSize && medium_resize_in_place(h, in.pool, p, n, grown)) return p;
      return move_block(h, in, p, usable, grown, op);
    }
    case ChunkKind::kLarge: {
      std::size_t usable = large_usable(in.large);
      if (n <= usable) {
        if (large_keeps_in_place(n, usable)) return p;
        if (n > kMaxMediumSize) {
          large_resize_in_place(h, in.large, n);
          return p;
        }
        return move_block(h, in, p, n, n, op);
      }
      if (large_resize_in_place(h, in.large, n)) return p;
      // Up to kLargeCopyMax the block is copied into a kept mapping (or a
      // fresh one) rather than moved with mremap: see config.hpp.
      if (usable <= kLargeCopyMax) return move_block(h, in, p, usable, grow_target(n, n / 4), op);
      if (void* q = large_move(h, in.large, grow_target(n, n / 4))) {
        track_alloc(h, q);  // moved by mremap: recorded as realloc's caller's (track.hpp)
        return q;
      }
      return move_block(h, in, p, usable, n, op);
    }
    default:
      return nullptr;
  }
}

void* large_realloc(LargeBlock* lb, void* p, std::size_t n) noexcept {
  // A live large block (its magic) whose user pointer is p (which also
  // rejects an address the unchecked lookup folded onto it).
  if (large_magic(lb) == kLargeMagic && lb->user == p && large_keeps_in_place(n, large_usable(lb)) &&
      large_header_valid(lb))
    return p;
  return heap_realloc(nullptr, p, n, "strata_realloc");
}

}  // namespace strata::detail
