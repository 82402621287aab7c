// Memory a program frees stops counting in its resident set: a free run at
// the end of a medium pool gives its pages back to the OS once they reach
// 128 KiB (kMediumTrimThreshold), as glibc trims the top of its heap.
// Checked with mincore() on the pages of the freed blocks.
#include <catch2/catch.hpp>
#include <strata/strata.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {
// Resident pages among the whole pages inside [p, p + n).
std::size_t resident_pages(void* p, std::size_t n) {
  const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  std::uintptr_t from = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  std::uintptr_t to = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(page - 1);
  if (to <= from) return 0;
  std::vector<unsigned char> v((to - from) / page);
  REQUIRE(mincore(reinterpret_cast<void*>(from), to - from, v.data()) == 0);
  std::size_t r = 0;
  for (unsigned char c : v) r += c & 1;
  return r;
}
}  // namespace

TEST_CASE("freed medium blocks at the end of a pool leave the resident set", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  // A live block keeps the pool (and the blocks' place in it) alive.
  void* keep = strata_pool_malloc(pool, 8 * 1024);
  REQUIRE(keep != nullptr);
  constexpr std::size_t kSize = 200 * 1024;
  void* a = strata_pool_malloc(pool, kSize);
  void* b = strata_pool_malloc(pool, kSize);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  std::memset(a, 0xA5, kSize);
  std::memset(b, 0x5A, kSize);
  const std::size_t pages = resident_pages(a, kSize);
  REQUIRE(pages > 40);
  REQUIRE(resident_pages(b, kSize) == pages);
  strata_pool_free(pool, b);
  strata_pool_free(pool, a);
  // Blocks a thread cache holds are still in use to the pool: flush them.
  strata_heap_trim(pool);
  CHECK(resident_pages(a, kSize) <= 1);
  CHECK(resident_pages(b, kSize) == 0);
  // The live block is untouched, and the pool still serves the space.
  CHECK(static_cast<unsigned char*>(keep)[0] == static_cast<unsigned char*>(keep)[0]);
  void* c = strata_pool_malloc(pool, 2 * kSize);
  REQUIRE(c != nullptr);
  std::memset(c, 1, 2 * kSize);
  strata_pool_free(pool, c);
  strata_pool_free(pool, keep);
  strata_pool_destroy(pool);
}

TEST_CASE("a free run below the threshold keeps its pages", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  void* keep = strata_pool_malloc(pool, 8 * 1024);
  constexpr std::size_t kSize = 32 * 1024;  // well under 128 KiB
  void* a = strata_pool_malloc(pool, kSize);
  REQUIRE(a != nullptr);
  std::memset(a, 0xA5, kSize);
  strata_pool_free(pool, a);
  strata_heap_trim(pool);
  CHECK(resident_pages(a, kSize) >= kSize / 4096 - 1);
  strata_pool_free(pool, keep);
  strata_pool_destroy(pool);
}

// Slow start (kCacheSlowStartBytes): a thread's first refill of a class takes
// about 1 KiB of blocks, not the whole 8 KiB batch, so a short process that
// allocates a few blocks of many classes touches one page per class.  The
// first 128-byte block of a fresh pool lies in a fresh 64 KiB span; only the
// span's first page (its header and first blocks) may be resident.
TEST_CASE("a thread's first blocks of a class touch one page of their span", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool);
  void* p = strata_pool_malloc(pool, 128);
  REQUIRE(p);
  auto* span = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{0xFFFF});
  CHECK(resident_pages(span, 0x10000) == 1);
  // The batches grow back to full size: 200 more blocks come out of the
  // same span, in order, and now cover several pages.
  for (int i = 0; i < 200; ++i) REQUIRE(strata_pool_malloc(pool, 128));
  CHECK(resident_pages(span, 0x10000) > 1);
  strata_pool_destroy(pool);
}
