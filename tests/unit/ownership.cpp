// Span ownership of the small tier: a thread allocates from spans it owns;
// a small block freed by another thread goes back to its span, not into the
// freeing thread's allocations; a thread's spans are given up when it exits.
// This binary does not replace malloc (std::thread and Catch2 use glibc), so
// strata's process heap holds only what the tests allocate; each test uses a
// size class of its own.
#include <catch2/catch.hpp>

#include <strata/strata.h>

#include <cstdint>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {
std::uintptr_t chunk_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p) >> 16; }
}  // namespace

TEST_CASE("a block freed by another thread is not reused by that thread", "[ownership]") {
  // Hoard's cache-scratch: the main thread hands a block to a worker, which
  // frees it and allocates the same size.  Reusing the block would put the
  // worker's writes on a cache line of the main thread's span.
  constexpr std::size_t kSize = 176;
  void* handed = strata_malloc(kSize);
  REQUIRE(handed);
  void* got = nullptr;
  std::thread worker([&] {
    strata_free(handed);
    got = strata_malloc(kSize);
    strata_free(got);
  });
  worker.join();
  CHECK(got != handed);
  CHECK(chunk_of(got) != chunk_of(handed));
}

TEST_CASE("blocks freed by other threads go back to the owner's spans", "[ownership]") {
  constexpr std::size_t kSize = 208;
  constexpr int kN = 4000;
  const strata_heap_summary_t before = st::summary();
  std::vector<void*> blocks;
  std::set<std::uintptr_t> chunks;
  for (int i = 0; i < kN; ++i) {
    blocks.push_back(strata_malloc(kSize));
    chunks.insert(chunk_of(blocks.back()));
  }
  CHECK(st::summary().small_blocks == before.small_blocks + kN);
  std::size_t in_use_after_frees = 0;
  std::thread worker([&] {
    for (void* p : blocks) strata_free(p);
    // Some of them still wait in this thread's foreign bin: the summary
    // counts them as cached, not in use.
    in_use_after_frees = st::summary().small_blocks;
    strata_thread_flush();
  });
  worker.join();
  CHECK(in_use_after_frees == before.small_blocks);
  const strata_heap_summary_t mid = st::summary();
  CHECK(mid.small_blocks == before.small_blocks);
  // The owner allocates them again from its own spans: no new span, and
  // every block lies in a chunk the first round used.
  std::size_t outside = 0;
  for (int i = 0; i < kN; ++i) {
    blocks[i] = strata_malloc(kSize);
    outside += chunks.count(chunk_of(blocks[i])) == 0;
  }
  CHECK(outside == 0);
  CHECK(st::summary().os_reserved_bytes <= mid.os_reserved_bytes);
  for (void* p : blocks) strata_free(p);
}

TEST_CASE("a thread's spans serve other threads once it has exited", "[ownership]") {
  constexpr std::size_t kSize = 448;  // 145 blocks per span
  constexpr int kN = 600;
  std::vector<void*> blocks(kN);
  std::thread a([&] {
    for (auto& p : blocks) p = strata_malloc(kSize);
  });
  a.join();
  std::set<std::uintptr_t> chunks;
  for (void* p : blocks) chunks.insert(chunk_of(p));
  // A thread started now reuses a's thread cache (the heap recycles them):
  // it must not inherit a's spans.
  bool stop = false;
  std::mutex m;
  std::condition_variable cv;
  std::thread c([&] {
    strata_free(strata_malloc(16));
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return stop; });
  });
  // Half of a's blocks are freed: its spans are partly free, owned by nobody.
  for (int i = 0; i < kN; i += 2) strata_free(blocks[i]);
  strata_thread_flush();
  std::size_t inside = 0;
  constexpr int kB = 250;
  std::vector<void*> got(kB);
  std::thread b([&] {
    for (auto& p : got) p = strata_malloc(kSize);
  });
  b.join();
  for (void* p : got) inside += chunks.count(chunk_of(p));
  CHECK(inside == kB);
  {
    std::lock_guard<std::mutex> l(m);
    stop = true;
  }
  cv.notify_all();
  c.join();
  for (void* p : got) strata_free(p);
  for (int i = 1; i < kN; i += 2) strata_free(blocks[i]);
}

TEST_CASE("a refill takes its span's free list whole up to four batches", "[ownership]") {
  // A span's free list holds blocks that other threads wrote as they freed
  // them: walking it would read each one from another core's cache, one
  // dependent miss after another.  A refill takes a list of up to four
  // batches in one step, more blocks than its bin's bound (two batches).
  constexpr std::size_t kSize = 256;  // batch 32 blocks (8 KiB), bin bound 64
  constexpr int kN = 70;              // refills of 4, 8, 16, 32, 32 blocks: one span, 92 carved
  std::vector<void*> blocks(kN);
  std::mutex m;
  std::condition_variable cv;
  int stage = 0;
  std::size_t cached_before = 0, cached_after = 0;
  std::thread owner([&] {
    for (auto& p : blocks) p = strata_malloc(kSize);
    strata_thread_flush();  // its bin is empty, its span joins the class's partial list
    std::unique_lock<std::mutex> l(m);
    stage = 1;
    cv.notify_all();
    cv.wait(l, [&] { return stage == 2; });
    cached_before = st::summary().cached_bytes;
    void* p = strata_malloc(kSize);  // the refill: the span's free list holds 91 blocks
    cached_after = st::summary().cached_bytes;
    strata_free(p);
  });
  {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return stage == 1; });
  }
  for (int i = 1; i < kN; ++i) strata_free(blocks[i]);  // blocks[0] keeps the span in use
  strata_thread_flush();
  {
    std::lock_guard<std::mutex> l(m);
    stage = 2;
  }
  cv.notify_all();
  owner.join();
  CHECK(cached_after - cached_before >= 90 * kSize);  // a walk takes one batch: 31 blocks cached
  strata_free(blocks[0]);
}
