// strata_heap_summary / strata_print_summary reflect the program's blocks.
// This binary does not replace malloc: Catch2's own allocations go to glibc,
// so the process heap of strata only holds what the test allocates.
#include <catch2/catch.hpp>

#include <cstddef>
#include <strata/strata.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

struct TierCase {
  const char* name;
  std::size_t size;
  std::size_t strata_heap_summary_t::*blocks;
  std::size_t strata_heap_summary_t::*bytes;
};

const TierCase kTiers[] = {
    {"small", 64, &strata_heap_summary_t::small_blocks, &strata_heap_summary_t::small_bytes},
    {"small (largest class)", st::kSmallMax, &strata_heap_summary_t::small_blocks, &strata_heap_summary_t::small_bytes},
    {"medium", 20000, &strata_heap_summary_t::medium_blocks, &strata_heap_summary_t::medium_bytes},
    {"medium (smallest)", st::kSmallMax + 1, &strata_heap_summary_t::medium_blocks, &strata_heap_summary_t::medium_bytes},
    {"large", 1 << 20, &strata_heap_summary_t::large_blocks, &strata_heap_summary_t::large_bytes},
};

void check_consistent(const strata_heap_summary_t& s) {
  CHECK(s.version == 2);
  CHECK(s.in_use_bytes == s.small_bytes + s.medium_bytes + s.large_bytes);
  // (peak_in_use_bytes >= in_use_bytes + cached_bytes holds by construction:
  // strata_heap_summary raises the peak to what it sees.  Whether the peak
  // really tracks is checked without a summary during the burst, below.)
  CHECK(s.os_reserved_bytes >= s.in_use_bytes + s.cached_bytes);
  CHECK(s.peak_os_reserved_bytes >= s.os_reserved_bytes);
  CHECK((s.cached_blocks == 0) == (s.cached_bytes == 0));
  // Any heap that has mapped memory has indexed it: at least one 512 KiB leaf.
  if (s.os_reserved_bytes) CHECK(s.chunk_map_bytes >= 512 * 1024);
  CHECK(s.chunk_map_bytes % (512 * 1024) == 0);
}

// Gives the calling thread its cache of pool now (and maps the pool's
// metadata): the thread's later requests go through that cache and its
// counting batch, and the mappings a test counts later are its own.
void give_thread_a_cache(strata_pool_t* pool) { strata_pool_free(pool, strata_pool_malloc(pool, 16)); }

// What a thread may hand out before the peak hears of it (config.hpp,
// kCentralAccountSlack): the peak is exact to within this per thread.
constexpr std::size_t kAccountSlack = 64 * 1024;

// Allocates `count` blocks of `size` bytes from pool and frees them all,
// without a summary in between: a summary raises the peak to what it sees,
// so only the peak counter itself can remember the burst.
void burst(strata_pool_t* pool, std::size_t size, std::size_t count) {
  std::vector<void*> v;
  v.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    void* p = strata_pool_malloc(pool, size);
    REQUIRE(p != nullptr);
    static_cast<char*>(p)[0] = 1;
    v.push_back(p);
  }
  for (void* p : v) strata_pool_free(pool, p);
}

}  // namespace

TEST_CASE("summary argument checking", "[summary]") {
  CHECK(strata_heap_summary(nullptr, nullptr) == -1);
  strata_heap_summary_t s{};
  s.size = 4;  // too small for version 1's first fields
  CHECK(strata_heap_summary(nullptr, &s) == -1);
  s.size = sizeof s;
  CHECK(strata_heap_summary(nullptr, &s) == 0);
  CHECK(s.version == 2);
  CHECK(s.size == sizeof s);
  // A version-1 caller (without chunk_map_bytes) still gets its fields.
  strata_heap_summary_t v1{};
  v1.size = offsetof(strata_heap_summary_t, chunk_map_bytes);
  v1.chunk_map_bytes = 12345;
  CHECK(strata_heap_summary(nullptr, &v1) == 0);
  CHECK(v1.size == offsetof(strata_heap_summary_t, chunk_map_bytes));
  CHECK(v1.chunk_map_bytes == 12345);  // not written
  CHECK(v1.thread_caches == s.thread_caches);
}

TEST_CASE("summary counts N blocks of each tier and goes back after free", "[summary]") {
  const std::size_t N = 100;
  for (const TierCase& t : kTiers) {
    INFO("tier " << t.name << " size " << t.size);
    strata_heap_summary_t before = st::summary();
    check_consistent(before);
    std::vector<void*> v;
    for (std::size_t i = 0; i < N; ++i) {
      void* p = strata_malloc(t.size);
      REQUIRE(p != nullptr);
      v.push_back(p);
    }
    strata_heap_summary_t during = st::summary();
    check_consistent(during);
    CHECK(during.*t.blocks >= before.*t.blocks + N);
    CHECK(during.*t.bytes >= before.*t.bytes + N * t.size);
    CHECK(during.in_use_bytes >= before.in_use_bytes + N * t.size);
    CHECK(during.os_reserved_bytes >= N * t.size);
    // the other tiers did not move
    for (const TierCase& o : kTiers)
      if (o.blocks != t.blocks) CHECK(during.*o.blocks == before.*o.blocks);
    for (void* p : v) strata_free(p);
    strata_heap_summary_t after = st::summary();
    check_consistent(after);
    CHECK(after.small_blocks == before.small_blocks);
    CHECK(after.medium_blocks == before.medium_blocks);
    CHECK(after.large_blocks == before.large_blocks);
    CHECK(after.in_use_bytes == before.in_use_bytes);
  }
}

TEST_CASE("summary: mixed tiers at once", "[summary]") {
  strata_heap_summary_t before = st::summary();
  std::vector<void*> v;
  for (int i = 0; i < 300; ++i) v.push_back(strata_malloc(static_cast<std::size_t>(i % 50) * 16 + 1));
  for (int i = 0; i < 40; ++i) v.push_back(strata_malloc(5000 + static_cast<std::size_t>(i) * 3000));
  for (int i = 0; i < 5; ++i) v.push_back(strata_malloc((static_cast<std::size_t>(i) + 1) << 20));
  for (void* p : v) REQUIRE(p != nullptr);
  strata_heap_summary_t during = st::summary();
  CHECK(during.small_blocks == before.small_blocks + 300);
  CHECK(during.medium_blocks == before.medium_blocks + 40);
  CHECK(during.large_blocks == before.large_blocks + 5);
  CHECK(during.large_bytes >= before.large_bytes + 15 * st::MiB);
  for (void* p : v) strata_free(p);
  strata_heap_summary_t after = st::summary();
  CHECK(after.small_blocks == before.small_blocks);
  CHECK(after.medium_blocks == before.medium_blocks);
  CHECK(after.large_blocks == before.large_blocks);
  CHECK(after.large_bytes == before.large_bytes);
}

TEST_CASE("the peaks remember a burst after its blocks are freed, and only a bigger one raises them",
          "[summary][pool][peak]") {
  // A fresh pool per tier; N blocks totalling B bytes are allocated and all
  // freed, then trimmed: in use is 0 and what a summary sees (in use +
  // cached) is far below B, so the peak can only be B if the counter
  // tracked the burst itself.
  struct Burst {
    const char* name;
    std::size_t size, count;
  };
  const Burst kBursts[] = {{"small", 64, 65536}, {"medium", 20000, 200}, {"large", st::MiB, 8}};
  for (const Burst& b : kBursts) {
    const std::size_t B = b.size * b.count;
    INFO("tier " << b.name << ": " << b.count << " blocks of " << b.size << " bytes, B = " << B);
    strata_pool_t* pool = strata_pool_create();
    REQUIRE(pool != nullptr);
    give_thread_a_cache(pool);
    const strata_heap_summary_t fresh = st::summary(pool);
    REQUIRE(fresh.in_use_bytes == 0);
    REQUIRE(fresh.peak_in_use_bytes < kAccountSlack);

    burst(pool, b.size, b.count);
    strata_heap_trim(pool);
    const strata_heap_summary_t after = st::summary(pool);
    INFO("after the burst: in use " << after.in_use_bytes << ", cached " << after.cached_bytes << ", peak "
                                    << after.peak_in_use_bytes << ", os " << after.os_reserved_bytes << ", os peak "
                                    << after.peak_os_reserved_bytes << " (fresh os " << fresh.os_reserved_bytes << ")");
    CHECK(after.in_use_bytes == 0);
    CHECK(after.in_use_bytes + after.cached_bytes < kAccountSlack);  // all a summary could make a peak of
    CHECK(after.peak_in_use_bytes + kAccountSlack >= B);
    CHECK(after.peak_in_use_bytes <= 2 * B + st::MiB);                // tracked, not inflated
    CHECK(after.peak_os_reserved_bytes >= fresh.os_reserved_bytes + B);  // the burst's blocks were mapped
    CHECK(after.os_reserved_bytes + B / 2 <= after.peak_os_reserved_bytes);  // and are not now

    // Half the burst: both peaks stay where they are.
    burst(pool, b.size, b.count / 2);
    strata_heap_trim(pool);
    const strata_heap_summary_t half = st::summary(pool);
    CHECK(half.in_use_bytes == 0);
    CHECK(half.peak_in_use_bytes == after.peak_in_use_bytes);
    CHECK(half.peak_os_reserved_bytes == after.peak_os_reserved_bytes);

    // Twice the burst: both go up with it.
    burst(pool, b.size, 2 * b.count);
    strata_heap_trim(pool);
    const strata_heap_summary_t twice = st::summary(pool);
    CHECK(twice.in_use_bytes == 0);
    CHECK(twice.peak_in_use_bytes + kAccountSlack >= 2 * B);
    CHECK(twice.peak_in_use_bytes > after.peak_in_use_bytes);
    CHECK(twice.peak_in_use_bytes <= 4 * B + st::MiB);
    CHECK(twice.peak_os_reserved_bytes >= half.os_reserved_bytes + 2 * B);
    CHECK(twice.peak_os_reserved_bytes > after.peak_os_reserved_bytes);
    strata_pool_destroy(pool);
  }
}

TEST_CASE("summary: freed small blocks show up in the thread cache", "[summary]") {
  strata_heap_summary_t before = st::summary();
  std::vector<void*> v;
  for (int i = 0; i < 20; ++i) v.push_back(strata_malloc(32));
  for (void* p : v) strata_free(p);
  strata_heap_summary_t after = st::summary();
  CHECK(after.thread_caches >= 1);
  CHECK(after.small_blocks == before.small_blocks);
  CHECK(after.cached_blocks >= 1);
  strata_thread_flush();
  strata_heap_summary_t flushed = st::summary();
  CHECK(flushed.cached_blocks <= after.cached_blocks);
  CHECK(flushed.small_blocks == before.small_blocks);
}

TEST_CASE("summary: a medium block grown in place and cached counts as cached, not in use", "[summary]") {
  // In a pool of its own: the block starts the pool and its right neighbour
  // is free, so it grows in place to 41 granules (8,500 bytes and the quarter
  // of headroom a growing block takes, with its tag, rounded down), which is
  // no cache class (40 and 44 are): the cache files it under 40 and must
  // count all of it.
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  const strata_heap_summary_t before = st::summary(pool);
  void* p = strata_pool_malloc(pool, 8000);
  REQUIRE(p != nullptr);
  void* q = strata_pool_realloc(pool, p, 8500);
  REQUIRE(q == p);
  const std::size_t usable = strata_usable_size(q);
  REQUIRE(usable == 41 * 256 - 16);  // grown in place to exactly 41 granules
  strata_pool_free(pool, q);
  const strata_heap_summary_t after = st::summary(pool);
  CHECK(after.medium_blocks == before.medium_blocks);
  CHECK(after.medium_bytes == before.medium_bytes);
  CHECK(after.in_use_bytes == before.in_use_bytes);
  CHECK(after.cached_bytes >= before.cached_bytes + usable);
  strata_pool_destroy(pool);
}

TEST_CASE("summary: large blocks return their mappings to the OS", "[summary]") {
  // Earlier tests leave freed large mappings kept for reuse (up to 128 MiB),
  // which could serve the request below without a mapping call.
  strata_heap_trim(nullptr);
  strata_heap_summary_t before = st::summary();
  void* p = strata_malloc(64 * st::MiB);
  REQUIRE(p != nullptr);
  strata_heap_summary_t during = st::summary();
  CHECK(during.os_reserved_bytes >= before.os_reserved_bytes + 64 * st::MiB);
  CHECK(during.os_map_calls > before.os_map_calls);
  CHECK(during.peak_os_reserved_bytes >= during.os_reserved_bytes);
  strata_free(p);
  strata_heap_summary_t after = st::summary();
  CHECK(after.os_reserved_bytes < during.os_reserved_bytes - 60 * st::MiB);
  CHECK(after.peak_os_reserved_bytes >= during.os_reserved_bytes);
}

TEST_CASE("freed large blocks merge with their kept neighbours and are reused without mapping", "[summary][large]") {
  // In a pool of its own.  A 1 MiB block maps 4 MiB (kLargeMapMin) and keeps
  // the rest; a second one is carved from that rest.  Freed, both merge with
  // the kept rest: the same request is served again and again without a
  // system call, and a 3 MiB request, which none of the three pieces could
  // hold alone, fits the merged mapping.
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  give_thread_a_cache(pool);
  void* a = strata_pool_malloc(pool, st::MiB);
  REQUIRE(a != nullptr);
  const std::size_t calls = st::summary(pool).os_map_calls;
  void* b = strata_pool_malloc(pool, st::MiB);
  REQUIRE(b != nullptr);
  CHECK(static_cast<char*>(b) > static_cast<char*>(a));
  CHECK(static_cast<char*>(b) < static_cast<char*>(a) + 4 * st::MiB);
  strata_pool_free(pool, a);
  strata_pool_free(pool, b);
  for (int i = 0; i < 100; ++i) {
    void* c = strata_pool_malloc(pool, st::MiB);
    REQUIRE(c != nullptr);
    CHECK((c == a || c == b));
    st::fill(c, 4096, 7);
    strata_pool_free(pool, c);
  }
  void* big = strata_pool_malloc(pool, 3 * st::MiB);
  REQUIRE(big != nullptr);
  CHECK(big == a);
  CHECK(st::summary(pool).os_map_calls == calls);
  st::fill(big, 3 * st::MiB, 9);
  CHECK(st::check(big, 3 * st::MiB, 9));
  strata_pool_free(pool, big);
  strata_pool_destroy(pool);
}

TEST_CASE("a freed large block waits in the thread's cache for the thread's next request of its size", "[summary][large]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  give_thread_a_cache(pool);
  void* p = strata_pool_malloc(pool, st::MiB);
  REQUIRE(p != nullptr);
  st::fill(p, st::MiB, 5);
  const strata_heap_summary_t before = st::summary(pool);
  CHECK(before.large_blocks == 1);
  strata_pool_free(pool, p);
  // Parked: free to the program, counted as cached, still mapped.
  const strata_heap_summary_t parked = st::summary(pool);
  CHECK(parked.large_blocks == 0);
  CHECK(parked.large_bytes == 0);
  CHECK(parked.cached_bytes >= before.cached_bytes + st::MiB);
  CHECK(parked.os_reserved_bytes == before.os_reserved_bytes);
  // The same size (within an eighth) takes it back, no system call.
  void* q = strata_pool_malloc(pool, st::MiB + 1000);
  CHECK(q == p);
  const strata_heap_summary_t again = st::summary(pool);
  CHECK(again.large_blocks == 1);
  CHECK(again.os_map_calls == before.os_map_calls);
  CHECK(again.cached_bytes == before.cached_bytes);
  st::fill(q, st::MiB + 1000, 6);
  CHECK(st::check(q, st::MiB + 1000, 6));
  strata_pool_free(pool, q);
  // A trim gives the parked block back with the other kept mappings.
  strata_heap_trim(pool);
  const strata_heap_summary_t trimmed = st::summary(pool);
  CHECK(trimmed.cached_bytes < st::MiB);
  CHECK(trimmed.os_reserved_bytes + st::MiB < before.os_reserved_bytes);
  // A thread that exits gives its parked block back too.
  std::thread([pool] {
    void* t = strata_pool_malloc(pool, 2 * st::MiB);
    REQUIRE(t != nullptr);
    strata_pool_free(pool, t);
  }).join();
  const strata_heap_summary_t exited = st::summary(pool);
  CHECK(exited.large_blocks == 0);
  CHECK(exited.cached_bytes < 2 * st::MiB);
  strata_pool_destroy(pool);
}

TEST_CASE("a large block that cannot grow in place is copied into a kept mapping", "[summary][large][realloc]") {
  // In a pool of its own, so the kept mappings are the ones made here.  A
  // 1 MiB block maps 4 MiB (kLargeMapMin) and keeps the rest, which the
  // 2.5 MiB block b then takes: b sits right after a, so a cannot grow in
  // place.  A 3 MiB block freed leaves a kept 4 MiB mapping.
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  auto* a = static_cast<unsigned char*>(strata_pool_malloc(pool, st::MiB));
  void* b = strata_pool_malloc(pool, 2 * st::MiB + 512 * st::KiB);
  void* c = strata_pool_malloc(pool, 3 * st::MiB);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  REQUIRE(c != nullptr);
  st::fill(a, st::MiB, 41);
  strata_pool_free(pool, c);
  const strata_heap_summary_t before = st::summary(pool);
  // 1.5 MiB (under twice the block, under kLargeCopyMax): copied into the
  // kept mapping, no system call for a new mapping (a move with mremap would
  // count one).
  auto* q = static_cast<unsigned char*>(strata_pool_realloc(pool, a, 3 * st::MiB / 2));
  REQUIRE(q != nullptr);
  const strata_heap_summary_t after = st::summary(pool);
  CHECK(q != a);
  CHECK(after.os_map_calls == before.os_map_calls);
  CHECK(after.os_reserved_bytes == before.os_reserved_bytes);
  CHECK(st::check(q, st::MiB, 41));
  st::fill(q, 3 * st::MiB / 2, 42);
  CHECK(st::check(q, 3 * st::MiB / 2, 42));
  strata_pool_free(pool, q);
  strata_pool_free(pool, b);
  strata_pool_destroy(pool);
}

TEST_CASE("a large block over kLargeCopyMax grows by mremap, not by a copy", "[summary][large][realloc]") {
  // The block grows to 48 MiB plus 25 % headroom (60 MiB).  Whether the kernel
  // grows the mapping in place or moves it, only the difference (36 MiB) is
  // new address space; a copy would map all 60 MiB and keep the old 24 MiB.
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  auto* p = static_cast<unsigned char*>(strata_pool_malloc(pool, 24 * st::MiB));
  REQUIRE(p != nullptr);
  st::fill(p, 24 * st::MiB, 43);
  const strata_heap_summary_t before = st::summary(pool);
  auto* q = static_cast<unsigned char*>(strata_pool_realloc(pool, p, 48 * st::MiB));
  REQUIRE(q != nullptr);
  const strata_heap_summary_t after = st::summary(pool);
  CHECK(after.os_reserved_bytes - before.os_reserved_bytes < 40 * st::MiB);
  CHECK(st::check(q, 24 * st::MiB, 43));
  strata_pool_free(pool, q);
  strata_pool_destroy(pool);
}

TEST_CASE("summary of a pool is separate from the process heap", "[summary][pool]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  strata_heap_summary_t heap_before = st::summary();
  strata_heap_summary_t pool_before = st::summary(pool);
  CHECK(pool_before.small_blocks == 0);
  CHECK(pool_before.medium_blocks == 0);
  CHECK(pool_before.large_blocks == 0);
  std::vector<void*> v;
  for (int i = 0; i < 50; ++i) v.push_back(strata_pool_malloc(pool, 100));
  for (int i = 0; i < 10; ++i) v.push_back(strata_pool_malloc(pool, 40000));
  for (int i = 0; i < 3; ++i) v.push_back(strata_pool_malloc(pool, 2 << 20));
  for (void* p : v) REQUIRE(p != nullptr);
  strata_heap_summary_t pool_during = st::summary(pool);
  strata_heap_summary_t heap_during = st::summary();
  CHECK(pool_during.small_blocks == 50);
  CHECK(pool_during.medium_blocks == 10);
  CHECK(pool_during.large_blocks == 3);
  CHECK(pool_during.os_reserved_bytes >= 6 * st::MiB);
  CHECK(heap_during.small_blocks == heap_before.small_blocks);
  CHECK(heap_during.medium_blocks == heap_before.medium_blocks);
  CHECK(heap_during.large_blocks == heap_before.large_blocks);
  for (void* p : v) strata_pool_free(pool, p);
  strata_heap_summary_t pool_after = st::summary(pool);
  CHECK(pool_after.small_blocks == 0);
  CHECK(pool_after.medium_blocks == 0);
  CHECK(pool_after.large_blocks == 0);
  CHECK(pool_after.in_use_bytes == 0);
  strata_pool_destroy(pool);
}

TEST_CASE("tier boundaries as seen by the summary", "[summary]") {
  // Design facts: small <= 2624 bytes, medium up to about 260 KiB.
  CHECK(st::tier_of_size(1) == st::Tier::small);
  CHECK(st::tier_of_size(st::kSmallMax) == st::Tier::small);
  CHECK(st::tier_of_size(st::kSmallMax + 1) == st::Tier::medium);
  CHECK(st::tier_of_size(100000) == st::Tier::medium);
  CHECK(st::tier_of_size(8 * st::MiB) == st::Tier::large);
  std::size_t first_large = st::first_size_of_tier(st::kSmallMax + 1, 8 * st::MiB, st::Tier::large);
  WARN("first large size: " << first_large << " bytes (" << first_large / 1024.0 << " KiB)");
  CHECK(first_large >= 200 * st::KiB);
  CHECK(first_large <= 300 * st::KiB);
  // monotone around the boundary
  for (std::size_t n = first_large - 4096; n < first_large; n += 7)
    CHECK(st::tier_of_size(n) == st::Tier::medium);
  for (std::size_t n = first_large; n < first_large + 4096; n += 7)
    CHECK(st::tier_of_size(n) == st::Tier::large);
  // and the small classes are all small
  for (std::size_t n = 0; n <= st::kSmallMax; n += 16) CHECK(st::tier_of_size(n) == st::Tier::small);
}

TEST_CASE("print_summary writes some lines without failing", "[summary]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  void* p = strata_malloc(1000);
  REQUIRE(p);
  strata_print_summary(nullptr, fds[1]);
  strata_pool_t* pool = strata_pool_create();
  strata_print_summary(pool, fds[1]);
  strata_pool_destroy(pool);
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  INFO(out);
  CHECK(out.size() > 20);
  CHECK(out.find('\n') != std::string::npos);
  strata_free(p);
}

TEST_CASE("the peak stays sane when threads free each other's blocks", "[summary][pool][threads]") {
  // Each thread counts the bytes it hands out in batches of up to 64 KiB.
  // Two threads hold such uncounted batches while this one frees their
  // blocks and counts the frees: the pool's count dips below zero.  A block
  // counted then must not make that dip a peak of nearly 2^64 bytes.
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  constexpr std::size_t kSize = 20000;  // medium: each block is counted when handed out
  constexpr int kPerThread = 3;         // 60 KiB, under the batch
  std::vector<void*> blocks(2 * kPerThread);
  std::atomic<int> ready{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      give_thread_a_cache(pool);
      for (int i = 0; i < kPerThread; ++i) blocks[t * kPerThread + i] = strata_pool_malloc(pool, kSize);
      ready.fetch_add(1);
      while (!done.load()) std::this_thread::yield();  // keep the batch uncounted
    });
  while (ready.load() < 2) std::this_thread::yield();
  for (void* b : blocks) {
    REQUIRE(b != nullptr);
    strata_pool_free(pool, b);
  }
  strata_heap_trim(pool);  // counts this thread's frees
  void* big = strata_pool_malloc(pool, 70000);  // counted at once: over the batch
  REQUIRE(big != nullptr);
  const strata_heap_summary_t s = st::summary(pool);
  CHECK(s.peak_in_use_bytes < 64 * st::MiB);
  done.store(true);
  for (auto& t : threads) t.join();
  strata_pool_free(pool, big);
  strata_pool_destroy(pool);
}

TEST_CASE("bytes a thread counted in its batch reach the peak when it exits", "[summary][pool][threads]") {
  // Threads that each take 60 KiB (less than their counting batch) and exit:
  // their batches are counted as they go, so the peak shows every block even
  // after all of them are freed.
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  constexpr int kThreads = 8, kPerThread = 3;
  constexpr std::size_t kSize = 20000;
  std::vector<void*> blocks(kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    std::thread([&, t] {
      give_thread_a_cache(pool);
      for (int i = 0; i < kPerThread; ++i) blocks[t * kPerThread + i] = strata_pool_malloc(pool, kSize);
    }).join();
  }
  for (void* b : blocks) {
    REQUIRE(b != nullptr);
    strata_pool_free(pool, b);
  }
  strata_heap_trim(pool);
  const strata_heap_summary_t s = st::summary(pool);
  CHECK(s.in_use_bytes == 0);
  CHECK(s.peak_in_use_bytes >= kThreads * kPerThread * kSize);
  strata_pool_destroy(pool);
}
