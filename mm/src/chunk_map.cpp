// strata — the chunk map (see chunk_map.hpp).
#include "chunk_map.hpp"

#include "os.hpp"

namespace strata::detail::chunk_map {

std::atomic<Leaf*> g_top[std::size_t{1} << kTopBits];
static std::atomic<std::size_t> g_leaf_bytes{0};

// Bytes of address space one leaf covers (4 GiB), and a chunk's index in its leaf.
static constexpr std::uintptr_t kLeafSpan = std::uintptr_t{1} << (kChunkShift + kLeafBits);
static inline std::size_t index_of(std::uintptr_t c) noexcept {
  return (c >> kChunkShift) & ((std::uintptr_t{1} << kLeafBits) - 1);
}

static Leaf* leaf_for(std::uintptr_t addr) noexcept {
  auto& slot = g_top[addr >> (kChunkShift + kLeafBits)];
  Leaf* leaf = slot.load(std::memory_order_acquire);
  if (leaf) return leaf;
  void* mem = os::map_aligned(sizeof(Leaf), kPageSize);
  if (!mem) return nullptr;
  os::name_region(mem, sizeof(Leaf), "strata:chunkmap");
  Leaf* fresh = static_cast<Leaf*>(mem);
  if (slot.compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel)) {
    g_leaf_bytes.fetch_add(sizeof(Leaf), std::memory_order_relaxed);
    return fresh;
  }
  os::unmap(mem, sizeof(Leaf));
  return leaf;
}

bool set_range(const void* base, std::size_t size, std::uintptr_t entry) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(base);
  STRATA_ASSERT((a & (kChunkSize - 1)) == 0 && (size & (kChunkSize - 1)) == 0);
  if ((a + size) >> kAddressBits) return false;
  // Leaf by leaf: one look-up per 4 GiB window, then a run of stores (a large
  // block's free and reuse re-point up to a few hundred entries).
  for (std::uintptr_t c = a, end = a + size; c < end;) {
    Leaf* leaf = leaf_for(c);
    if (!leaf) return false;
    const std::uintptr_t leaf_end = (c | (kLeafSpan - 1)) + 1;
    const std::uintptr_t stop = end < leaf_end ? end : leaf_end;
    for (std::size_t i = index_of(c), n = index_of(stop - kChunkSize); i <= n; ++i)
      leaf->entry[i].store(entry, std::memory_order_release);
    c = stop;
  }
  return true;
}

void clear_range(const void* base, std::size_t size) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(base);
  for (std::uintptr_t c = a, end = a + size; c < end;) {
    const std::uintptr_t leaf_end = (c | (kLeafSpan - 1)) + 1;
    const std::uintptr_t stop = end < leaf_end ? end : leaf_end;
    if (Leaf* leaf = g_top[c >> (kChunkShift + kLeafBits)].load(std::memory_order_acquire))
      for (std::size_t i = index_of(c), n = index_of(stop - kChunkSize); i <= n; ++i)
        leaf->entry[i].store(static_cast<std::uintptr_t>(ChunkKind::kFreed), std::memory_order_release);
    c = stop;
  }
}

std::size_t leaf_bytes() noexcept { return g_leaf_bytes.load(std::memory_order_relaxed); }

std::size_t release_empty_leaves() noexcept {
  std::size_t released = 0;
  for (auto& slot : g_top) {
    Leaf* leaf = slot.load(std::memory_order_acquire);
    if (!leaf) continue;
    bool empty = true;
    for (const auto& e : leaf->entry) {
      ChunkKind k = kind_of(e.load(std::memory_order_relaxed));
      if (k != ChunkKind::kNone && k != ChunkKind::kFreed) {
        empty = false;
        break;
      }
    }
    if (!empty) continue;
    slot.store(nullptr, std::memory_order_release);
    os::unmap(leaf, sizeof(Leaf));
    g_leaf_bytes.fetch_sub(sizeof(Leaf), std::memory_order_relaxed);
    released += sizeof(Leaf);
  }
  return released;
}

}  // namespace strata::detail::chunk_map
