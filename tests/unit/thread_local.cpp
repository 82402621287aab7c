// strata_thread_local_* and strata::thread_local_block<T>: a zero-filled
// block per thread, made on first use, stable for the thread's life, freed
// at thread exit, at destroy and at release, with its callbacks.
#include <strata/strata.hpp>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {
std::atomic<int> g_inits{0}, g_finis{0};
void count_init(void* b, void* ctx) noexcept {
  g_inits++;
  static_cast<int*>(b)[0] = *static_cast<int*>(ctx);
}
void count_fini(void*, void*) noexcept { g_finis++; }

std::size_t live_bytes() { return st::summary(nullptr).in_use_bytes; }
}  // namespace

TEST_CASE("a thread's block: zero-filled, stable, its own", "[thread_local]") {
  for (std::size_t size : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, std::size_t{100000}, std::size_t{3} << 20}) {
    INFO(size);
    strata_thread_local_t* h = strata_thread_local_create(size);
    REQUIRE(h);
    auto* mine = static_cast<unsigned char*>(strata_thread_local_get(h));
    REQUIRE(mine);
    CHECK(st::all_bytes(mine, size, 0));
    CHECK(strata_usable_size(mine) >= size);
    std::memset(mine, 0x5a, size);
    CHECK(strata_thread_local_get(h) == mine);
    std::set<void*> others;
    std::vector<std::thread> ts;
    std::mutex mu;
    std::atomic<int> holding{0};
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&] {
        auto* b = static_cast<unsigned char*>(strata_thread_local_get(h));
        bool zero = b && st::all_bytes(b, size, 0);
        bool stable = strata_thread_local_get(h) == b;
        holding++;
        while (holding < 4) std::this_thread::yield();  // all four blocks exist at once
        std::lock_guard<std::mutex> g(mu);
        CHECK(zero);
        CHECK(stable);
        others.insert(b);
      });
    for (auto& t : ts) t.join();
    CHECK(others.size() == 4);
    CHECK(others.count(mine) == 0);
    CHECK(st::all_bytes(mine, size, 0x5a));
    strata_thread_local_destroy(h);
  }
}

TEST_CASE("a thread's block is freed when the thread exits, with its fini", "[thread_local]") {
  int seed = 42;
  strata_thread_local_t* h = strata_thread_local_create_ex(64 * 1024, count_init, count_fini, &seed);
  REQUIRE(h);
  strata_thread_flush();
  const std::size_t before = live_bytes();
  g_inits = g_finis = 0;
  for (int round = 0; round < 50; ++round) {
    std::thread t([&] {
      auto* b = static_cast<int*>(strata_thread_local_get(h));
      CHECK(b[0] == 42);  // init ran after the zero fill
      CHECK(strata_thread_local_get(h) == b);
    });
    t.join();
  }
  CHECK(g_inits == 50);
  CHECK(g_finis == 50);
  strata_thread_flush();
  CHECK(live_bytes() <= before + 64 * 1024);  // not 50 blocks of 64 KiB
  strata_thread_local_destroy(h);
}

TEST_CASE("destroy frees every thread's block and the handle is reused fresh", "[thread_local]") {
  int seed = 7;
  g_inits = g_finis = 0;
  strata_thread_local_t* h = strata_thread_local_create_ex(1000, count_init, count_fini, &seed);
  REQUIRE(h);
  std::atomic<int> got{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; ++t)
    ts.emplace_back([&] {
      strata_thread_local_get(h);
      got++;
      while (!go) std::this_thread::yield();  // alive while the handle is destroyed
    });
  while (got < 6) std::this_thread::yield();
  strata_thread_local_get(h);
  strata_thread_local_destroy(h);
  CHECK(g_finis == 7);  // six waiting threads and this one
  go = true;
  for (auto& t : ts) t.join();
  CHECK(g_finis == 7);  // their exits found nothing left
  // A new handle (it may take the old slot) gives zero-filled blocks again.
  strata_thread_local_t* h2 = strata_thread_local_create(1000);
  REQUIRE(h2);
  CHECK(st::all_bytes(strata_thread_local_get(h2), 1000, 0));
  strata_thread_local_destroy(h2);
  strata_thread_local_destroy(nullptr);
}

TEST_CASE("4,096 handles at once; one more once one is destroyed", "[thread_local]") {
  std::vector<strata_thread_local_t*> hs;
  for (;;) {
    strata_thread_local_t* h = strata_thread_local_create(16);
    if (!h) break;
    hs.push_back(h);
    REQUIRE(hs.size() <= 4096);
  }
  CHECK(hs.size() >= 4090);  // other test cases' handles are destroyed; the limit is 4,096
  for (std::size_t i = 0; i < hs.size(); i += 97) CHECK(strata_thread_local_get(hs[i]) != nullptr);
  strata_thread_local_destroy(hs.back());
  hs.pop_back();
  strata_thread_local_t* again = strata_thread_local_create(16);
  CHECK(again);
  hs.push_back(again);
  for (auto* h : hs) strata_thread_local_destroy(h);
}

TEST_CASE("strata::thread_local_block constructs and destroys a T per thread", "[thread_local]") {
  struct Counted {
    std::string name = "made";
    std::vector<int> v = std::vector<int>(100, 3);
    ~Counted() { g_finis++; }
  };
  g_finis = 0;
  {
    strata::thread_local_block<Counted> tl;
    CHECK(tl->name == "made");
    tl->name += " here";
    std::thread t([&] {
      CHECK(tl->name == "made");
      CHECK(tl->v.size() == 100);
    });
    t.join();
    CHECK(g_finis == 1);  // the thread's T, at its exit
    CHECK(tl.get().name == "made here");
  }
  CHECK(g_finis == 2);  // this thread's T, when the block was destroyed
}

TEST_CASE("strata_release_all runs every thread's fini and leaves a working heap", "[thread_local][release]") {
  st::ChildResult r = st::run_in_child([] {
    int seed = 1;
    g_finis = 0;
    strata_thread_local_t* h = strata_thread_local_create_ex(256, count_init, count_fini, &seed);
    std::atomic<bool> ready{false}, go{false};
    std::thread t([&] {
      strata_thread_local_get(h);
      ready = true;
      while (!go) std::this_thread::yield();
    });
    while (!ready) std::this_thread::yield();
    strata_thread_local_get(h);
    void* p = strata_malloc(100);
    (void)p;
    std::size_t live = strata_release_all();
    if (g_finis != 2) _exit(10);
    if (live < 3) _exit(11);  // the two thread-local blocks and p
    if (st::summary(nullptr).os_reserved_bytes != 0) _exit(12);
    go = true;
    t.join();  // its exit finds nothing to free
    strata_thread_local_t* h2 = strata_thread_local_create(256);  // a fresh heap works
    if (!h2 || !strata_thread_local_get(h2)) _exit(13);
    strata_free(strata_malloc(5000));
  });
  INFO(r.describe());
  CHECK(r.exited(0));
}

// Not under TSan: a thread started in the child of a process that had
// another thread alive at the fork may get that thread's pthread id, which
// TSan refuses ("dup thread with used id").
#ifndef __SANITIZE_THREAD__
TEST_CASE("after fork, the blocks of threads that did not survive are freed, not inherited", "[thread_local][fork]") {
  strata_thread_local_t* h = strata_thread_local_create(512);
  REQUIRE(h);
  std::atomic<bool> ready{false}, go{false};
  std::thread t([&] {
    std::memset(strata_thread_local_get(h), 0x77, 512);  // another thread's block, alive at the fork
    ready = true;
    while (!go) std::this_thread::yield();
  });
  while (!ready) std::this_thread::yield();
  st::ChildResult r = st::run_in_child([&] {
    // A new thread in the child may get the dead thread's cache: its block
    // must be a fresh, zero-filled one.
    bool zero = false;
    std::thread c([&] { zero = st::all_bytes(strata_thread_local_get(h), 512, 0); });
    c.join();
    if (!zero) _exit(20);
  });
  go = true;
  t.join();
  INFO(r.describe());
  CHECK(r.exited(0));
  strata_thread_local_destroy(h);
}
#endif
