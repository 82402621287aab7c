// strata — the chunk map (see chunk_map.hpp).
#include "chunk_map.hpp"

#include "os.hpp"

namespace strata::detail::chunk_map {

std::atomic<Leaf*> g_top[std::size_t{1} << kTopBits];
static std::atomic<std::size_t> g_leaf_bytes{0};

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
  for (std::uintptr_t c = a; c < a + size; c += kChunkSize) {
    Leaf* leaf = leaf_for(c);
    if (!leaf) return false;
    leaf->entry[(c >> kChunkShift) & ((std::uintptr_t{1} << kLeafBits) - 1)].store(entry, std::memory_order_release);
  }
  return true;
}

void clear_range(const void* base, std::size_t size) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(base);
  for (std::uintptr_t c = a; c < a + size; c += kChunkSize) {
    Leaf* leaf = g_top[c >> (kChunkShift + kLeafBits)].load(std::memory_order_acquire);
    if (leaf)
      leaf->entry[(c >> kChunkShift) & ((std::uintptr_t{1} << kLeafBits) - 1)].store(
          static_cast<std::uintptr_t>(ChunkKind::kFreed), std::memory_order_release);
  }
}

std::size_t leaf_bytes() noexcept { return g_leaf_bytes.load(std::memory_order_relaxed); }

}  // namespace strata::detail::chunk_map
