// strata_realloc: content across every pair of tiers, special cases, the
// number of moves of a growing buffer, in-place shrinking and growth.
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <cstring>
#include <vector>

#include "test_util.hpp"

namespace {

struct TierSizes {
  const char* name;
  std::vector<std::size_t> sizes;
};

const std::vector<TierSizes>& tiers() {
  static const std::vector<TierSizes> t = {
      {"small", {1, 24, 200, 1000, 2000, st::kSmallMax}},
      {"medium", {st::kSmallMax + 1, 8000, 60000, 200000, 250 * st::KiB}},
      {"large", {300000, 1536 * st::KiB, 6 * st::MiB}},
  };
  return t;
}

void realloc_pair(strata_pool_t* pool, std::size_t from, std::size_t to) {
  INFO("realloc " << from << " -> " << to << " pool " << pool);
  void* p = pool ? strata_pool_malloc(pool, from) : strata_malloc(from);
  REQUIRE(p != nullptr);
  std::uint64_t seed = st::block_seed(p, from);
  st::fill(p, from, seed);
  void* q = pool ? strata_pool_realloc(pool, p, to) : strata_realloc(p, to);
  REQUIRE(q != nullptr);
  REQUIRE(st::aligned(q, 16));
  REQUIRE(strata_usable_size(q) >= to);
  std::size_t keep = from < to ? from : to;
  std::size_t bad = st::first_mismatch(q, keep, seed);
  INFO("first bad byte " << bad << " (moved " << (p != q) << ")");
  REQUIRE(bad == SIZE_MAX);
  REQUIRE(strata_pool_of(q) == pool);
  // The whole new usable size must be writable.
  std::size_t u = strata_usable_size(q);
  st::fill(q, u, seed + 1);
  REQUIRE(st::check(q, u, seed + 1));
  if (pool) strata_pool_free(pool, q); else strata_free(q);
}

}  // namespace

TEST_CASE("realloc preserves content between every pair of tiers", "[realloc]") {
  for (const auto& a : tiers())
    for (const auto& b : tiers()) {
      INFO(a.name << " -> " << b.name);
      for (std::size_t from : a.sizes)
        for (std::size_t to : b.sizes) realloc_pair(nullptr, from, to);
    }
}

TEST_CASE("pool realloc preserves content between every pair of tiers", "[realloc][pool]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  for (const auto& a : tiers())
    for (const auto& b : tiers())
      for (std::size_t from : a.sizes)
        for (std::size_t to : b.sizes) realloc_pair(pool, from, to);
  strata_pool_destroy(pool);
}

TEST_CASE("realloc with live neighbours (no room in place) keeps content", "[realloc]") {
  // Neighbours allocated right after p force moves; verify they survive too.
  for (const auto& a : tiers())
    for (std::size_t from : a.sizes)
      for (std::size_t to : {from / 3 + 1, from + 1, from * 2 + 100, from * 5}) {
        void* p = strata_malloc(from);
        void* n1 = strata_malloc(from);
        void* n2 = strata_malloc(64);
        REQUIRE(p); REQUIRE(n1); REQUIRE(n2);
        st::fill(p, from, 1);
        st::fill(n1, from, 2);
        st::fill(n2, 64, 3);
        void* q = strata_realloc(p, to);
        INFO("realloc " << from << " -> " << to);
        REQUIRE(q != nullptr);
        REQUIRE(strata_usable_size(q) >= to);
        REQUIRE(st::check(q, from < to ? from : to, 1));
        REQUIRE(st::check(n1, from, 2));
        REQUIRE(st::check(n2, 64, 3));
        strata_free(n1);
        strata_free(q);
        strata_free(n2);
      }
}

TEST_CASE("realloc(NULL, n) is malloc(n)", "[realloc]") {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{100}, std::size_t{5000}, std::size_t{400000}}) {
    void* p = strata_realloc(nullptr, n);
    REQUIRE(p != nullptr);
    REQUIRE(st::aligned(p, 16));
    REQUIRE(strata_usable_size(p) >= n);
    st::fill(p, n, n);
    strata_free(p);
  }
}

TEST_CASE("realloc(p, 0) frees p and returns NULL, as glibc does", "[realloc]") {
  for (std::size_t n : {std::size_t{1}, std::size_t{100}, std::size_t{5000}, std::size_t{100000}, std::size_t{1} << 20}) {
    strata_heap_summary_t before{}, after{};
    before.size = after.size = sizeof before;
    void* p = strata_malloc(n);
    REQUIRE(p != nullptr);
    REQUIRE(strata_heap_summary(nullptr, &before) == 0);
    errno = 0;
    void* q = strata_realloc(p, 0);
    REQUIRE(q == nullptr);
    REQUIRE(errno == 0);
    REQUIRE(strata_heap_summary(nullptr, &after) == 0);
    // p was freed: one block fewer in use in its tier.
    REQUIRE(after.small_blocks + after.medium_blocks + after.large_blocks + 1 ==
            before.small_blocks + before.medium_blocks + before.large_blocks);
  }
}

TEST_CASE("realloc(p, 0) frees a medium block smaller than two granules", "[realloc]") {
  // An aligned request of a few bytes is a medium block of one granule,
  // which the in-place rule for medium blocks would keep for n = 0.
  for (std::size_t align : {std::size_t{512}, std::size_t{4096}}) {
    strata_heap_summary_t before{}, after{};
    before.size = after.size = sizeof before;
    void* p = strata_aligned_alloc(align, 100);
    REQUIRE(p != nullptr);
    REQUIRE(strata_heap_summary(nullptr, &before) == 0);
    void* q = strata_realloc(p, 0);
    REQUIRE(q == nullptr);
    REQUIRE(strata_heap_summary(nullptr, &after) == 0);
    REQUIRE(after.medium_blocks + 1 == before.medium_blocks);
  }
}

TEST_CASE("a failed realloc returns NULL with ENOMEM and leaves the block untouched", "[realloc]") {
  for (std::size_t n : {std::size_t{100}, std::size_t{10000}, std::size_t{1} << 20}) {
    void* p = strata_malloc(n);
    REQUIRE(p != nullptr);
    st::fill(p, n, 99);
    for (std::size_t huge : {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, std::size_t{1} << 62}) {
      errno = 0;
      void* q = strata_realloc(p, huge);
      CHECK(q == nullptr);
      CHECK(errno == ENOMEM);
      if (q) p = q;
    }
    REQUIRE(st::check(p, n, 99));
    REQUIRE(strata_usable_size(p) >= n);
    strata_free(p);
  }
}

TEST_CASE("growing one byte at a time to 1 MiB moves only a few dozen times", "[realloc]") {
  const std::size_t limit = st::MiB;
  auto* p = static_cast<unsigned char*>(strata_malloc(1));
  REQUIRE(p != nullptr);
  p[0] = st::pattern_byte(7, 0);
  std::size_t moves = 0, bad_usable = 0, bad_content = 0;
  for (std::size_t n = 2; n <= limit; ++n) {
    auto* q = static_cast<unsigned char*>(strata_realloc(p, n));
    if (!q) FAIL("realloc returned NULL at size " << n);
    if (q != p) {
      ++moves;
      if (!st::check(q, n - 1, 7)) ++bad_content;
    }
    if (strata_usable_size(q) < n) ++bad_usable;
    q[n - 1] = st::pattern_byte(7, n - 1);
    p = q;
  }
  REQUIRE(st::check(p, limit, 7));
  WARN("growing 1 B -> 1 MiB one byte at a time: " << moves << " moves (glibc: ~60)");
  CHECK(bad_usable == 0);
  CHECK(bad_content == 0);
  CHECK(moves <= 48);
  CHECK(moves >= 3);  // sanity: it did cross the tiers
  strata_free(p);
}

TEST_CASE("growing one word at a time to 1 MiB moves only a few dozen times", "[realloc]") {
  const std::size_t words = st::MiB / 8;
  auto* p = static_cast<std::uint64_t*>(strata_malloc(8));
  REQUIRE(p != nullptr);
  p[0] = st::mix64(0);
  std::size_t moves = 0, bad = 0;
  for (std::size_t n = 2; n <= words; ++n) {
    auto* q = static_cast<std::uint64_t*>(strata_realloc(p, n * 8));
    if (!q) FAIL("realloc returned NULL at size " << n * 8);
    if (q != p) {
      ++moves;
      for (std::size_t i = 0; i + 1 < n; ++i)
        if (q[i] != st::mix64(i)) { ++bad; break; }
    }
    if (strata_usable_size(q) < n * 8) ++bad;
    q[n - 1] = st::mix64(n - 1);
    p = q;
  }
  for (std::size_t i = 0; i < words; ++i) REQUIRE(p[i] == st::mix64(i));
  WARN("growing 8 B -> 1 MiB one word at a time: " << moves << " moves");
  CHECK(bad == 0);
  CHECK(moves <= 48);
  strata_free(p);
}

TEST_CASE("growing two interleaved buffers still moves rarely", "[realloc]") {
  // Two buffers growing alternately block each other's in-place growth.
  unsigned char* a = nullptr;
  unsigned char* b = nullptr;
  std::size_t moves = 0, last_n = 0;
  for (std::size_t n = 1; n <= 512 * st::KiB; n += 3) {
    last_n = n;
    auto* na = static_cast<unsigned char*>(strata_realloc(a, n));
    auto* nb = static_cast<unsigned char*>(strata_realloc(b, n));
    REQUIRE(na != nullptr);
    REQUIRE(nb != nullptr);
    if (a && na != a) ++moves;
    if (b && nb != b) ++moves;
    a = na;
    b = nb;
    for (std::size_t i = n >= 3 ? n - 3 : 0; i < n; ++i) {
      a[i] = st::pattern_byte(1, i);
      b[i] = st::pattern_byte(2, i);
    }
  }
  REQUIRE(st::check(a, last_n, 1));
  REQUIRE(st::check(b, last_n, 2));
  WARN("two interleaved buffers to 512 KiB: " << moves << " moves in total");
  CHECK(moves <= 2 * 48);
  strata_free(a);
  strata_free(b);
}

// A medium block that grows into the free space after it takes up to a
// quarter more than asked (the headroom a moved block gets), so a buffer grown a
// little at a time goes back to its arena's lock once per quarter of its
// size, not once per 256 bytes.
TEST_CASE("a medium block grown in place takes a quarter of headroom", "[realloc]") {
  strata_pool_t* pool = strata_pool_create();  // a pool of its own: the space after the block is free
  REQUIRE(pool != nullptr);
  auto* p = static_cast<unsigned char*>(strata_pool_malloc(pool, 8000));
  REQUIRE(p != nullptr);
  std::memset(p, 0x42, 8000);
  auto* q = static_cast<unsigned char*>(strata_pool_realloc(pool, p, 8500));
  REQUIRE(q == p);
  const std::size_t usable = strata_usable_size(q);
  // A quarter more, tag included, rounded down to granules of 256 bytes.
  CHECK(usable + 256 > 8500 + 8500 / 4);
  CHECK(usable <= 8500 + 8500 / 4);
  CHECK(q[0] == 0x42);
  CHECK(q[7999] == 0x42);
  CHECK(strata_pool_realloc(pool, q, usable) == q);  // within the headroom: no move
  strata_pool_free(pool, q);
  strata_pool_destroy(pool);
}

TEST_CASE("realloc within the usable size stays in place", "[realloc]") {
  for (std::size_t n : {std::size_t{1}, std::size_t{100}, std::size_t{2000}, std::size_t{5000},
                        std::size_t{100000}, std::size_t{400000}, std::size_t{3} << 20}) {
    void* p = strata_malloc(n);
    REQUIRE(p != nullptr);
    std::size_t u = strata_usable_size(p);
    st::fill(p, u, n);
    INFO("size " << n << " usable " << u);
    void* q = strata_realloc(p, u);
    REQUIRE(q == p);
    REQUIRE(strata_usable_size(q) >= u);
    REQUIRE(st::check(q, u, n));
    strata_free(q);
  }
}

TEST_CASE("shrinking by a little stays in place", "[realloc]") {
  struct Case { std::size_t from, to; const char* what; };
  for (Case c : {Case{1000, 990, "small"}, Case{2600, 2500, "small"}, Case{100000, 99000, "medium"},
                 Case{200000, 196000, "medium"}, Case{40000, 39000, "medium"},
                 Case{4 * st::MiB, 4 * st::MiB - 8192, "large"}, Case{1 * st::MiB, 1 * st::MiB - 4096, "large"}}) {
    INFO(c.what << " " << c.from << " -> " << c.to);
    void* p = strata_malloc(c.from);
    REQUIRE(p != nullptr);
    st::fill(p, c.from, 5);
    void* q = strata_realloc(p, c.to);
    REQUIRE(q == p);
    REQUIRE(strata_usable_size(q) >= c.to);
    REQUIRE(st::check(q, c.to, 5));
    strata_free(q);
  }
}

TEST_CASE("shrinking a lot keeps the content and gives a truthful usable size", "[realloc]") {
  for (std::size_t from : {std::size_t{2600}, std::size_t{200000}, std::size_t{8} << 20})
    for (std::size_t to : {std::size_t{1}, std::size_t{50}, std::size_t{2000}, std::size_t{10000}, std::size_t{150000}}) {
      if (to >= from) continue;
      void* p = strata_malloc(from);
      REQUIRE(p != nullptr);
      st::fill(p, from, from ^ to);
      void* q = strata_realloc(p, to);
      INFO(from << " -> " << to);
      REQUIRE(q != nullptr);
      std::size_t u = strata_usable_size(q);
      REQUIRE(u >= to);
      REQUIRE(st::check(q, to, from ^ to));
      st::fill(q, u, 3);  // the whole usable size is ours
      // A fresh block right after must not overlap the shrunk one.
      void* r = strata_malloc(64);
      REQUIRE(r != nullptr);
      st::fill(r, 64, 4);
      REQUIRE(st::check(q, u, 3));
      strata_free(r);
      strata_free(q);
    }
}

TEST_CASE("oscillating across tier boundaries keeps content", "[realloc]") {
  for (std::size_t base : {st::kSmallMax, std::size_t{256} * st::KiB, std::size_t{260} * st::KiB}) {
    void* p = strata_malloc(base);
    REQUIRE(p != nullptr);
    st::fill(p, base, base);
    for (int i = 0; i < 200; ++i) {
      std::size_t n = (i % 2) ? base + 1 + static_cast<std::size_t>(i) * 64 : base - static_cast<std::size_t>(i);
      void* q = strata_realloc(p, n);
      REQUIRE(q != nullptr);
      REQUIRE(strata_usable_size(q) >= n);
      std::size_t keep = base - 200;
      INFO("base " << base << " step " << i << " size " << n);
      REQUIRE(st::check(q, keep, base));
      p = q;
    }
    strata_free(p);
  }
}
