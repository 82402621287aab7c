// The chunk map: entries set and cleared over whole ranges, lookups of
// addresses nobody mapped, and of addresses beyond 48 bits; a large block's
// sparse index (anchors and interior marks).
#include <sys/mman.h>

#include <catch2/catch.hpp>

#include <strata/strata.h>

#include "chunk_map.hpp"
#include "os.hpp"

using namespace strata::detail;

TEST_CASE("set_range/clear_range cover exactly the chunks of the range") {
  std::size_t size = 8 * kChunkSize;
  void* mem = os::map_aligned(size, kChunkSize);
  REQUIRE(mem);
  auto a = reinterpret_cast<std::uintptr_t>(mem);
  REQUIRE(chunk_map::lookup(a) == 0);
  std::uintptr_t e = chunk_map::make(mem, ChunkKind::kLarge);
  REQUIRE(chunk_map::set_range(mem, size, e));
  for (std::uintptr_t p = a; p < a + size; p += 4096) REQUIRE(chunk_map::lookup(p) == e);
  CHECK(chunk_map::kind_of(chunk_map::lookup(a + size - 1)) == ChunkKind::kLarge);
  CHECK(chunk_map::owner_of<void>(chunk_map::lookup(a + size / 2)) == mem);
  CHECK(chunk_map::lookup(a + size) != e);
  CHECK(chunk_map::lookup(a - 1) != e);
  chunk_map::clear_range(mem, size);
  CHECK(chunk_map::kind_of(chunk_map::lookup(a)) == ChunkKind::kFreed);
  os::unmap(mem, size);
}

TEST_CASE("a range across two leaves (4 GiB windows) is set and cleared in both") {
  // Only the map is written: the addresses need not be mapped.  This window
  // (48 TiB) is far from where Linux places mappings.
  const std::uintptr_t boundary = std::uintptr_t{48} << 40;
  const std::uintptr_t a = boundary - 3 * kChunkSize;
  const std::size_t size = 6 * kChunkSize;
  auto* base = reinterpret_cast<void*>(a);
  std::uintptr_t e = chunk_map::make(base, ChunkKind::kLarge);
  REQUIRE(chunk_map::set_range(base, size, e));
  for (std::uintptr_t c = a; c < a + size; c += kChunkSize) {
    INFO("chunk " << (c - a) / kChunkSize);
    CHECK(chunk_map::lookup(c) == e);
    CHECK(chunk_map::lookup(c + kChunkSize - 1) == e);
  }
  CHECK(chunk_map::lookup(a - 1) != e);
  CHECK(chunk_map::lookup(a + size) != e);
  chunk_map::clear_range(base, size);
  for (std::uintptr_t c = a; c < a + size; c += kChunkSize)
    CHECK(chunk_map::kind_of(chunk_map::lookup(c)) == ChunkKind::kFreed);
}

TEST_CASE("addresses nobody mapped, and non-canonical ones, are unknown") {
  int local = 0;
  CHECK(chunk_map::lookup(reinterpret_cast<std::uintptr_t>(&local)) == 0);
  CHECK(chunk_map::lookup(0) == 0);
  CHECK(chunk_map::lookup(~std::uintptr_t{0}) == 0);
  CHECK(chunk_map::lookup(std::uintptr_t{1} << 48) == 0);
}

TEST_CASE("map_aligned honours large alignments") {
  for (std::size_t align : {kChunkSize, std::size_t{1} << 20, std::size_t{1} << 22}) {
    void* p = os::map_aligned(kChunkSize, align);
    REQUIRE(p);
    CHECK((reinterpret_cast<std::uintptr_t>(p) & (align - 1)) == 0);
    os::unmap(p, kChunkSize);
  }
}

TEST_CASE("release_empty_leaves unmaps the leaves that index nothing, and only those", "[release]") {
  // Two windows far from where Linux maps: one left indexed, one cleared.
  const std::uintptr_t kept = std::uintptr_t{40} << 40, gone = std::uintptr_t{41} << 40;
  auto* kept_base = reinterpret_cast<void*>(kept);
  auto* gone_base = reinterpret_cast<void*>(gone);
  REQUIRE(chunk_map::set_range(kept_base, 2 * kChunkSize, chunk_map::make(kept_base, ChunkKind::kLarge)));
  REQUIRE(chunk_map::set_range(gone_base, 2 * kChunkSize, chunk_map::make(gone_base, ChunkKind::kLarge)));
  chunk_map::clear_range(gone_base, 2 * kChunkSize);
  const std::size_t before = chunk_map::leaf_bytes();
  const std::size_t released = chunk_map::release_empty_leaves();
  CHECK(released >= sizeof(chunk_map::Leaf));
  CHECK(chunk_map::leaf_bytes() == before - released);
  CHECK(chunk_map::g_top[gone >> 32].load() == nullptr);
  CHECK(chunk_map::g_top[kept >> 32].load() != nullptr);
  CHECK(chunk_map::kind_of(chunk_map::lookup(kept)) == ChunkKind::kLarge);
  CHECK(chunk_map::lookup(gone) == 0);  // unknown again
  // The map still works in the released window.
  REQUIRE(chunk_map::set_range(gone_base, kChunkSize, chunk_map::make(gone_base, ChunkKind::kSmall)));
  CHECK(chunk_map::kind_of(chunk_map::lookup(gone)) == ChunkKind::kSmall);
  chunk_map::clear_range(gone_base, kChunkSize);
  chunk_map::clear_range(kept_base, 2 * kChunkSize);
}

// ---- a large block's index: O(log n) entries (issue 23, case 8) ----

namespace {
// The chunk-map entries that name something in [a, a + size) and the chunk
// on either side.
std::size_t entries_around(std::uintptr_t a, std::size_t size) {
  std::size_t n = 0;
  for (std::uintptr_t c = a - kChunkSize; c <= a + size; c += kChunkSize) {
    ChunkKind k = chunk_map::kind_of(chunk_map::lookup(c));
    if (k != ChunkKind::kNone && k != ChunkKind::kFreed) ++n;
  }
  return n;
}
// 4 anchors and at most 2 runs per power of two in each of the 3 gaps.
std::size_t bound_for(std::size_t chunks) {
  std::size_t log = 0;
  while ((std::size_t{1} << log) < chunks) ++log;
  return 4 + 6 * (log + 1);
}
}  // namespace

TEST_CASE("an extent's index: anchors name it, every chunk between them is interior, O(log n) entries") {
  // Only the map is written: a window far from Linux's mappings (40 TiB).
  const std::uintptr_t window = std::uintptr_t{40} << 40;
  struct Shape {
    std::size_t chunks;
    std::size_t header_chunk;  // from the base
    std::size_t user_chunk;
    std::size_t offset;        // of the base from the window, in chunks
  };
  for (Shape sh : {Shape{1, 0, 0, 0}, Shape{2, 0, 0, 3}, Shape{5, 0, 0, 7}, Shape{37, 16, 17, 5},
                   Shape{262144, 0, 0, 65530},          // 16 GiB across five leaves
                   Shape{100003, 4095, 4096, 12345}}) {  // an aligned block's anchors in the middle
    INFO("chunks " << sh.chunks << " header " << sh.header_chunk << " offset " << sh.offset);
    const std::uintptr_t base = window + sh.offset * kChunkSize;
    const std::size_t size = sh.chunks * kChunkSize;
    // The header 64 bytes below the user pointer: at the end of its chunk
    // when the user pointer starts the next one (an aligned block).
    const std::uintptr_t header =
        base + sh.header_chunk * kChunkSize + (sh.user_chunk != sh.header_chunk ? kChunkSize - 64 : 0);
    const chunk_map::Extent x{base, size, header, header + 64};
    const std::uintptr_t entry = chunk_map::make(reinterpret_cast<void*>(x.header), ChunkKind::kLarge);
    REQUIRE(chunk_map::set_extent(x, entry));
    CHECK(chunk_map::extent_indexed(x, entry));
    CHECK(entries_around(base, size) == chunk_map::extent_entries(x));
    CHECK(chunk_map::extent_entries(x) <= bound_for(sh.chunks));
    for (std::uintptr_t c = base; c < base + size; c += kChunkSize) {
      const bool anchor = c == base || c == base + size - kChunkSize || c >> kChunkShift == x.header >> kChunkShift ||
                          c >> kChunkShift == x.user >> kChunkShift;
      if (anchor) {
        if (chunk_map::lookup(c) != entry) FAIL("an anchor chunk does not name the block");
      } else if (!chunk_map::in_interior(c + 12345)) {
        FAIL("chunk " << (c - base) / kChunkSize << " is not covered by an interior mark");
      }
    }
    CHECK_FALSE(chunk_map::in_interior(base - 1));
    CHECK_FALSE(chunk_map::in_interior(base + size));
    chunk_map::clear_extent(x, static_cast<std::uintptr_t>(ChunkKind::kNone));
    CHECK(entries_around(base, size) == 0);
    for (std::uintptr_t c = base; c < base + size; c += kChunkSize * 97)
      if (chunk_map::in_interior(c)) FAIL("a cleared extent is still interior");
  }
}

TEST_CASE("move_extent rewrites only what changes, and leaves nothing of the old index") {
  const std::uintptr_t base = (std::uintptr_t{41} << 40) + 3 * kChunkSize;
  const std::uintptr_t entry = chunk_map::make(reinterpret_cast<void*>(base), ChunkKind::kLarge);
  const chunk_map::Extent big{base, 1000 * kChunkSize, base, base + 64};
  const chunk_map::Extent small{base, 77 * kChunkSize, base, base + 64};
  REQUIRE(chunk_map::set_extent(big, entry));
  REQUIRE(chunk_map::move_extent(big, small, entry));  // a shrink
  CHECK(chunk_map::extent_indexed(small, entry));
  CHECK(entries_around(base, 1000 * kChunkSize) == chunk_map::extent_entries(small));
  CHECK_FALSE(chunk_map::in_interior(base + 77 * kChunkSize));
  CHECK_FALSE(chunk_map::in_interior(base + 999 * kChunkSize));
  REQUIRE(chunk_map::move_extent(small, big, entry));  // a grow
  CHECK(chunk_map::extent_indexed(big, entry));
  CHECK(entries_around(base, 1000 * kChunkSize) == chunk_map::extent_entries(big));
  CHECK(chunk_map::in_interior(base + 500 * kChunkSize));
  chunk_map::clear_extent(big, static_cast<std::uintptr_t>(ChunkKind::kNone));
  CHECK(entries_around(base, 1000 * kChunkSize) == 0);
}

TEST_CASE("a large block costs the chunk map O(log n) entries, and its every chunk is known to be strata's") {
  for (std::size_t size : {std::size_t{300} << 10, (std::size_t{2} << 20) + 5, std::size_t{64} << 20,
                           std::size_t{1} << 30}) {
    for (std::size_t align : {std::size_t{16}, std::size_t{1} << 20}) {
      INFO("size " << size << " alignment " << align);
      auto* p = static_cast<char*>(strata_aligned_alloc(align, size));
      REQUIRE(p);
      const std::uintptr_t first = (reinterpret_cast<std::uintptr_t>(p) - 64) & ~(kChunkSize - 1);
      const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + size + kChunkSize - 1) & ~(kChunkSize - 1);
      const std::size_t chunks = (end - first) / kChunkSize;
      // One entry per 64 KiB before: 16,384 for the 1 GiB block.
      CHECK(entries_around(first, end - first) <= bound_for(chunks + 16));
      for (std::uintptr_t c = reinterpret_cast<std::uintptr_t>(p) + 8; c < reinterpret_cast<std::uintptr_t>(p) + size;
           c += kChunkSize) {
        ChunkKind k = chunk_map::kind_of(chunk_map::lookup(c));
        if (k != ChunkKind::kLarge && !chunk_map::in_interior(c))
          FAIL("offset " << c - reinterpret_cast<std::uintptr_t>(p) << " is not known to be a large block's");
      }
      strata_free(p);
    }
  }
}
