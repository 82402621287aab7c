// strata — pointer classification (classify.hpp).
#include "classify.hpp"

#include "error.hpp"

namespace strata::detail {

bool large_header_valid(const LargeBlock* lb) noexcept {
  auto self = reinterpret_cast<std::uintptr_t>(lb), base = reinterpret_cast<std::uintptr_t>(lb->base);
  std::size_t size = lb->map_size;
  constexpr std::uintptr_t kSpace = std::uintptr_t{1} << 47;
  if (((base | size) & (kChunkSize - 1)) || size == 0 || base > self || size > kSpace || base >= kSpace ||
      self - base >= size || reinterpret_cast<std::uintptr_t>(lb->user) != self + kLargeHeaderSize)
    return false;
  // The block's index (large.hpp [L2]): its first and last chunk name it,
  // the chunk after it does not (a size made smaller or larger fails).
  const std::uintptr_t want = chunk_map::make(lb, ChunkKind::kLarge);
  if (chunk_map::lookup(base) != want || chunk_map::lookup(base + size - kChunkSize) != want ||
      chunk_map::lookup(base + size) == want)
    return false;
  // Its heap is the process heap or a live pool (whose chunk map entry names it).
  const Heap* h = large_heap(lb);
  if (h == &g_default_heap) return true;
  return chunk_map::lookup(reinterpret_cast<std::uintptr_t>(h)) == chunk_map::make(h, ChunkKind::kMeta) &&
         h->magic == kHeapMagic;
}

namespace {
// An address between a large block's anchors (chunk_map.hpp): inside a
// block, though the map does not say which.
// (Sets in; the caller returns in itself, which keeps classify's one
// named return value.  Called from the kNone and kFreed cases each, not
// once before the switch: a test ahead of the switch, or the two cases
// merged, cost every classify 3 to 8 instructions, a large block's free
// included.)
void large_interior(Info& in) noexcept {
  in.kind = ChunkKind::kInterior;
  in.err = STRATA_ERROR_INTERIOR_POINTER;
  in.msg = "the address points inside a large block, not at its start";
}
}  // namespace

Info classify(const void* p, bool check_medium) noexcept {
  Info in;
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t e = chunk_map::lookup(a);
  in.kind = chunk_map::kind_of(e);
  switch (in.kind) {
    case ChunkKind::kNone:
      if (chunk_map::in_interior(a)) {
        large_interior(in);
        return in;
      }
      in.err = STRATA_ERROR_FOREIGN_POINTER;
      in.msg = "the address was not allocated by this strata (a stack or global address, another allocator's "
               "block, or a wild pointer)";
      return in;
    case ChunkKind::kFreed:  // (a tombstone a large block mapped there later covers)
      if (chunk_map::in_interior(a)) {
        large_interior(in);
        return in;
      }
      in.err = STRATA_ERROR_FREED_MEMORY;
      in.msg = "the address is not a live block: strata returned this memory to the OS earlier, so it is a "
               "block freed before (double free), a stale pointer, or memory someone else has mapped there since";
      return in;
    case ChunkKind::kInterior:
      large_interior(in);
      return in;
    case ChunkKind::kMeta:
      in.err = STRATA_ERROR_INTERIOR_POINTER;
      in.msg = "the address points into strata's own bookkeeping, not at a block";
      return in;
    case ChunkKind::kSmall: {
      Span* s = span_of(p);
      in.span = s;
      in.heap = s->heap;
      std::uint32_t off = static_cast<std::uint32_t>(a & (kChunkSize - 1));
      if (!s->assigned) {
        in.err = STRATA_ERROR_DOUBLE_FREE;
        in.msg = "the small block is not allocated: it was freed before (double free) or is stale";
        return in;
      }
      if (off < kSpanHeaderSize) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points into a span header, not at a block";
        return in;
      }
      off -= static_cast<std::uint32_t>(kSpanHeaderSize);
      std::uint32_t idx = static_cast<std::uint32_t>((std::uint64_t{off} * s->recip) >> 32);
      if (idx * s->block_size != off) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points inside a small block, not at its start";
        return in;
      }
      if (idx >= s->carved.load(std::memory_order_acquire)) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address is a small-block slot strata never handed out";
        return in;
      }
      if (static_cast<const Block*>(p)->cookie == (a ^ secret())) {
        in.err = STRATA_ERROR_DOUBLE_FREE;
        in.msg = "the small block is already free";
      }
      return in;
    }
    case ChunkKind::kMedium: {
      in.pool = chunk_map::owner_of<MediumPool>(e);
      in.heap = in.pool->heap;
      if ((a & (kMinAlign - 1)) != 0) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points inside a medium block, not at its start";
        return in;
      }
      // p + 8 lies in the same 16-byte unit as p, inside the pool: mapped.
      if (static_cast<const Block*>(p)->cookie == (a ^ secret()) && medium_is_live_start(in.pool, p)) {
        in.err = STRATA_ERROR_DOUBLE_FREE;
        in.msg = "the medium block is already free (held in a thread cache)";
        return in;
      }
      if (check_medium) {
        in.err = medium_check(in.pool, p);
        if (in.err != STRATA_ERROR_NONE) in.msg = medium_message(in.err);
      }
      return in;
    }
    case ChunkKind::kLarge: {
      in.large = chunk_map::owner_of<LargeBlock>(e);
      std::uint64_t magic = large_magic(in.large);
      if (magic == kLargeCachedMagic || magic == kLargeParkedMagic) {
        in.err = p == in.large->user ? STRATA_ERROR_DOUBLE_FREE : STRATA_ERROR_INTERIOR_POINTER;
        in.msg = p == in.large->user ? "the large block is already free"
                                     : "the address points inside a large block that is already free";
        return in;
      }
      if (magic != kLargeMagic || !large_header_valid(in.large)) {
        in.err = STRATA_ERROR_CORRUPTION;
        in.msg = "the header of the large block was overwritten";
        return in;
      }
      in.heap = in.large->heap;
      if (p != in.large->user) {
        in.err = STRATA_ERROR_INTERIOR_POINTER;
        in.msg = "the address points inside a large block, not at its start";
      }
      return in;
    }
  }
  in.err = STRATA_ERROR_CORRUPTION;
  in.msg = "the chunk map entry is invalid";
  return in;
}

}  // namespace strata::detail
