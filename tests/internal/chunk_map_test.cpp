// The chunk map: entries set and cleared over whole ranges, lookups of
// addresses nobody mapped, and of addresses beyond 48 bits.
#include <sys/mman.h>

#include <catch2/catch.hpp>

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
