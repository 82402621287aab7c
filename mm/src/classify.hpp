// strata — what a pointer is: the chunk map first, then only memory the map
// proves is strata's and mapped.  classify() gives the full diagnosis (kind,
// heap, span / pool / large header, or the error and its message) for the
// slow paths and every report; small_block_start() is the fast paths' check.
// Layer: above the tiers (reads their structures, changes nothing).
#pragma once
#include <strata/strata.h>

#include <cstdint>

#include "heap.hpp"

namespace strata::detail {

struct Info {
  ChunkKind kind = ChunkKind::kNone;
  Heap* heap = nullptr;
  Span* span = nullptr;
  MediumPool* pool = nullptr;
  LargeBlock* large = nullptr;
  strata_error_kind err = STRATA_ERROR_NONE;
  const char* msg = nullptr;
};

// Decides what p is from the chunk map first, reading block memory only where
// the map proves it is strata's and mapped.  A medium block is validated
// (under its arena's lock) only when `check_medium`: free validates it under
// the lock itself.
Info classify(const void* p, bool check_medium = true) noexcept;
// Whether the header of the live large block lb (its magic checked) agrees
// with what the chunk map recorded when it was mapped, and names a live
// heap: a forged map_size, base, user or heap fails.  O(1): three look-ups.
bool large_header_valid(const LargeBlock* lb) noexcept;

// True when address a (whose chunk-map entry is e) is exactly a block start
// strata carved from a small span; *span is then that span.  The pointer
// check shared by the free, free_sized and realloc fast paths; reads only
// the chunk map and the span header.  (A bool, not a null Span*: the
// compiler cannot prove a span address non-null and would test it again.)
STRATA_FAST_PATH bool small_block_start(std::uintptr_t a, std::uintptr_t e, Span** span) noexcept {
  std::uintptr_t chunk = a & ~(kChunkSize - 1);
  // A span's entry is its own address tagged kSmall.
  if (STRATA_UNLIKELY(e != (chunk | static_cast<std::uintptr_t>(ChunkKind::kSmall)))) return false;
  auto* s = reinterpret_cast<Span*>(chunk);
  std::uint32_t off = static_cast<std::uint32_t>(a & (kChunkSize - 1)) - static_cast<std::uint32_t>(kSpanHeaderSize);
  std::uint32_t idx = static_cast<std::uint32_t>((std::uint64_t{off} * s->recip) >> 32);
  *span = s;
  return idx * s->block_size == off && idx < s->carved.load(std::memory_order_relaxed);
}

// The usable size of a block classify() found valid.
inline std::size_t usable_of(const Info& in, const void* p) noexcept {
  switch (in.kind) {
    case ChunkKind::kSmall: return in.span->block_size;
    case ChunkKind::kMedium: return medium_usable(in.pool, p);
    case ChunkKind::kLarge: return large_usable(in.large);
    default: return 0;
  }
}

}  // namespace strata::detail
