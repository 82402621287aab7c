// Pools completed (issue 19): strata_pool_reset drops every block at once and
// keeps the memory for reuse; nested pools are destroyed and reset with
// their parent, children first.
#include <strata/strata.hpp>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {
// A workload over every tier: many small blocks, medium and large ones.
std::vector<void*> fill(strata_pool_t* pool, std::size_t small_blocks) {
  std::vector<void*> v;
  v.reserve(small_blocks + 2100);
  for (std::size_t i = 0; i < small_blocks; ++i) v.push_back(strata_pool_malloc(pool, 16 + (i * 16) % 256));
  for (std::size_t i = 0; i < 2000; ++i) v.push_back(strata_pool_malloc(pool, 3000 + (i * 512) % 60000));
  for (std::size_t i = 0; i < 40; ++i) v.push_back(strata_pool_malloc(pool, std::size_t{1} << 20));
  for (void* p : v) REQUIRE(p);
  return v;
}
}  // namespace

TEST_CASE("reset drops a million blocks at once; reuse maps nothing new", "[pools][reset]") {
  strata_pool_t* pool = strata_pool_create();
  std::vector<void*> first = fill(pool, 1000000);
  strata_heap_summary_t full = st::summary(pool);
  CHECK(full.small_blocks + full.medium_blocks + full.large_blocks >= first.size());
  strata_pool_reset(pool);
  strata_heap_summary_t after = st::summary(pool);
  CHECK(after.in_use_bytes == 0);
  CHECK(after.small_blocks + after.medium_blocks + after.large_blocks == 0);
  CHECK(after.cached_blocks == 0);
  CHECK(after.os_reserved_bytes == full.os_reserved_bytes);  // kept for reuse
  std::vector<void*> second = fill(pool, 1000000);
  strata_heap_summary_t again = st::summary(pool);
  CHECK(again.os_map_calls == full.os_map_calls);  // the same work found its memory again
  CHECK(again.os_reserved_bytes <= full.os_reserved_bytes);
  // The new blocks are real: written and freed one by one without a report.
  for (void* p : second) std::memset(p, 0xab, 16);
  for (void* p : second) strata_pool_free(pool, p);
  CHECK(st::summary(pool).in_use_bytes == 0);
  strata_pool_destroy(pool);
}

TEST_CASE("reset empties other threads' caches of the pool", "[pools][reset]") {
  strata_pool_t* pool = strata_pool_create();
  std::atomic<int> phase{0};
  std::thread t([&] {
    std::vector<void*> v;
    for (int i = 0; i < 5000; ++i) v.push_back(strata_pool_malloc(pool, 48 + (i % 7) * 300));
    for (void* p : v) strata_pool_free(pool, p);  // its cache holds some of them now
    std::vector<void*> live;
    for (int i = 0; i < 200; ++i) live.push_back(strata_pool_malloc(pool, 64));  // and some stay live
    phase = 1;
    while (phase != 2) std::this_thread::yield();
    // After the reset: its cache is empty and its blocks gone; it works on.
    std::vector<void*> w;
    for (int i = 0; i < 5000; ++i) w.push_back(strata_pool_malloc(pool, 48 + (i % 7) * 300));
    for (void* p : w) strata_pool_free(pool, p);
    phase = 3;
  });
  while (phase != 1) std::this_thread::yield();
  CHECK(st::summary(pool).cached_blocks > 0);
  strata_pool_reset(pool);
  strata_heap_summary_t s = st::summary(pool);
  CHECK(s.cached_blocks == 0);
  CHECK(s.in_use_bytes == 0);
  phase = 2;
  t.join();
  CHECK(phase == 3);
  CHECK(st::summary(pool).in_use_bytes == 0);
  strata_pool_destroy(pool);
}

TEST_CASE("nested pools: reset and destroy reach the children first", "[pools][nested]") {
  strata_pool_t* parent = strata_pool_create();
  strata_pool_t* a = strata_pool_create_child(parent);
  strata_pool_t* b = strata_pool_create_child(parent);
  strata_pool_t* grandchild = strata_pool_create_child(a);
  REQUIRE((a && b && grandchild));
  CHECK(strata_pool_create_child(nullptr) == nullptr);
  for (strata_pool_t* p : {parent, a, b, grandchild}) fill(p, 20000);
  void* in_grandchild = strata_pool_malloc(grandchild, 100);
  CHECK(strata_pool_of(in_grandchild) == grandchild);
  strata_pool_reset(parent);
  for (strata_pool_t* p : {parent, a, b, grandchild}) CHECK(st::summary(p).in_use_bytes == 0);
  // Blocks of every tier in each pool, to see their memory unmapped later.
  std::vector<void*> probes;
  for (strata_pool_t* p : {parent, a, b, grandchild}) {
    std::vector<void*> v = fill(p, 20000);
    probes.push_back(v.front());        // small
    probes.push_back(v[20000]);         // medium
    probes.push_back(v.back());         // large
  }
  // A child destroyed alone leaves its parent's list; the parent then
  // destroys the others.
  strata_pool_destroy(b);
  CHECK(st::summary(a).in_use_bytes > 0);
  for (std::size_t i = 6; i < 9; ++i) CHECK_FALSE(st::page_mapped(probes[i]));  // b's
  CHECK(st::page_mapped(probes[3]));  // a's, still there
  strata_pool_destroy(parent);  // a and the grandchild with it
  for (std::size_t i = 0; i < probes.size(); ++i) {
    INFO(i);
    CHECK_FALSE(st::page_mapped(probes[i]));
  }
}

TEST_CASE("strata::Pool: reset and make_child", "[pools][nested]") {
  strata::Pool parent;
  strata::Pool child = parent.make_child();
  void* p = child.malloc(1000);
  REQUIRE(p);
  parent.reset();
  CHECK(st::summary(child.get()).in_use_bytes == 0);
  void* q = child.malloc(1000);
  CHECK(q);
  child.destroy();  // before the parent's destructor
  CHECK_FALSE(child);
}
