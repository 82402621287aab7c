// Memory a program frees stops counting in its resident set: a free run at
// the end of a medium pool gives its pages back to the OS once they reach
// 128 KiB (kMediumTrimThreshold), as glibc trims the top of its heap, after
// the trim delay (CTest runs this binary with STRATA_TRIM_DELAY_MS=0: at
// once; the delay has a test of its own).  Checked with mincore() on the
// pages of the freed blocks.
#include <catch2/catch.hpp>
#include <strata/strata.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {
const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
// The whole pages inside [p, p + n), as [*from, *to); false if there are none.
bool whole_page_range(void* p, std::size_t n, std::uintptr_t* from, std::uintptr_t* to) {
  *from = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  *to = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(page - 1);
  return *to > *from;
}
// Resident pages among the whole pages inside [p, p + n).
std::size_t resident_pages(void* p, std::size_t n) {
  std::uintptr_t from, to;
  if (!whole_page_range(p, n, &from, &to)) return 0;
  std::vector<unsigned char> v((to - from) / page);
  REQUIRE(mincore(reinterpret_cast<void*>(from), to - from, v.data()) == 0);
  std::size_t r = 0;
  for (unsigned char c : v) r += c & 1;
  return r;
}
// The number of whole pages inside [p, p + n).
std::size_t whole_pages(void* p, std::size_t n) {
  std::uintptr_t from, to;
  return whole_page_range(p, n, &from, &to) ? (to - from) / page : 0;
}
}  // namespace

// The thread cache keeps up to about 64 KiB of medium blocks per cache
// class, at least one: one block of over 64 KiB fills its class.  A test
// whose frees must reach the pool first frees a "plug" of the smallest size
// of its blocks' class: the plug fills the class, and, smaller than the
// test's blocks, never serves them.  257 KiB blocks (1,029 granules with
// their tag) are of class 1,024 granules, 150 KiB blocks (601) of class 576.
constexpr std::size_t kPlug1024 = 1024 * 256 - 16;
constexpr std::size_t kPlug576 = 576 * 256 - 16;
namespace {
void bypass_cache(strata_pool_t* pool, std::size_t plug) {
  void* p = strata_pool_malloc(pool, plug);
  REQUIRE(p != nullptr);
  strata_pool_free(pool, p);
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

// The first 64 KiB of a free run at the end of a pool stay resident
// (kMediumTopKeep, glibc's M_TOP_PAD): the next allocations from the top reuse
// them without faults.  Only what lies beyond them goes, and strata_heap_trim
// takes the rest.  A plug fills the blocks' class in the thread cache (see
// bypass_cache), so each free reaches the pool.
TEST_CASE("a free run at the end of a pool keeps its first 64 KiB resident", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  void* keep = strata_pool_malloc(pool, 8 * 1024);
  REQUIRE(keep != nullptr);
  constexpr std::size_t kSize = 257 * 1024;
  bypass_cache(pool, kPlug1024);
  constexpr std::size_t kPad = 64 * 1024;
  auto* a = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  auto* b = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(b > a);
  std::memset(a, 0xA5, kSize);
  std::memset(b, 0x5A, kSize);
  const std::size_t pad_pages = kPad / page;
  strata_pool_free(pool, b);
  strata_pool_free(pool, a);
  // The run starts at a's tag: a's first 64 KiB (less the page holding the
  // tag) stay, the rest of a and all of b are given back.
  CHECK(resident_pages(a, kPad) >= pad_pages - 2);
  CHECK(resident_pages(a + kPad + 4096, kSize - kPad - 4096) == 0);
  CHECK(resident_pages(b, kSize) == 0);
  // An explicit trim gives back the pad too.
  strata_heap_trim(pool);
  CHECK(resident_pages(a, kSize) <= 1);
  strata_pool_free(pool, keep);
  strata_pool_destroy(pool);
}

// An explicit trim also gives back the free pages in the middle of a pool,
// between live blocks (glibc's malloc_trim does the same with the free
// chunks inside its heaps): only the run's first page (its bin links) and
// last page (the next block's tag) stay.  The automatic trim never touches
// such a run.
TEST_CASE("an explicit trim gives back the whole free pages between live blocks", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  constexpr std::size_t kSize = 200 * 1024;
  auto* a = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  auto* b = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  auto* c = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(c != nullptr);
  REQUIRE(a < b);
  REQUIRE(b < c);
  std::memset(a, 0xA5, kSize);
  std::memset(b, 0x5A, kSize);
  std::memset(c, 0x3C, kSize);
  const std::size_t pages = resident_pages(b, kSize);
  REQUIRE(pages == whole_pages(b, kSize));
  strata_pool_free(pool, b);
  // The trim first flushes this thread's cache, so b reaches its pool: a
  // free run with live blocks on both sides.
  const std::size_t given = strata_heap_trim(pool);
  CHECK(given >= (pages - 2) * page);
  CHECK(resident_pages(b, kSize) <= 1);
  // The live neighbours keep their pages and their contents.
  CHECK(resident_pages(a, kSize) == whole_pages(a, kSize));
  CHECK(resident_pages(c, kSize) == whole_pages(c, kSize));
  for (std::size_t i = 0; i < kSize; i += 4096) {
    REQUIRE(a[i] == 0xA5);
    REQUIRE(c[i] == 0x3C);
  }
  CHECK(a[kSize - 1] == 0xA5);
  CHECK(c[kSize - 1] == 0x3C);
  // The space is still the pool's: it serves a block of the same size again,
  // whose pages read as zero until written.
  auto* d = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  REQUIRE(d == b);
  std::memset(d, 7, kSize);
  CHECK(d[kSize / 2] == 7);
  strata_pool_free(pool, d);
  strata_pool_free(pool, c);
  strata_pool_free(pool, a);
  strata_pool_destroy(pool);
}

// The automatic trim waits: a free top over the threshold is given back only
// once it has stayed free for the delay (STRATA_TRIM_DELAY_MS, 100 ms by
// default; the other tests of this file run with 0, and CTest runs this one
// alone with 200), at the next free in its arena.  A plug fills the blocks'
// class in the thread cache (bypass_cache), so each free reaches the pool.
TEST_CASE("a free top is given back only after the trim delay", "[.trim-delay]") {
  const char* env = std::getenv("STRATA_TRIM_DELAY_MS");
  REQUIRE(env != nullptr);
  const long delay_ms = std::atol(env);
  REQUIRE(delay_ms >= 50);
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  void* keep = strata_pool_malloc(pool, 8 * 1024);
  REQUIRE(keep != nullptr);
  constexpr std::size_t kSize = 257 * 1024;
  bypass_cache(pool, kPlug1024);
  auto* y = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  auto* a = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  auto* b = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
  REQUIRE((y && a && b));
  REQUIRE((y < a && a < b));
  std::memset(y, 1, kSize);
  std::memset(a, 2, kSize);
  std::memset(b, 3, kSize);
  const std::size_t pages = resident_pages(b, kSize);
  REQUIRE(pages > 60);
  const auto freed = std::chrono::steady_clock::now();
  strata_pool_free(pool, b);
  strata_pool_free(pool, a);
  // Within the delay the pages stay (a free now would keep them too).
  if (std::chrono::steady_clock::now() - freed < std::chrono::milliseconds(delay_ms / 2))
    CHECK(resident_pages(b, kSize) == pages);
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms + 50));
  // The delay is over: the next free in the arena (y's, which joins the top)
  // gives back the top beyond the pad.
  strata_pool_free(pool, y);
  CHECK(resident_pages(b, kSize) == 0);
  CHECK(resident_pages(a + 64 * 1024, kSize - 64 * 1024) == 0);
  strata_pool_free(pool, keep);
  strata_pool_destroy(pool);
}

// A pool whose trimmed top is written again doubles its pad (64, 128, 256,
// 512 KiB, ...): a top that shrinks and grows by the same amount over and
// over stops faulting its pages back in.  The same three blocks are
// allocated, written and freed four times; the second block (257 KiB into
// the run) goes back to the OS while the pad is at most 256 KiB and stays
// once it is 512 KiB.
TEST_CASE("a pool whose top is trimmed and reused keeps a larger pad", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  void* keep = strata_pool_malloc(pool, 8 * 1024);
  REQUIRE(keep != nullptr);
  constexpr std::size_t kSize = 257 * 1024;
  bypass_cache(pool, kPlug1024);
  unsigned char* blocks[3];
  unsigned char* first[3];
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 3; ++i) {
      blocks[i] = static_cast<unsigned char*>(strata_pool_malloc(pool, kSize));
      REQUIRE(blocks[i] != nullptr);
      if (round == 0) first[i] = blocks[i];
      REQUIRE(blocks[i] == first[i]);  // the top run is carved from its start again
      std::memset(blocks[i], 0x33 + i, kSize);
    }
    for (int i = 2; i >= 0; --i) strata_pool_free(pool, blocks[i]);
    INFO("round " << round);
    if (round < 3) CHECK(resident_pages(blocks[1], kSize) == 0);
    else CHECK(resident_pages(blocks[1], 240 * 1024) >= 58);
    CHECK(resident_pages(blocks[2] + 8192, kSize - 8192) == 0);
  }
  strata_pool_free(pool, keep);
  strata_pool_destroy(pool);
}

// A free run whose dirty pages beyond the pad stay under the 128 KiB
// threshold keeps them all (no system call for a small shrink).
TEST_CASE("a free run below the pad and threshold keeps its pages", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  void* keep = strata_pool_malloc(pool, 8 * 1024);
  REQUIRE(keep != nullptr);
  // With the thread cache full, the free reaches the pool: 150 KiB of dirty
  // pages, 86 KiB beyond the pad.
  constexpr std::size_t kSize = 150 * 1024;
  bypass_cache(pool, kPlug576);
  void* a = strata_pool_malloc(pool, kSize);
  REQUIRE(a != nullptr);
  std::memset(a, 0xA5, kSize);
  strata_pool_free(pool, a);
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

namespace {
void fill_and_free(strata_pool_t* pool, std::size_t count) {
  std::vector<void*> v(count);
  for (auto& p : v) {
    p = strata_pool_malloc(pool, 1024);
    REQUIRE(p != nullptr);
    std::memset(p, 0x42, 1024);
  }
  for (void* p : v) strata_pool_free(pool, p);
}
}  // namespace

// Empty small spans stay mapped for the purge delay (100 ms for this test:
// STRATA_PURGE_DELAY_MS in tests/CMakeLists.txt) before they
// are unmapped, whatever their number: a program that frees a lot and
// allocates it again at once reuses them without a system call or a page
// fault.  Once they have been free that long, the next span that goes empty
// unmaps them (beyond the 16 a heap always keeps).
TEST_CASE("empty spans are reused at once and given back after the decay time", "[trim]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  constexpr std::size_t kBlocks = 200 * 63;  // 1 KiB blocks: about 200 spans
  fill_and_free(pool, kBlocks);
  const strata_heap_summary_t after_first = st::summary(pool);
  fill_and_free(pool, kBlocks);
  const strata_heap_summary_t after_second = st::summary(pool);
  CHECK(after_second.os_map_calls == after_first.os_map_calls);
  CHECK(after_second.os_reserved_bytes == after_first.os_reserved_bytes);
  REQUIRE(after_second.os_reserved_bytes > 150 * 65536);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  fill_and_free(pool, 20 * 63);  // the spans that empty now trigger the purge
  const strata_heap_summary_t after_decay = st::summary(pool);
  CHECK(after_decay.os_reserved_bytes + 150 * 65536 < after_second.os_reserved_bytes);
  strata_pool_destroy(pool);
}
