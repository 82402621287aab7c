// White-box tests of the heap-wide primitives the reports, the leak report,
// sharing and release build on (mm/src/heap.hpp): the block walk, the
// validators and their invariant ids, heap_has_live_blocks and heap_release.
#include <strata/state.h>
#include <strata/strata.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "heap.hpp"
#include "test_util.hpp"

using namespace strata::detail;

namespace {

struct Seen {
  std::map<void*, BlockInfo> live, free;
};
bool collect(const BlockInfo& b, void* ctx) noexcept {
  auto* s = static_cast<Seen*>(ctx);
  (b.live ? s->live : s->free)[b.p] = b;
  return true;
}
Seen walk(Heap* h, bool with_free) {
  Seen s;
  REQUIRE(heap_walk(h, with_free, collect, &s));
  return s;
}
Heap* as_heap(strata_pool_t* p) { return reinterpret_cast<Heap*>(p); }
// Makes p escape: the compiler may otherwise drop a store into a block from
// strata_*malloc (declared `malloc`) that nothing it can see reads again.
inline void* escape(void* p) {
  asm volatile("" : : "r"(p) : "memory");
  return p;
}

// One block of every tier, in several sizes.
const std::size_t kSizes[] = {8, 16, 100, 1000, 2624, 2625, 10000, 100000, 260000, 300000, 4 << 20};

}  // namespace

TEST_CASE("the walk reports exactly the live blocks, with their tier and usable size", "[walk]") {
  strata_pool_t* pool = strata_pool_create();
  Heap* h = as_heap(pool);
  std::vector<void*> kept;
  std::vector<void*> freed;
  for (int round = 0; round < 20; ++round)
    for (std::size_t n : kSizes) {
      void* a = strata_pool_malloc(pool, n);
      void* b = strata_pool_malloc(pool, n);
      kept.push_back(a);
      freed.push_back(b);
    }
  for (void* p : freed) strata_pool_free(pool, p);  // some stay in this thread's caches: free to the walk
  Seen s = walk(h, false);
  CHECK(s.live.size() == kept.size());
  for (void* p : kept) {
    INFO(p);
    auto it = s.live.find(p);
    REQUIRE(it != s.live.end());
    CHECK(it->second.size == strata_usable_size(p));
    CHECK(it->second.heap == h);
    const std::size_t n = strata_usable_size(p);
    CHECK(it->second.tier == (n <= kMaxSmallSize ? Tier::kSmall : n <= kMaxMediumSize + 4096 ? Tier::kMedium : Tier::kLarge));
  }
  // With free blocks: the freed ones are there and none of them is live.
  Seen all = walk(h, true);
  CHECK(all.live.size() == kept.size());
  // Freed small and medium blocks are reported where they were (a freed
  // large block's mapping is kept, merged with its kept neighbours).
  std::size_t found = 0, expected = 0;
  for (void* p : freed) {
    found += all.free.count(p);
  }
  for (std::size_t i = 0; i < freed.size(); ++i)
    if (kSizes[i % (sizeof kSizes / sizeof kSizes[0])] <= kMaxMediumSize) ++expected;
  CHECK(found >= expected);
  for (auto& [p, b] : all.free) CHECK(all.live.count(p) == 0);
  // A visitor that stops ends the walk.
  int calls = 0;
  CHECK_FALSE(heap_walk(h, false, [](const BlockInfo&, void* c) noexcept { return ++*static_cast<int*>(c) < 3; }, &calls));
  CHECK(calls == 3);
  for (void* p : kept) strata_pool_free(pool, p);
  CHECK(walk(h, false).live.empty());
  strata_pool_destroy(pool);
}

TEST_CASE("the process heap is walked the same way", "[walk]") {
  std::vector<void*> mine;
  for (std::size_t n : kSizes) mine.push_back(strata_malloc(n));
  Seen s = walk(&g_default_heap, false);
  for (void* p : mine) CHECK(s.live.count(p) == 1);
  for (void* p : mine) strata_free(p);
  Seen after = walk(&g_default_heap, false);
  for (void* p : mine) CHECK(after.live.count(p) == 0);
}

TEST_CASE("heap_has_live_blocks: blocks in thread caches do not count", "[walk]") {
  strata_pool_t* pool = strata_pool_create();
  Heap* h = as_heap(pool);
  CHECK_FALSE(heap_has_live_blocks(h));
  for (std::size_t n : kSizes) {
    INFO(n);
    void* p = strata_pool_malloc(pool, n);
    CHECK(heap_has_live_blocks(h));
    strata_pool_free(pool, p);
    CHECK_FALSE(heap_has_live_blocks(h));
  }
  strata_pool_destroy(pool);
}

TEST_CASE("the validators pass on a heap worked by several threads", "[validate]") {
  strata_pool_t* pool = strata_pool_create();
  Heap* h = as_heap(pool);
  std::vector<std::thread> ts;
  std::mutex mu;
  std::vector<void*> handoff;  // blocks allocated by one thread, freed by another
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      std::vector<void*> mine;
      std::uint64_t x = static_cast<std::uint64_t>(t) + 1;
      for (int i = 0; i < 20000; ++i) {
        x = st::mix64(x);
        std::size_t n = kSizes[x % (sizeof kSizes / sizeof kSizes[0] - 1)];
        mine.push_back(strata_pool_malloc(pool, n));
        if (mine.size() > 64) {
          std::lock_guard<std::mutex> g(mu);
          handoff.push_back(mine[x % mine.size()]);
          mine.erase(mine.begin() + static_cast<long>(x % mine.size()));
          if (handoff.size() > 32) {
            strata_pool_free(pool, handoff.front());
            handoff.erase(handoff.begin());
          }
        }
      }
      for (void* p : mine) strata_pool_free(pool, p);
    });
  for (auto& t : ts) t.join();
  heap_validate(h);
  for (void* p : handoff) strata_pool_free(pool, p);
  heap_validate(h);
  heap_validate(&g_default_heap);
  strata_pool_destroy(pool);
}

TEST_CASE("the validators name the broken invariant", "[validate]") {
  struct Case {
    const char* id;
    void (*corrupt)(strata_pool_t*);
  };
  const Case cases[] = {
      {"[S1]", [](strata_pool_t* pool) {
         void* p = strata_pool_malloc(pool, 64);
         span_of(p)->used.set(span_of(p)->used.get() + 1);
         escape(p);
       }},
      {"[S5]", [](strata_pool_t* pool) {
         escape(strata_pool_malloc(pool, 64));
         as_heap(pool)->classes[size_to_class(64)].span_count++;
       }},
      {"[M5]", [](strata_pool_t* pool) {
         escape(strata_pool_malloc(pool, 10000));
         for (MediumTier& m : as_heap(pool)->medium) if (m.pools) m.blocks++;
       }},
      {"[M1]", [](strata_pool_t* pool) {
         void* p = strata_pool_malloc(pool, 10000);
         escape(strata_pool_malloc(pool, 10000));
         reinterpret_cast<MediumTag*>(static_cast<char*>(p) - kMediumHeaderSize)->size_flags = kInUse;  // size 0
         escape(p);
       }},
      {"[L3]", [](strata_pool_t* pool) {
         escape(strata_pool_malloc(pool, 4 << 20));
         as_heap(pool)->large.bytes += kChunkSize;
       }},
      {"[L1]", [](strata_pool_t* pool) {
         void* p = strata_pool_malloc(pool, 4 << 20);
         reinterpret_cast<LargeBlock*>(static_cast<char*>(p) - kLargeHeaderSize)->heap = nullptr;
         escape(p);
       }},
  };
  for (const Case& c : cases) {
    INFO(c.id);
    st::ChildResult r = st::run_in_child([&] {
      strata_pool_t* pool = strata_pool_create();
      c.corrupt(pool);
      heap_validate(as_heap(pool));
    });
    CHECK_FALSE(r.exited(0));
    CHECK(r.err.find(c.id) != std::string::npos);
  }
}

TEST_CASE("heap_release returns every mapping and leaves the heap as new", "[release]") {
  strata_pool_t* pool = strata_pool_create();
  Heap* h = as_heap(pool);
  const std::size_t fresh_os = st::summary(pool).os_reserved_bytes;
  // Live blocks of every tier, and caches of threads that stay alive.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> ready{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 200; ++i)
        for (std::size_t n : kSizes) {
          void* p = strata_pool_malloc(pool, n);
          if (i % 2) strata_pool_free(pool, p);
        }
      ready++;
      std::unique_lock<std::mutex> g(mu);
      cv.wait(g, [&] { return released; });
      // After the release the thread's old cache is forgotten: it allocates anew.
      for (std::size_t n : kSizes) strata_pool_free(pool, strata_pool_malloc(pool, n));
    });
  while (ready < 3) std::this_thread::yield();
  for (std::size_t n : kSizes) escape(strata_pool_malloc(pool, n));
  REQUIRE(st::summary(pool).os_reserved_bytes > fresh_os + (8 << 20));
  heap_release(h);
  strata_heap_summary_t s = st::summary(pool);
  CHECK(s.os_reserved_bytes == fresh_os);
  CHECK(s.in_use_bytes == 0);
  CHECK(s.thread_caches == 0);
  CHECK(s.cached_bytes == 0);
  CHECK_FALSE(heap_has_live_blocks(h));
  heap_validate(h);
  {
    std::lock_guard<std::mutex> g(mu);
    released = true;
  }
  cv.notify_all();
  for (auto& t : ts) t.join();
  // Usable again, in every tier.
  std::vector<void*> again;
  for (std::size_t n : kSizes) again.push_back(strata_pool_malloc(pool, n));
  heap_validate(h);
  for (void* p : again) strata_pool_free(pool, p);
  strata_pool_destroy(pool);
}

TEST_CASE("heap_release of the process heap points every live thread back at the empty cache", "[release]") {
  st::ChildResult r = st::run_in_child([] {
    std::mutex mu;
    std::condition_variable cv;
    bool released = false;
    std::atomic<bool> ready{false};
    std::thread t([&] {
      for (std::size_t n : kSizes) strata_free(strata_malloc(n));  // a cache with blocks in its bins
      ready = true;
      std::unique_lock<std::mutex> g(mu);
      cv.wait(g, [&] { return released; });
      for (std::size_t n : kSizes) strata_free(strata_malloc(n));
    });
    while (!ready) std::this_thread::yield();
    for (std::size_t n : kSizes) escape(strata_malloc(n));
    heap_release(&g_default_heap);
    strata_heap_summary_t s = st::summary(nullptr);
    if (s.os_reserved_bytes != 0 || s.in_use_bytes != 0 || s.thread_caches != 0) _exit(3);
    {
      std::lock_guard<std::mutex> g(mu);
      released = true;
    }
    cv.notify_all();
    t.join();
    for (std::size_t n : kSizes) strata_free(strata_malloc(n));
    heap_validate(&g_default_heap);
  });
  INFO(r.describe());
  CHECK(r.exited(0));
}

TEST_CASE("introspection bounds its wait for a busy lock and says the answer is incomplete", "[state]") {
  strata_pool_t* pool = strata_pool_create();
  Heap* h = as_heap(pool);
  void* small = strata_pool_malloc(pool, 64);
  void* large = strata_pool_malloc(pool, 4 << 20);
  strata_heap_state_t s{};
  s.size = sizeof s;
  h->large.lock.lock();  // a thread busy in the large tier, for longer than the caller waits
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(strata_heap_state(pool, &s, 20) == 0);
  CHECK(s.complete == 0);
  CHECK(s.skipped_locks == 1);
  CHECK(s.large.blocks_in_use == 0);  // that tier was skipped
  CHECK(s.small.blocks_in_use == 1);  // the rest was read
  CHECK(strata_heap_walk(pool, 0, [](const strata_block_info_t*, void*) -> int { return 1; }, nullptr, 20) == -1);
  CHECK(strata_heap_regions(pool, 0, [](const strata_region_t*, void*) -> int { return 1; }, nullptr, 20) == -1);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  h->large.lock.unlock();
  REQUIRE(strata_heap_state(pool, &s, 20) == 0);
  CHECK(s.complete == 1);
  CHECK(s.large.blocks_in_use == 1);
  CHECK(strata_heap_walk(pool, 0, [](const strata_block_info_t*, void*) -> int { return 1; }, nullptr, 20) == 1);
  strata_pool_free(pool, small);
  strata_pool_free(pool, large);
  strata_pool_destroy(pool);
}

// fork's child flushes the caches of the threads that did not survive the
// fork; one of them may have been stopped between two stores of a push or a
// pop (seen in override_threads_fork: a bin whose count was one more than
// its list, SIGSEGV in the child's small_flush_cache).  The child recounts
// each bin from its list and checks every link before it follows it.
TEST_CASE("fork's child survives a thread stopped inside a cache push or pop", "[fork]") {
  std::mutex mu;
  std::condition_variable cv;
  int stage = 0;  // 1: the thread's bins are torn; 2: the parent is done with the fork
  std::thread t([&] {
    void* small[12];
    void* medium[6];
    for (void*& p : small) p = escape(strata_malloc(64));
    for (void*& p : medium) p = escape(strata_malloc(10000));
    for (void* p : small) strata_free(p);
    for (void* p : medium) strata_free(p);
    CacheBin& sb = t_cache->bins[size_to_class(64)];
    CacheBin* mb = nullptr;
    for (CacheBin& b : t_cache->medium_bins)
      if (b.head != kBinEnd) mb = &b;
    REQUIRE(sb.head != kBinEnd);
    REQUIRE(mb != nullptr);
    // A pop stopped after `head = next`, before `room++`: the count is one
    // more than the list holds.  A push whose block's link is not one: the
    // list ends in a pointer to nowhere.
    CacheBin saved_s = sb, saved_m = *mb;
    sb.room -= 1;
    auto* last = reinterpret_cast<Block*>(mb->head);
    while (link_of(last) != kBinEnd) last = next_of(last);
    set_link(last, 0x1000);
    {
      std::unique_lock<std::mutex> g(mu);
      stage = 1;
      cv.notify_all();
      cv.wait(g, [&] { return stage == 2; });
    }
    set_link(last, kBinEnd);
    sb = saved_s;
    *mb = saved_m;
  });
  {
    std::unique_lock<std::mutex> g(mu);
    cv.wait(g, [&] { return stage == 1; });
  }
  pid_t pid = fork();
  if (pid == 0) {
    // The thread's blocks are back in the heap; the heap is whole and works.
    heap_validate(&g_default_heap);
    void* p = strata_malloc(64);
    void* q = strata_malloc(10000);
    strata_free(q);
    strata_free(p);
    heap_validate(&g_default_heap);
    _exit(0);
  }
  REQUIRE(pid > 0);
  int st = 0;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  {
    std::lock_guard<std::mutex> g(mu);
    stage = 2;
  }
  cv.notify_all();
  t.join();
  CHECK(WIFEXITED(st));
  CHECK((WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)) == 0);
}

// A refill that walks a span's free list (a list longer than it takes at
// once) follows a link only inside the span and 16-byte aligned: a link
// forged with the key (as a program that learned it could) to a buffer
// outside the span is CORRUPTION, never handed out, never followed.
namespace {
int g_corruptions = 0;
void count_corruption(const strata_error_t* e, void*) {
  if (e->kind == STRATA_ERROR_CORRUPTION) ++g_corruptions;
}
}  // namespace
TEST_CASE("a refill's walk of a span's free list never follows a link out of the span", "[hardening]") {
  if constexpr (STRATA_TEST_DEBUG_LEVEL >= 3) {
    SUCCEED("debug level 3 validates the span at every change: it stops the process at the forged list itself");
    return;
  }
  strata_pool_t* pool = strata_pool_create();
  void* kept = nullptr;
  std::thread([&] {  // fills a span and gives it back (its thread's exit flushes the cache)
    std::vector<void*> v;
    for (int i = 0; i < 300; ++i) v.push_back(strata_pool_malloc(pool, 64));
    kept = v[0];
    for (int i = 1; i < 300; ++i) strata_pool_free(pool, v[static_cast<std::size_t>(i)]);
  }).join();
  Span* s = span_of(kept);
  REQUIRE(s->owner.load() == nullptr);
  // The first refills (16 and 32 blocks: slow start) walk the list, which is
  // longer than twice their bound; a later one takes what is left whole,
  // unwalked (a link there is checked only for plausibility when popped).
  REQUIRE(s->carved.load() - s->used.get() >= 299);
  Block* b = s->free_list;
  for (int i = 0; i < 30; ++i) b = next_of(b);
  alignas(64) static unsigned char buf[4096];
  set_next(b, reinterpret_cast<Block*>(buf));  // the forged link
  g_corruptions = 0;
  strata_error_handler_t prev = strata_set_error_handler(count_corruption, nullptr);
  std::vector<void*> got;
  for (int i = 0; i < 400; ++i) got.push_back(strata_pool_malloc(pool, 64));
  strata_set_error_handler(prev, nullptr);
  CHECK(g_corruptions == 1);
  for (void* p : got) {
    CHECK(p != nullptr);
    CHECK((p < static_cast<void*>(buf) || p >= static_cast<void*>(buf + sizeof buf)));
  }
  strata_pool_destroy(pool);
}
