// fork() in a multithreaded parent: while 4 threads hammer strata, the main
// thread forks repeatedly; each child must be able to allocate and free in
// every tier (also from a new thread) and exit cleanly.  Children that
// deadlock are killed by alarm()/a parent timeout and fail the test.
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <pthread.h>

#include "test_util.hpp"

namespace {

// ThreadSanitizer cannot follow threads started in the child of a
// multithreaded fork ("dup thread with used id"); under TSan the children
// stay single-threaded.
#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadsInChildren = false;
#else
constexpr bool kThreadsInChildren = true;
#endif

// Exit codes of the child.
enum : int { kOk = 0, kNull = 10, kContent = 11, kThread = 12, kPool = 13, kUsable = 14 };

int child_work(strata_pool_t* inherited_pool, void* inherited_block, std::size_t inherited_size) {
  static const std::size_t sizes[] = {1, 16, 100, 1000, 2624, 2625, 10000, 100000, 250000, 300000, 1 << 20, 5 << 20};
  void* v[sizeof sizes / sizeof sizes[0]];
  for (std::size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    v[i] = strata_malloc(sizes[i]);
    if (!v[i]) return kNull;
    if (strata_usable_size(v[i]) < sizes[i]) return kUsable;
    st::fill(v[i], sizes[i], i);
  }
  for (std::size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    if (!st::check(v[i], sizes[i], i)) return kContent;
    void* q = strata_realloc(v[i], sizes[i] * 2 + 1);
    if (!q) return kNull;
    if (!st::check(q, sizes[i], i)) return kContent;
    strata_free(q);
  }
  // Blocks allocated by the parent before the fork are usable and freeable.
  if (inherited_block) {
    if (!st::check(inherited_block, inherited_size, 77)) return kContent;
    strata_free(inherited_block);
  }
  // A new thread in the child allocates (its thread cache must be set up
  // from whatever state the fork left).
  std::atomic<int> trc{kThread};
  pthread_t th;
  auto body = +[](void* arg) -> void* {
    auto* rc = static_cast<std::atomic<int>*>(arg);
    std::vector<void*> w;
    for (int i = 0; i < 2000; ++i) {
      void* p = strata_malloc(static_cast<std::size_t>(i % 300) * 9 + 1);
      if (!p) return nullptr;
      w.push_back(p);
    }
    void* m = strata_malloc(50000);
    void* l = strata_malloc(2 << 20);
    if (!m || !l) return nullptr;
    strata_free(m);
    strata_free(l);
    for (void* p : w) strata_free(p);
    rc->store(kOk);
    return nullptr;
  };
  if (kThreadsInChildren) {
    if (pthread_create(&th, nullptr, body, &trc) != 0) return kThread;
    pthread_join(th, nullptr);
  } else {
    body(&trc);
  }
  if (trc.load() != kOk) return kThread;
  // The pool inherited from the parent works and can be destroyed.
  if (inherited_pool) {
    void* a = strata_pool_malloc(inherited_pool, 100);
    void* b = strata_pool_malloc(inherited_pool, 100000);
    void* c = strata_pool_malloc(inherited_pool, 1 << 20);
    if (!a || !b || !c) return kPool;
    if (strata_pool_of(a) != inherited_pool) return kPool;
    strata_pool_free(inherited_pool, a);
    strata_pool_free(inherited_pool, b);
    strata_pool_destroy(inherited_pool);
  }
  // A fresh pool in the child.
  strata_pool_t* pool = strata_pool_create();
  if (!pool) return kPool;
  for (int i = 0; i < 100; ++i)
    if (!strata_pool_malloc(pool, static_cast<std::size_t>(i) * 1000 + 1)) return kPool;
  strata_pool_destroy(pool);
  return kOk;
}

struct Hammer {
  std::atomic<bool> stop{false};
  std::atomic<long> ops{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  strata_pool_t* pool;

  explicit Hammer(strata_pool_t* pool_arg, int nthreads) : pool(pool_arg) {
    for (int t = 0; t < nthreads; ++t)
      threads.emplace_back([this, t] {
        std::uint64_t x = static_cast<std::uint64_t>(t) * 7919 + 1;
        void* keep[64] = {};
        while (!stop.load(std::memory_order_relaxed)) {
          x = st::mix64(x);
          std::size_t slot = x % 64;
          if (keep[slot]) {
            std::size_t n = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t*>(keep[slot])[0]);
            if (!st::check(static_cast<char*>(keep[slot]) + 8, n - 8, n)) failures.fetch_add(1);
            strata_free(keep[slot]);
          }
          std::size_t r = (x >> 8) % 1000;
          std::size_t n = r < 900 ? 8 + (x >> 20) % 500 : r < 990 ? 3000 + (x >> 20) % 100000 : 300000 + (x >> 20) % 2000000;
          void* p = (pool && (x & 0x100000000ULL)) ? strata_pool_malloc(pool, n) : strata_malloc(n);
          if (!p) { failures.fetch_add(1); keep[slot] = nullptr; continue; }
          reinterpret_cast<std::uintptr_t*>(p)[0] = n;
          st::fill(static_cast<char*>(p) + 8, n - 8, n);
          keep[slot] = p;
          ops.fetch_add(1, std::memory_order_relaxed);
        }
        for (void* p : keep) strata_free(p);
      });
  }
  ~Hammer() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

st::ChildResult fork_child(strata_pool_t* pool, void* block, std::size_t size) {
  // run_in_child forks from this (multithreaded) process, with a timeout.
  return st::run_in_child([&] { ::_exit(child_work(pool, block, size)); }, 30.0);
}

}  // namespace

TEST_CASE("fork while 4 threads hammer the heap", "[fork]") {
  Hammer h(nullptr, 4);
  // let the threads get going
  while (h.ops.load() < 1000) std::this_thread::yield();
  int ok = 0;
  for (int i = 0; i < 50; ++i) {
    std::size_t n = 1000 + static_cast<std::size_t>(i) * 7000;
    void* block = strata_malloc(n);
    REQUIRE(block != nullptr);
    st::fill(block, n, 77);
    st::ChildResult r = fork_child(nullptr, block, n);
    INFO("fork #" << i << ": " << r.describe());
    CHECK(r.exited(kOk));
    if (r.exited(kOk)) ++ok;
    REQUIRE(st::check(block, n, 77));  // the parent's copy is unaffected
    strata_free(block);
  }
  CHECK(ok == 50);
  CHECK(h.failures.load() == 0);
}

TEST_CASE("fork while threads use a pool; the child uses and destroys its copy", "[fork][pool]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  {
    Hammer h(pool, 4);
    while (h.ops.load() < 1000) std::this_thread::yield();
    for (int i = 0; i < 20; ++i) {
      void* block = strata_pool_malloc(pool, 5000);
      REQUIRE(block != nullptr);
      st::fill(block, 5000, 77);
      st::ChildResult r = fork_child(pool, block, 5000);
      INFO("fork #" << i << ": " << r.describe());
      CHECK(r.exited(kOk));
      REQUIRE(st::check(block, 5000, 77));
      strata_pool_free(pool, block);
    }
    CHECK(h.failures.load() == 0);
  }
  strata_pool_destroy(pool);
}

TEST_CASE("nested fork: a child of a child can allocate", "[fork]") {
  Hammer h(nullptr, 2);
  while (h.ops.load() < 1000) std::this_thread::yield();
  st::ChildResult r = st::run_in_child(
      [] {
        // In the child: start threads again, fork again.
        Hammer inner(nullptr, kThreadsInChildren ? 2 : 0);
        while (kThreadsInChildren && inner.ops.load() < 100) std::this_thread::yield();
        st::ChildResult rr = st::run_in_child([] { ::_exit(child_work(nullptr, nullptr, 0)); }, 20.0);
        int code = rr.exited(kOk) ? 0 : 20;
        inner.stop = true;
        for (auto& t : inner.threads) t.join();
        inner.threads.clear();
        if (inner.failures.load() != 0) code = 21;
        ::_exit(code);
      },
      40.0);
  INFO(r.describe());
  CHECK(r.exited(0));
}
