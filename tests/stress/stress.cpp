// Multithreaded stress driven by oneTBB: blocks are allocated on one thread
// and verified and freed on another.  Each block carries a header (size,
// allocating thread) and a pattern derived from its address and size, which
// the freeing thread verifies.  Sizes are mixed across tiers, mostly small.
// Runs for STRATA_STRESS_SECONDS seconds in total (default 12).
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

constexpr int kThreads = 4;  // oversubscribed on small machines: more interleaving
constexpr std::uint32_t kMagic = 0x57A7A5EDu;

struct Header {
  std::uint64_t size;
  std::uint32_t owner;
  std::uint32_t magic;
};
static_assert(sizeof(Header) == 16);

struct Stats {
  std::atomic<std::uint64_t> allocs{0}, frees{0}, cross_frees{0}, reallocs{0}, bad{0};
  std::atomic<std::uint32_t> thread_mask{0};
  std::atomic<void*> first_bad{nullptr};
};

double total_seconds() {
  double s = std::atof(st::env_or("STRATA_STRESS_SECONDS", "12"));
  return s > 0.5 ? s : 0.5;
}

thread_local int t_index = -1;  // set by the std::thread driver (TSan builds)

std::uint32_t my_index() {
  if (t_index >= 0) return static_cast<std::uint32_t>(t_index);
  int i = tbb::this_task_arena::current_thread_index();
  return i < 0 ? 31u : static_cast<std::uint32_t>(i);
}

// The parallel driver: oneTBB normally.  The Debian libtbb is not built with
// ThreadSanitizer, whose happens-before tracking then misses TBB's task
// hand-offs and reports races inside TBB's headers; under TSan the same
// chunks run on plain std::threads, so that TSan checks strata, not TBB.
#if defined(__SANITIZE_THREAD__)
template <class F>
void parallel_chunks(std::size_t n, std::size_t grain, F&& body) {
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      t_index = t;
      for (;;) {
        std::size_t b = next.fetch_add(grain);
        if (b >= n) break;
        body(b, b + grain < n ? b + grain : n);
      }
    });
  for (auto& th : ts) th.join();
}
template <class T>
class Queue {
 public:
  void push(T v) {
    std::lock_guard<std::mutex> g(m_);
    q_.push_back(v);
  }
  bool try_pop(T& v) {
    std::lock_guard<std::mutex> g(m_);
    if (q_.empty()) return false;
    v = q_.front();
    q_.pop_front();
    return true;
  }
 private:
  std::mutex m_;
  std::deque<T> q_;
};
#else
template <class F>
void parallel_chunks(std::size_t n, std::size_t grain, F&& body) {
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, grain),
                    [&](const tbb::blocked_range<std::size_t>& r) { body(r.begin(), r.end()); });
}
template <class T>
using Queue = tbb::concurrent_queue<T>;
#endif

std::size_t random_size(std::uint64_t& x) {
  x = st::mix64(x);
  std::uint32_t r = static_cast<std::uint32_t>(x % 1000);
  std::uint64_t y = x >> 16;
  if (r < 850) return 16 + y % 241;
  if (r < 950) return 257 + y % (st::kSmallMax - 256);
  if (r < 995) return st::kSmallMax + 1 + y % 200000;
  return 256 * st::KiB + y % (2 * st::MiB);
}

// The stamped part of a block: all of it up to 128 KiB, else the first and
// last 64 KiB (large blocks would otherwise dominate the run time).
template <class F>
void for_stamped(std::size_t n, F&& f) {
  const std::size_t lim = 128 * st::KiB, half = 64 * st::KiB;
  if (n <= lim) {
    f(sizeof(Header), n);
  } else {
    f(sizeof(Header), half);
    f(n - half, n);
  }
}

void stamp(void* p, std::size_t n) {
  auto* h = static_cast<Header*>(p);
  h->size = n;
  h->owner = my_index();
  h->magic = kMagic;
  std::uint64_t seed = st::block_seed(p, n);
  for_stamped(n, [&](std::size_t lo, std::size_t hi) { st::fill_range(p, lo, hi, seed); });
}

// Verifies the block; returns its size (0 if broken).
std::size_t verify(const void* p, Stats& s) {
  const auto* h = static_cast<const Header*>(p);
  bool ok = h->magic == kMagic && h->size >= sizeof(Header) && h->size <= 4 * st::MiB;
  std::size_t n = ok ? h->size : 0;
  if (ok) {
    std::uint64_t seed = st::block_seed(p, n);
    for_stamped(n, [&](std::size_t lo, std::size_t hi) {
      if (ok && st::first_mismatch_range(p, lo, hi, seed) != SIZE_MAX) ok = false;
    });
    if (ok && strata_usable_size(p) < n) ok = false;
  }
  if (!ok) {
    s.bad.fetch_add(1);
    void* expected = nullptr;
    s.first_bad.compare_exchange_strong(expected, const_cast<void*>(p));
    return 0;
  }
  if (h->owner != my_index()) s.cross_frees.fetch_add(1, std::memory_order_relaxed);
  return n;
}

void release(void* p, Stats& s, strata_pool_t* pool) {
  if (!verify(p, s)) return;  // leak a broken block rather than crash later
  if (pool && (reinterpret_cast<std::uintptr_t>(p) & 16)) strata_pool_free(pool, p);
  else strata_free(p);
  s.frees.fetch_add(1, std::memory_order_relaxed);
}

void* acquire(std::uint64_t& x, Stats& s, strata_pool_t* pool) {
  std::size_t n = random_size(x);
  void* p = pool ? strata_pool_malloc(pool, n) : strata_malloc(n);
  if (!p) {
    s.bad.fetch_add(1);
    return nullptr;
  }
  stamp(p, n);
  s.allocs.fetch_add(1, std::memory_order_relaxed);
  s.thread_mask.fetch_or(1u << my_index(), std::memory_order_relaxed);
  return p;
}

// Phase "exchange": a shared array of slots; every step allocates a block,
// swaps it into a random slot and verifies/frees (or reallocs) what was there,
// which was usually allocated by another thread.
void exchange_phase(double seconds, Stats& s, strata_pool_t* pool) {
  const std::size_t nslots = 4096;
  std::unique_ptr<std::atomic<void*>[]> slots(new std::atomic<void*>[nslots]);
  for (std::size_t i = 0; i < nslots; ++i) slots[i].store(nullptr);
  double deadline = st::now_seconds() + seconds;
  std::atomic<std::uint64_t> round{0};
  while (st::now_seconds() < deadline) {
    std::uint64_t base = round.fetch_add(1) * 1000003;
    parallel_chunks(4096, 64, [&](std::size_t begin, std::size_t end) {
      std::uint64_t x = st::mix64(base + begin * 7 + my_index());
      for (std::size_t i = begin; i != end; ++i) {
        void* p = acquire(x, s, pool);
        if (!p) continue;
        x = st::mix64(x);
        void* old = slots[x % nslots].exchange(p, std::memory_order_acq_rel);
        if (!old) continue;
        if ((x >> 40) % 10 == 0) {
          // realloc a block that another thread allocated
          std::size_t n = verify(old, s);
          if (!n) continue;
          std::size_t n2 = random_size(x);
          void* q = pool ? strata_pool_realloc(pool, old, n2) : strata_realloc(old, n2);
          if (!q) { s.bad.fetch_add(1); continue; }
          // the header and the stamped prefix moved with the block
          const auto* h = static_cast<const Header*>(q);
          if (h->magic != kMagic || h->size != n) s.bad.fetch_add(1);
          stamp(q, n2);
          s.reallocs.fetch_add(1, std::memory_order_relaxed);
          release(q, s, pool);
        } else {
          release(old, s, pool);
        }
      }
    });
  }
  // Drain on this (main) thread: cross-thread frees again.
  for (std::size_t i = 0; i < nslots; ++i)
    if (void* p = slots[i].exchange(nullptr)) release(p, s, pool);
}

// Phase "batches": every task produces batches into a concurrent queue and
// consumes whatever batch is at the head (usually another task's).
void batch_phase(double seconds, Stats& s) {
  using Batch = std::vector<void*>;
  Queue<Batch*> q;
  double deadline = st::now_seconds() + seconds;
  parallel_chunks(kThreads * 4, 1, [&](std::size_t task, std::size_t) {
    std::uint64_t x = st::mix64(static_cast<std::uint64_t>(task) + 12345);
    while (st::now_seconds() < deadline) {
      auto* b = new Batch;
      b->reserve(256);
      for (int i = 0; i < 256; ++i)
        if (void* p = acquire(x, s, nullptr)) b->push_back(p);
      q.push(b);
      Batch* got = nullptr;
      if (q.try_pop(got)) {
        // free in reverse order half of the time
        if (x & 1) std::reverse(got->begin(), got->end());
        for (void* p : *got) release(p, s, nullptr);
        delete got;
      }
    }
  });
  Batch* got = nullptr;
  while (q.try_pop(got)) {
    for (void* p : *got) release(p, s, nullptr);
    delete got;
  }
}

void report(const char* phase, const Stats& s, double secs) {
  WARN(phase << ": " << s.allocs.load() << " allocs, " << s.frees.load() << " frees ("
             << s.cross_frees.load() << " on another thread), " << s.reallocs.load() << " reallocs in " << secs
             << " s, thread mask 0x" << std::hex << s.thread_mask.load());
}

int popcount(std::uint32_t v) { return __builtin_popcount(v); }

}  // namespace

TEST_CASE("stress: cross-thread alloc/free with content checks", "[stress]") {
  const double total = total_seconds();
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, kThreads);
  tbb::task_arena arena(kThreads);
  strata_heap_summary_t before = st::summary();

  SECTION("process heap") {
    Stats s;
    double t0 = st::now_seconds();
    arena.execute([&] { exchange_phase(total * 0.45, s, nullptr); });
    arena.execute([&] { batch_phase(total * 0.25, s); });
    report("process heap", s, st::now_seconds() - t0);
    INFO("first broken block " << s.first_bad.load());
    CHECK(s.bad.load() == 0);
    CHECK(s.allocs.load() == s.frees.load());
    CHECK(s.cross_frees.load() > 0);
    CHECK(popcount(s.thread_mask.load()) >= 2);
    strata_heap_summary_t after = st::summary();
    CHECK(after.small_blocks == before.small_blocks);
    CHECK(after.medium_blocks == before.medium_blocks);
    CHECK(after.large_blocks == before.large_blocks);
  }
  SECTION("pool, freed with strata_free and strata_pool_free") {
    Stats s;
    strata_pool_t* pool = strata_pool_create();
    REQUIRE(pool != nullptr);
    double t0 = st::now_seconds();
    arena.execute([&] { exchange_phase(total * 0.2, s, pool); });
    report("pool", s, st::now_seconds() - t0);
    CHECK(s.bad.load() == 0);
    CHECK(s.allocs.load() == s.frees.load());
    CHECK(s.cross_frees.load() > 0);
    strata_heap_summary_t ps = st::summary(pool);
    CHECK(ps.small_blocks == 0);
    CHECK(ps.medium_blocks == 0);
    CHECK(ps.large_blocks == 0);
    strata_pool_destroy(pool);
    // the process heap was not touched by the pool's blocks
    strata_heap_summary_t after = st::summary();
    CHECK(after.small_blocks == before.small_blocks);
  }
  SECTION("pool destroyed while its blocks sit in the worker threads' caches") {
    Stats s;
    for (int round = 0; round < 5; ++round) {
      strata_pool_t* pool = strata_pool_create();
      REQUIRE(pool != nullptr);
      std::vector<void*> keep(4096, nullptr);
      arena.execute([&] {
        parallel_chunks(keep.size(), 16, [&](std::size_t begin, std::size_t end) {
          std::uint64_t x = st::mix64(begin + 99);
          for (std::size_t i = begin; i != end; ++i) {
            void* a = acquire(x, s, pool);
            void* b = acquire(x, s, pool);
            if (b) release(b, s, pool);  // into this worker's cache
            keep[i] = a;
          }
        });
      });
      // verify a few kept blocks on this thread, then drop everything at once
      for (std::size_t i = 0; i < keep.size(); i += 7)
        if (keep[i]) verify(keep[i], s);
      strata_pool_destroy(pool);
      // the workers keep working on the process heap afterwards
      arena.execute([&] { exchange_phase(0.1, s, nullptr); });
    }
    CHECK(s.bad.load() == 0);
  }
}
