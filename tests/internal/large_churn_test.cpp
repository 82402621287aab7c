// Large-block churn from several threads: kept mappings are split, merged
// with neighbours, evicted and absorbed by growing blocks while other threads
// do the same.  Every block carries a per-page pattern that is checked before
// it is freed or after a realloc.  (A neighbour merge once read the header of
// a block another thread was unmapping; this is the test that caught it.)
#include <strata/strata.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace {
constexpr std::size_t kPage = 4096;

void stamp(unsigned char* p, std::size_t n, unsigned id, std::size_t from = 0) {
  for (std::size_t o = from; o < n; o += kPage) p[o] = static_cast<unsigned char>(id + o / kPage);
  p[n - 1] = static_cast<unsigned char>(id);
}
bool check(const unsigned char* p, std::size_t n, unsigned id) {
  for (std::size_t o = 0; o + 1 < n; o += kPage)
    if (p[o] != static_cast<unsigned char>(id + o / kPage)) return false;
  return p[n - 1] == static_cast<unsigned char>(id);
}
}  // namespace

TEST_CASE("large blocks churned by four threads keep their contents") {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &failures] {
      std::mt19937_64 rng(77 + t);
      auto size = [&] { return (std::size_t{1} << (16 + rng() % 7)) + rng() % 100000; };
      struct Slot { unsigned char* p; std::size_t n; unsigned id; } live[8];
      unsigned id = 0;
      for (auto& s : live) {
        s.n = size();
        s.id = ++id;
        s.p = static_cast<unsigned char*>(strata_malloc(s.n));
        stamp(s.p, s.n, s.id);
      }
      for (int i = 0; i < 1500; ++i) {
        Slot& s = live[rng() % 8];
        if (!check(s.p, s.n, s.id)) failures++;
        if (i % 8 == 7) {
          std::size_t n = size();
          auto* q = static_cast<unsigned char*>(strata_realloc(s.p, n));
          if (!q) { failures++; continue; }
          std::size_t keep = n < s.n ? n : s.n;
          for (std::size_t o = 0; o + 1 < keep; o += kPage)
            if (q[o] != static_cast<unsigned char>(s.id + o / kPage)) { failures++; break; }
          s.p = q;
          s.n = n;
          stamp(s.p, s.n, s.id);
        } else {
          strata_free(s.p);
          s.n = size();
          s.id = ++id;
          s.p = static_cast<unsigned char*>(strata_malloc(s.n));
          if (!s.p) { failures++; continue; }
          stamp(s.p, s.n, s.id);
        }
      }
      for (auto& s : live) {
        if (!check(s.p, s.n, s.id)) failures++;
        strata_free(s.p);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(failures.load() == 0);
  CHECK(strata_heap_trim(nullptr) > 0);  // the kept mappings go back to the OS
}
