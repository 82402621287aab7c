// Every size from 0 to 8 KiB, geometrically beyond 8 MiB and densely around
// every tier boundary: alignment, usable size and full-usable-size content.
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "test_util.hpp"

namespace {

// Allocates, checks and frees one block; returns false (with INFO) on the
// first broken property so that a loop over thousands of sizes stays quiet.
void check_one_size(std::size_t n) {
  void* p = strata_malloc(n);
  INFO("size " << n << " -> " << p);
  REQUIRE(p != nullptr);
  REQUIRE(st::aligned(p, 16));
  std::size_t u = strata_usable_size(p);
  INFO("usable " << u);
  REQUIRE(u >= n);
  std::uint64_t seed = st::block_seed(p, n);
  st::fill(p, u, seed);
  std::size_t bad = st::first_mismatch(p, u, seed);
  INFO("first bad byte " << bad);
  REQUIRE(bad == SIZE_MAX);
  REQUIRE(strata_usable_size(p) == u);
  strata_free(p);
}

std::vector<std::size_t> boundary_sizes() {
  std::vector<std::size_t> v;
  auto around = [&](std::size_t b, std::size_t radius) {
    for (std::size_t s = b > radius ? b - radius : 0; s <= b + radius; ++s) v.push_back(s);
  };
  // small / medium
  around(st::kSmallMax, 80);
  // medium / large, generously: 255 KiB .. 265 KiB by 1 KiB with odd bytes
  for (std::size_t k = 250; k <= 270; ++k) {
    std::size_t b = k * st::KiB;
    for (std::size_t d : {0, 1, 7, 15, 16, 17, 33, 511, 1023}) v.push_back(b + d);
    for (std::size_t d : {1, 15, 16, 17, 48}) v.push_back(b - d);
  }
  // powers of two and page multiples, where internal size classes switch
  for (std::size_t b = 16; b <= 32 * st::MiB; b *= 2) around(b, b <= 512 * st::KiB ? 17 : 1);
  for (std::size_t pages = 1; pages <= 80; ++pages)
    for (std::size_t d : {0, 1, 15, 16, 17, 33}) {
      v.push_back(pages * 4096 + d);
      v.push_back(pages * 4096 - d);
    }
  return v;
}

}  // namespace

TEST_CASE("every size 0..8 KiB", "[sizes]") {
  for (std::size_t n = 0; n <= 8 * st::KiB; ++n) check_one_size(n);
}

TEST_CASE("geometric sizes to beyond 8 MiB", "[sizes]") {
  std::size_t count = 0;
  for (double d = 8 * st::KiB; d <= 12.0 * st::MiB; d *= 1.1) {
    std::size_t n = static_cast<std::size_t>(d);
    check_one_size(n);
    check_one_size(n + 1);
    check_one_size(n - 1);
    ++count;
  }
  CHECK(count > 70);
}

TEST_CASE("dense around tier boundaries", "[sizes]") {
  for (std::size_t n : boundary_sizes()) check_one_size(n);
}

TEST_CASE("live blocks of all sizes never overlap and keep their content", "[sizes]") {
  struct B { void* p; std::size_t n, u; std::uint64_t seed; };
  std::vector<B> live;
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 8 * st::KiB; n += 3) sizes.push_back(n);
  for (std::size_t n : boundary_sizes()) if (n <= 300 * st::KiB) sizes.push_back(n);
  for (std::size_t n = 300 * st::KiB; n <= 6 * st::MiB; n = n * 3 / 2) sizes.push_back(n);
  for (std::size_t n : sizes) {
    void* p = strata_malloc(n);
    REQUIRE(p != nullptr);
    REQUIRE(st::aligned(p, 16));
    std::size_t u = strata_usable_size(p);
    REQUIRE(u >= n);
    std::uint64_t seed = st::block_seed(p, n);
    st::fill(p, u, seed);
    live.push_back({p, n, u, seed});
  }
  // No two blocks' usable ranges intersect.
  std::vector<B> sorted = live;
  std::sort(sorted.begin(), sorted.end(), [](const B& a, const B& b) { return a.p < b.p; });
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    auto prev_end = static_cast<char*>(sorted[i - 1].p) + sorted[i - 1].u;
    INFO("block " << sorted[i - 1].p << " (usable " << sorted[i - 1].u << ") overlaps " << sorted[i].p);
    REQUIRE(prev_end <= static_cast<char*>(sorted[i].p));
  }
  // Free every other one, allocate again, then verify everything.
  for (std::size_t i = 0; i < live.size(); i += 2) {
    REQUIRE(st::check(live[i].p, live[i].u, live[i].seed));
    strata_free(live[i].p);
    void* p = strata_malloc(live[i].n);
    REQUIRE(p != nullptr);
    std::size_t u = strata_usable_size(p);
    REQUIRE(u >= live[i].n);
    live[i] = {p, live[i].n, u, st::block_seed(p, live[i].n) ^ 0x77};
    st::fill(p, u, live[i].seed);
  }
  for (const B& b : live) {
    INFO("block " << b.p << " size " << b.n);
    REQUIRE(st::check(b.p, b.u, b.seed));
    strata_free(b.p);
  }
}

TEST_CASE("malloc(0) returns unique non-null pointers", "[sizes]") {
  std::set<void*> seen;
  std::vector<void*> v;
  for (int i = 0; i < 5000; ++i) {
    void* p = strata_malloc(0);
    REQUIRE(p != nullptr);
    REQUIRE(st::aligned(p, 16));
    REQUIRE(seen.insert(p).second);
    v.push_back(p);
  }
  // And distinct from blocks of other sizes allocated meanwhile.
  std::vector<void*> others;
  for (int i = 0; i < 100; ++i) {
    void* q = strata_malloc(static_cast<std::size_t>(i) * 8 + 1);
    REQUIRE(q != nullptr);
    REQUIRE(seen.count(q) == 0);
    others.push_back(q);
  }
  for (void* p : v) strata_free(p);
  for (void* q : others) strata_free(q);
  strata_free(nullptr);  // must do nothing
  CHECK(strata_usable_size(nullptr) == 0);
}

TEST_CASE("a medium block is as big as its request, and a freed one serves that size again", "[sizes][medium]") {
  // The thread cache files medium blocks under classes (20 and 22 granules
  // are two of them); a block of 21 granules is no class size: it is filed
  // under 20 and must still come back for its own size, not be rounded up
  // to 22 granules when it is made.
  constexpr std::size_t kGranule = 256, kTag = 16;
  strata_thread_flush();  // earlier tests filled the cache up to its budget
  const std::size_t n = 21 * kGranule - kTag - 100;
  void* p = strata_malloc(n);
  REQUIRE(p != nullptr);
  CHECK(strata_usable_size(p) == 21 * kGranule - kTag);
  strata_free(p);
  void* q = strata_malloc(n);
  CHECK(q == p);
  // A request of 22 granules does not take a cached 21-granule block.
  strata_free(q);
  void* r = strata_malloc(22 * kGranule - kTag);
  REQUIRE(r != nullptr);
  CHECK(r != p);
  CHECK(strata_usable_size(r) == 22 * kGranule - kTag);
  // One of 20 granules may: the block is big enough.
  void* s = strata_malloc(20 * kGranule - kTag);
  CHECK(s == p);
  strata_free(r);
  strata_free(s);
}

TEST_CASE("the thread cache keeps the medium block freed last, whatever its size", "[sizes][medium]") {
  // The cache keeps medium blocks of any size while it holds less than its
  // 128 KiB budget (the last one may take it over); a cache at its budget
  // gives back what it holds and keeps the new block.  A program that
  // allocates and frees one 256 KiB buffer over and over is served without
  // the arena's lock, whatever blocks the cache held before.
  strata_thread_flush();
  const strata_heap_summary_t before = st::summary();
  void* small = strata_malloc(16 * 1024);
  void* p = strata_malloc(256 * 1024);
  REQUIRE(small != nullptr);
  REQUIRE(p != nullptr);
  strata_free(small);  // 16 KiB cached
  strata_free(p);
  const strata_heap_summary_t cached = st::summary();
  CHECK(cached.medium_blocks == before.medium_blocks);
  CHECK(cached.cached_bytes >= before.cached_bytes + (256 + 16) * 1024);
  void* q = strata_malloc(256 * 1024);
  CHECK(q == p);
  // Three more blocks (of three cache classes: a class keeps about 64 KiB of
  // blocks) take the cache over its budget.
  void* a = strata_malloc(40 * 1024);
  void* b = strata_malloc(48 * 1024);
  void* c = strata_malloc(56 * 1024);
  REQUIRE((a && b && c));
  strata_free(a);
  strata_free(b);
  strata_free(c);
  const std::size_t full = st::summary().cached_bytes;
  CHECK(full >= before.cached_bytes + (16 + 144) * 1024);
  // The big block's free empties the cache into the arena and keeps it alone.
  strata_free(q);
  const strata_heap_summary_t after = st::summary();
  CHECK(after.cached_bytes >= before.cached_bytes + 256 * 1024);
  CHECK(after.cached_bytes < before.cached_bytes + (256 + 16) * 1024);
  CHECK(after.medium_blocks == before.medium_blocks);
  CHECK(strata_malloc(256 * 1024) == p);
  strata_thread_flush();
}
