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
//
// Spans, medium pools and metadata regions name their owner in every chunk.
// A large block does not: its cost in the map must not grow with its size
// (a 16 GiB block would be 262,144 entries).  Its index (an Extent, below)
// is O(log n) entries: its anchors -- the first and last chunk and the
// chunks of its header and user pointer -- name the block, and the chunks
// between them are covered by interior marks (kInterior), each on the first
// chunk of an aligned power-of-two run of chunks with the run's size in the
// mark, the runs a segment tree would split the gap into (at most 2 log2 n
// per gap).  in_interior() finds whether an address lies in such a run by
// probing the address's chunk aligned down to each power of two.  A mark
// holds no address: a stale one can only mislabel a pointer as an interior
// one, never make strata read memory.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "check.hpp"
#include "config.hpp"

namespace strata::detail {

enum class ChunkKind : std::uintptr_t { kNone = 0, kSmall = 1, kMedium = 2, kLarge = 3, kMeta = 4, kFreed = 5, kInterior = 6 };

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
// ---- a large block's index (O(log n) entries; see the top of this file) ----
// The chunks [base, base + size) (64 KiB aligned) with the anchors header
// and user (addresses inside the range).
struct Extent {
  std::uintptr_t base;
  std::size_t size;
  std::uintptr_t header;
  std::uintptr_t user;
};
inline bool operator==(const Extent& a, const Extent& b) noexcept {
  return a.base == b.base && a.size == b.size && a.header == b.header && a.user == b.user;
}
// Writes x's index: `entry` on its anchors, the interior marks between
// them.  Maps the leaves of the whole range first, so that a later index of
// any extent inside ranges indexed before never needs a new leaf; false
// (nothing written) if a leaf could not be mapped.
bool set_extent(const Extent& x, std::uintptr_t entry) noexcept;
// Writes `value` (kNone or kFreed) on every entry of x's index that is not
// also an entry of keep's (null: none kept).  Never maps a leaf.
void clear_extent(const Extent& x, std::uintptr_t value, const Extent* keep = nullptr) noexcept;
// Re-indexes a block that changes from `was` to `now`: now's index is
// written, then what is left of was's is cleared (kNone).  A reader sees
// the anchors it needs at every moment.  false (nothing changed) if a leaf
// could not be mapped.
bool move_extent(const Extent& was, const Extent& now, std::uintptr_t entry) noexcept;
// Whether addr lies in a run an interior mark covers: inside some large
// block of this copy, not in one of its anchors.  At most one probe per
// power of two up to the largest block indexed so far.
bool in_interior(std::uintptr_t addr) noexcept;
// The entries x's index writes (anchors and marks): O(log n).
std::size_t extent_entries(const Extent& x) noexcept;
// Whether every entry of x's index holds what set_extent(x, entry) wrote
// (the large tier's validator).
bool extent_indexed(const Extent& x, std::uintptr_t entry) noexcept;

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
