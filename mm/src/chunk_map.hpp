// strata — the chunk map: for every 64 KiB chunk of the address space, what
// this copy of strata uses it for.  Classifying a pointer reads only this map
// (static memory and leaves strata mapped itself), never the pointed-to
// memory, so a wild pointer cannot crash strata while it decides.
//
// Two levels: g_top[addr >> 32] -> Leaf, leaf->entry[(addr >> 16) & 0xffff].
// An entry is a tagged word: the address of the owning object (span, medium
// pool, large block header, metadata region; 64 KiB- or 8-byte aligned) with
// the ChunkKind in the low 3 bits.  kFreed entries remember that strata
// returned the chunk to the OS (a later free of it is a late double free).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "check.hpp"
#include "config.hpp"

namespace strata::detail {

enum class ChunkKind : std::uintptr_t { kNone = 0, kSmall = 1, kMedium = 2, kLarge = 3, kMeta = 4, kFreed = 5 };

namespace chunk_map {

inline constexpr unsigned kLeafBits = 16;
inline constexpr unsigned kTopBits = kAddressBits - kChunkShift - kLeafBits;
inline constexpr std::uintptr_t kKindMask = 7;

struct Leaf {
  std::atomic<std::uintptr_t> entry[std::size_t{1} << kLeafBits];
};
extern std::atomic<Leaf*> g_top[std::size_t{1} << kTopBits];

STRATA_FAST_PATH std::uintptr_t lookup(std::uintptr_t addr) noexcept {
  if (STRATA_UNLIKELY(addr >> kAddressBits)) return 0;
  Leaf* leaf = g_top[addr >> (kChunkShift + kLeafBits)].load(std::memory_order_acquire);
  if (STRATA_UNLIKELY(!leaf)) return 0;
  // Acquire (a plain load on x86): what the entry's owner wrote before
  // publishing it (a large block's header) is visible to the reader.
  return leaf->entry[(addr >> kChunkShift) & ((std::uintptr_t{1} << kLeafBits) - 1)].load(std::memory_order_acquire);
}
// The fast-path lookup: no range check, the top index is masked instead.  An
// address above 48 bits then reads some other chunk's entry, so the caller
// must compare the entry with the chunk it expects (span entries hold the
// span's own address), which such an address can never match.
STRATA_FAST_PATH std::uintptr_t lookup_unchecked(std::uintptr_t addr) noexcept {
  Leaf* leaf = g_top[(addr >> (kChunkShift + kLeafBits)) & ((std::uintptr_t{1} << kTopBits) - 1)].load(
      std::memory_order_acquire);
  if (STRATA_UNLIKELY(!leaf)) return 0;
  return leaf->entry[(addr >> kChunkShift) & ((std::uintptr_t{1} << kLeafBits) - 1)].load(std::memory_order_relaxed);
}
inline ChunkKind kind_of(std::uintptr_t entry) noexcept { return static_cast<ChunkKind>(entry & kKindMask); }
template <class T>
inline T* owner_of(std::uintptr_t entry) noexcept { return reinterpret_cast<T*>(entry & ~kKindMask); }
inline std::uintptr_t make(const void* owner, ChunkKind k) noexcept {
  return reinterpret_cast<std::uintptr_t>(owner) | static_cast<std::uintptr_t>(k);
}

// Records `entry` for every chunk of [base, base+size) (64 KiB aligned).
// false if a leaf could not be mapped.
bool set_range(const void* base, std::size_t size, std::uintptr_t entry) noexcept;
// Marks [base, base+size) as returned to the OS.
void clear_range(const void* base, std::size_t size) noexcept;
// Bytes mapped for leaves (bookkeeping overhead of the whole strata copy).
std::size_t leaf_bytes() noexcept;
// Unmaps every leaf that indexes nothing (all its entries none or freed) and
// returns the bytes given back.  Only when no heap of this copy maps or
// unmaps meanwhile (the release of the whole copy at its unload): a leaf
// found by a concurrent set_range would be written after its unmapping.
// Late double frees of chunks whose leaf is gone read as foreign pointers.
std::size_t release_empty_leaves() noexcept;

}  // namespace chunk_map
}  // namespace strata::detail
