// strata_aligned_alloc: every power-of-two alignment with sizes of every
// tier, usability of the whole block, EINVAL for bad alignments.
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <vector>

#include "test_util.hpp"

namespace {

const std::size_t kSizes[] = {0,    1,     8,     15,    16,    17,     48,     100,        1000,
                              2600, 2624,  2625,  4096,  5000,  65536,  100000, 255 * 1024, 262145,
                              300000, 1024 * 1024 + 1, 3 * 1024 * 1024};

void check_aligned(std::size_t a, std::size_t n, strata_pool_t* pool = nullptr) {
  errno = 0;
  void* p = pool ? strata_pool_aligned_alloc(pool, a, n) : strata_aligned_alloc(a, n);
  INFO("alignment " << a << " size " << n << " -> " << p << " pool " << pool);
  REQUIRE(p != nullptr);
  REQUIRE(st::aligned(p, a));
  REQUIRE(st::aligned(p, 16));
  std::size_t u = strata_usable_size(p);
  REQUIRE(u >= n);
  std::uint64_t seed = st::block_seed(p, n) + a;
  st::fill(p, u, seed);
  REQUIRE(st::check(p, u, seed));
  if (pool) {
    REQUIRE(strata_pool_of(p) == pool);
    strata_pool_free(pool, p);
  } else {
    REQUIRE(strata_pool_of(p) == nullptr);
    strata_free(p);
  }
}

}  // namespace

TEST_CASE("every power-of-two alignment up to 4 MiB with sizes of every tier", "[alignment]") {
  for (std::size_t a = 1; a <= 4 * st::MiB; a *= 2)
    for (std::size_t n : kSizes) check_aligned(a, n);
}

TEST_CASE("many live aligned blocks keep alignment and content", "[alignment]") {
  struct B { void* p; std::size_t u; std::uint64_t seed; };
  std::vector<B> live;
  for (int round = 0; round < 3; ++round)
    for (std::size_t a = 16; a <= 256 * st::KiB; a *= 2)
      for (std::size_t n : {std::size_t{1}, std::size_t{40}, std::size_t{700}, std::size_t{3000}, std::size_t{70000}}) {
        void* p = strata_aligned_alloc(a, n);
        REQUIRE(p != nullptr);
        REQUIRE(st::aligned(p, a));
        std::size_t u = strata_usable_size(p);
        REQUIRE(u >= n);
        std::uint64_t seed = st::block_seed(p, n);
        st::fill(p, u, seed);
        live.push_back({p, u, seed});
      }
  for (const B& b : live) {
    INFO("block " << b.p);
    REQUIRE(st::check(b.p, b.u, b.seed));
    strata_free(b.p);
  }
}

TEST_CASE("huge alignments are honoured", "[alignment]") {
  for (std::size_t a : {8 * st::MiB, 64 * st::MiB, 256 * st::MiB, 1024 * st::MiB}) check_aligned(a, 1);
  check_aligned(64 * st::MiB, 5 * st::MiB);
}

TEST_CASE("aligned blocks of a pool", "[alignment]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  for (std::size_t a = 1; a <= 2 * st::MiB; a *= 4)
    for (std::size_t n : kSizes) check_aligned(a, n, pool);
  strata_pool_destroy(pool);
}

TEST_CASE("realloc of an aligned block keeps the content", "[alignment]") {
  for (std::size_t a : {std::size_t{64}, std::size_t{4096}, std::size_t{1} << 20}) {
    void* p = strata_aligned_alloc(a, 1000);
    REQUIRE(p != nullptr);
    st::fill(p, 1000, a);
    void* q = strata_realloc(p, 500000);
    REQUIRE(q != nullptr);
    REQUIRE(st::check(q, 1000, a));
    q = strata_realloc(q, 100);
    REQUIRE(q != nullptr);
    REQUIRE(st::check(q, 100, a));
    strata_free(q);
  }
}

TEST_CASE("non-power-of-two alignment fails with EINVAL", "[alignment]") {
  for (std::size_t a : {std::size_t{0}, std::size_t{3}, std::size_t{6}, std::size_t{24}, std::size_t{48},
                        std::size_t{100}, std::size_t{1000}, std::size_t{4095}, (std::size_t{1} << 20) + 1,
                        (std::size_t{1} << 20) + 4096, SIZE_MAX, SIZE_MAX / 2}) {
    for (std::size_t n : {std::size_t{0}, std::size_t{16}, std::size_t{5000}, std::size_t{1} << 20}) {
      INFO("alignment " << a << " size " << n);
      errno = 0;
      void* p = strata_aligned_alloc(a, n);
      CHECK(p == nullptr);
      CHECK(errno == EINVAL);
      if (p) strata_free(p);
    }
  }
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  errno = 0;
  void* p = strata_pool_aligned_alloc(pool, 48, 100);
  CHECK(p == nullptr);
  CHECK(errno == EINVAL);
  strata_pool_destroy(pool);
}

TEST_CASE("impossible aligned sizes fail with ENOMEM", "[alignment]") {
  for (std::size_t a : {std::size_t{16}, std::size_t{4096}, std::size_t{1} << 20}) {
    errno = 0;
    void* p = strata_aligned_alloc(a, SIZE_MAX - a);
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
    errno = 0;
    p = strata_aligned_alloc(a, SIZE_MAX / 2);
    CHECK(p == nullptr);
    CHECK(errno == ENOMEM);
  }
}

TEST_CASE("aligned medium blocks come back from the thread cache only when aligned", "[alignment][medium]") {
  // A freed medium block waits in the thread cache; an aligned request of
  // the same thread takes it back when it is aligned enough (a program that
  // allocates page-aligned buffers over and over), and never otherwise.
  strata_thread_flush();
  constexpr std::size_t kPage = 4096, kSize = 8192;
  void* p = strata_aligned_alloc(kPage, kSize);
  REQUIRE(p != nullptr);
  CHECK(st::aligned(p, kPage));
  const strata_heap_summary_t before = st::summary();
  strata_free(p);
  CHECK(st::summary().cached_bytes >= before.cached_bytes + kSize);
  void* q = strata_aligned_alloc(kPage, kSize);
  CHECK(q == p);
  strata_free(q);
  strata_thread_flush();
  // Medium blocks are 256-byte aligned: among a few of them, some are not
  // page-aligned; every one of them cached, an aligned request still gets a
  // page-aligned block.
  void* m[4];
  for (auto& b : m) {
    b = strata_malloc(kSize);
    REQUIRE(b != nullptr);
  }
  for (auto& b : m) strata_free(b);
  for (int i = 0; i < 4; ++i) {
    m[i] = strata_aligned_alloc(kPage, kSize);
    REQUIRE(m[i] != nullptr);
    CHECK(st::aligned(m[i], kPage));
  }
  for (auto& b : m) strata_free(b);
  strata_thread_flush();
}

TEST_CASE("an aligned request reuses a free run it fits exactly", "[alignment][medium]") {
  // Three 64 KiB-aligned blocks of 64 KiB (with their tags) lie back to
  // back in a fresh pool; the middle one freed leaves a run of exactly its
  // size, which the same request must take again.  (A search for a run of
  // size + alignment, which always fits, would skip it for the pool's top.)
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  constexpr std::size_t kAlign = 64 * 1024, kSize = kAlign - 16;
  void* x = strata_pool_aligned_alloc(pool, kAlign, kSize);
  void* y = strata_pool_aligned_alloc(pool, kAlign, kSize);
  void* z = strata_pool_aligned_alloc(pool, kAlign, kSize);
  REQUIRE((x && y && z));
  REQUIRE(static_cast<char*>(y) == static_cast<char*>(x) + kAlign);
  REQUIRE(static_cast<char*>(z) == static_cast<char*>(y) + kAlign);
  strata_pool_free(pool, y);
  strata_heap_trim(pool);  // the thread cache gives y back to its pool
  void* w = strata_pool_aligned_alloc(pool, kAlign, kSize);
  CHECK(w == y);
  CHECK(st::aligned(w, kAlign));
  CHECK(strata_usable_size(w) >= kSize);
  strata_pool_destroy(pool);
}
