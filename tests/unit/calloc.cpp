// strata_calloc zeroes recycled (dirty) memory of every tier; overflow and
// impossible sizes fail with ENOMEM.
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "test_util.hpp"

namespace {

const std::size_t kSizes[] = {1,     8,      16,     17,     100,    255,    1000,   2047,          2600,
                              2624,  2625,   4000,   9999,   32768,  65536,  100000, 200000,        255 * 1024,
                              262144, 266000, 300000, 1 << 20, 3 << 20};

void dirty_then_calloc(strata_pool_t* pool, int rounds) {
  for (int round = 0; round < rounds; ++round) {
    // Dirty: fill with 0xAB and free, in both orders, so that the next calloc
    // is likely to reuse exactly this memory (per-thread caches, free lists).
    std::vector<void*> v;
    for (std::size_t n : kSizes)
      for (int k = 0; k < 4; ++k) {
        void* p = pool ? strata_pool_malloc(pool, n) : strata_malloc(n);
        REQUIRE(p != nullptr);
        std::memset(p, 0xAB, strata_usable_size(p));
        v.push_back(p);
      }
    if (round % 2) std::reverse(v.begin(), v.end());
    for (void* p : v) strata_free(p);
    v.clear();
    for (std::size_t n : kSizes)
      for (int k = 0; k < 4; ++k) {
        // count * size split in different ways
        std::size_t count = (k % 2) ? n : 1, size = (k % 2) ? 1 : n;
        void* p = pool ? strata_pool_calloc(pool, count, size) : strata_calloc(count, size);
        INFO("round " << round << " calloc(" << count << ", " << size << ") pool " << pool);
        REQUIRE(p != nullptr);
        REQUIRE(st::aligned(p, 16));
        REQUIRE(strata_usable_size(p) >= n);
        REQUIRE(st::all_bytes(p, n, 0));
        std::memset(p, 0xAB, strata_usable_size(p));
        v.push_back(p);
      }
    for (void* p : v) strata_free(p);
  }
}

}  // namespace

TEST_CASE("calloc returns zeroed memory after dirty frees, every tier", "[calloc]") {
  dirty_then_calloc(nullptr, 20);
}

TEST_CASE("pool calloc returns zeroed memory after dirty frees", "[calloc][pool]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  dirty_then_calloc(pool, 10);
  strata_pool_destroy(pool);
}

TEST_CASE("calloc after dirty realloc shrink/grow is zeroed", "[calloc]") {
  // A block that was shrunk in place leaves a dirty tail behind; a later
  // calloc of a neighbouring or recycled block must still read zero.
  for (int round = 0; round < 50; ++round) {
    std::size_t n = 1000 + static_cast<std::size_t>(round) * 4099;
    void* p = strata_malloc(n);
    REQUIRE(p != nullptr);
    std::memset(p, 0xAB, strata_usable_size(p));
    p = strata_realloc(p, n / 7 + 1);
    REQUIRE(p != nullptr);
    void* q = strata_calloc(1, n / 2);
    REQUIRE(q != nullptr);
    INFO("round " << round);
    REQUIRE(st::all_bytes(q, n / 2, 0));
    strata_free(p);
    strata_free(q);
  }
}

TEST_CASE("calloc of zero elements gives unique blocks", "[calloc]") {
  void* a = strata_calloc(0, 16);
  void* b = strata_calloc(16, 0);
  void* c = strata_calloc(0, 0);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(c != nullptr);
  CHECK(a != b);
  CHECK(b != c);
  CHECK(a != c);
  strata_free(a);
  strata_free(b);
  strata_free(c);
}

TEST_CASE("calloc overflow returns NULL with ENOMEM", "[calloc]") {
  struct Case { std::size_t c, n; };
  for (Case k : {Case{SIZE_MAX / 2, 3}, Case{3, SIZE_MAX / 2}, Case{SIZE_MAX, 2}, Case{2, SIZE_MAX},
                 Case{std::size_t{1} << 32, std::size_t{1} << 32}, Case{(SIZE_MAX / 16) + 1, 16},
                 Case{SIZE_MAX, SIZE_MAX}}) {
    INFO("calloc(" << k.c << ", " << k.n << ")");
    errno = 0;
    void* p = strata_calloc(k.c, k.n);
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
    if (p) strata_free(p);
  }
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  errno = 0;
  CHECK(strata_pool_calloc(pool, SIZE_MAX / 2, 3) == nullptr);
  CHECK(errno == ENOMEM);
  strata_pool_destroy(pool);
}

TEST_CASE("impossible sizes return NULL with ENOMEM", "[calloc][malloc]") {
  for (std::size_t n : {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 4096, SIZE_MAX / 2 + 1, SIZE_MAX / 2,
                        std::size_t{1} << 62, std::size_t{1} << 56, std::size_t{1} << 48}) {
    INFO("size " << n);
    errno = 0;
    void* p = strata_malloc(n);
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
    if (p) strata_free(p);
    errno = 0;
    p = strata_calloc(1, n);
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
    if (p) strata_free(p);
  }
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  errno = 0;
  CHECK(strata_pool_malloc(pool, SIZE_MAX) == nullptr);
  CHECK(errno == ENOMEM);
  strata_pool_destroy(pool);
  // The heap still works afterwards.
  void* p = strata_malloc(100);
  REQUIRE(p != nullptr);
  strata_free(p);
}
