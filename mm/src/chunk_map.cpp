// strata — the chunk map (see chunk_map.hpp).
#include "chunk_map.hpp"

#include "os.hpp"

#include <utility>

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

// ---- a large block's index ----
namespace {

// A mark: the run's log2 size (in chunks) above the kind.
constexpr unsigned kMarkShift = 3;
inline std::uintptr_t mark(unsigned level) noexcept {
  return (std::uintptr_t{level} << kMarkShift) | static_cast<std::uintptr_t>(ChunkKind::kInterior);
}
inline unsigned mark_level(std::uintptr_t e) noexcept { return static_cast<unsigned>(e >> kMarkShift) & 63; }

// One entry of an extent's index: a chunk number and its run's log2 size,
// or kAnchor.
struct Item {
  std::uint32_t chunk;  // below 2^(kAddressBits - kChunkShift) = 2^32
  std::int32_t level;
};
static_assert(kAddressBits - kChunkShift <= 32);
constexpr int kAnchor = -1;
// 4 anchors, 3 gaps between them of at most 2 runs per power of two each.
constexpr std::size_t kMaxItems = 4 + 3 * 2 * (kAddressBits - kChunkShift + 1);

// The largest run marked so far: in_interior probes up to it.
std::atomic<unsigned> g_max_level{0};

// x's index in address order: each anchor, and the runs of the gap before
// it, each run the largest aligned power of two that starts where the last
// ended and fits the gap.
std::size_t index_items(const Extent& x, Item* out) noexcept {
  const std::uintptr_t first = x.base >> kChunkShift, last = ((x.base + x.size) >> kChunkShift) - 1;
  std::uintptr_t a[4] = {first, x.header >> kChunkShift, x.user >> kChunkShift, last};
  for (int i = 1; i < 4; ++i)  // sorted (the first and last are already in place)
    for (int j = i; j > 0 && a[j] < a[j - 1]; --j) std::swap(a[j], a[j - 1]);
  std::size_t n = 0;
  std::uintptr_t next = first;  // the first chunk not yet in the index
  for (std::uintptr_t anchor : a) {
    if (anchor < next) continue;  // a repeated anchor
    for (std::uintptr_t lo = next; lo < anchor;) {
      unsigned k = lo ? static_cast<unsigned>(__builtin_ctzll(lo)) : 63;
      const unsigned fit = 63 - static_cast<unsigned>(__builtin_clzll(anchor - lo));
      if (k > fit) k = fit;
      out[n++] = Item{static_cast<std::uint32_t>(lo), static_cast<std::int32_t>(k)};
      lo += std::uintptr_t{1} << k;
    }
    out[n++] = Item{static_cast<std::uint32_t>(anchor), kAnchor};
    next = anchor + 1;
  }
  return n;
}

// Stores v at chunk number c, if its leaf exists.
void store(std::uintptr_t c, std::uintptr_t v) noexcept {
  if (Leaf* leaf = g_top[c >> kLeafBits].load(std::memory_order_acquire))
    leaf->entry[c & ((std::uintptr_t{1} << kLeafBits) - 1)].store(v, std::memory_order_release);
}

}  // namespace

bool set_extent(const Extent& x, std::uintptr_t entry) noexcept {
  STRATA_ASSERT(((x.base | x.size) & (kChunkSize - 1)) == 0 && x.size && x.header >= x.base &&
                x.user >= x.base && x.header - x.base < x.size && x.user - x.base < x.size);
  if ((x.base + x.size) >> kAddressBits) return false;
  for (std::uintptr_t c = x.base, end = x.base + x.size; c < end; c = (c | (kLeafSpan - 1)) + 1)
    if (!leaf_for(c)) return false;
  Item items[kMaxItems];
  const std::size_t n = index_items(x, items);
  unsigned top = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (items[i].level == kAnchor) {
      store(items[i].chunk, entry);
    } else {
      store(items[i].chunk, mark(static_cast<unsigned>(items[i].level)));
      if (static_cast<unsigned>(items[i].level) > top) top = static_cast<unsigned>(items[i].level);
    }
  }
  unsigned seen = g_max_level.load(std::memory_order_relaxed);
  while (top > seen && !g_max_level.compare_exchange_weak(seen, top, std::memory_order_relaxed)) {
  }
  return true;
}

void clear_extent(const Extent& x, std::uintptr_t value, const Extent* keep) noexcept {
  Item items[kMaxItems], kept[kMaxItems];
  const std::size_t n = index_items(x, items);
  const std::size_t m = keep ? index_items(*keep, kept) : 0;
  // Both lists are in address order: one merge-like pass.
  for (std::size_t i = 0, j = 0; i < n; ++i) {
    while (j < m && kept[j].chunk < items[i].chunk) ++j;
    if (j < m && kept[j].chunk == items[i].chunk) continue;  // keep's index wrote it
    store(items[i].chunk, value);
  }
}

bool move_extent(const Extent& was, const Extent& now, std::uintptr_t entry) noexcept {
  if (!set_extent(now, entry)) return false;
  clear_extent(was, static_cast<std::uintptr_t>(ChunkKind::kNone), &now);
  return true;
}

bool in_interior(std::uintptr_t addr) noexcept {
  if (addr >> kAddressBits) return false;
  const std::uintptr_t c = addr >> kChunkShift;
  const unsigned top = g_max_level.load(std::memory_order_relaxed);
  for (unsigned j = 0; j <= top; ++j) {
    const std::uintptr_t run = c & ~((std::uintptr_t{1} << j) - 1);
    const std::uintptr_t e = lookup(run << kChunkShift);
    if (kind_of(e) == ChunkKind::kInterior && c - run < (std::uintptr_t{1} << mark_level(e))) return true;
  }
  return false;
}

std::size_t extent_entries(const Extent& x) noexcept {
  Item items[kMaxItems];
  return index_items(x, items);
}

bool extent_indexed(const Extent& x, std::uintptr_t entry) noexcept {
  Item items[kMaxItems];
  const std::size_t n = index_items(x, items);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uintptr_t want = items[i].level == kAnchor ? entry : mark(static_cast<unsigned>(items[i].level));
    if (lookup(std::uintptr_t{items[i].chunk} << kChunkShift) != want) return false;
  }
  return true;
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
