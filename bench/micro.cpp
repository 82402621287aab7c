// strata micro benchmarks: strata vs glibc malloc vs tbbmalloc.
//
// Every pattern is registered once per allocator, in the order strata, glibc,
// tbbmalloc, so the three runs of a pattern follow each other (they see the
// same machine state) and bench/compare.py can pair them by name:
//
//   pair/<alloc>/<size>          malloc + free of one block; the first byte is
//                                written (a real program touches its memory)
//   batch/<alloc>/fifo           1000 blocks of mixed small sizes (8..512 bytes)
//                                allocated, then freed in allocation order
//   batch/<alloc>/random         the same, freed in a fixed shuffled order
//   realloc/<alloc>/byte_64K     a buffer grown 1 byte per realloc, 1 B -> 64 KiB
//   realloc/<alloc>/word_1M      a buffer grown 8 bytes per realloc, 8 B -> 1 MiB
//   xthread/<alloc>/<size>       one thread allocates, a second frees: blocks go
//                                through a lock-free SPSC ring (real time)
//
// Allocators are called through their own APIs: strata_malloc/strata_free/
// strata_realloc (libstrata.a, which does not replace malloc), malloc/free/
// realloc of glibc, and scalable_malloc/scalable_free/scalable_realloc.
//
// Each benchmark sets the counter "ops" to the operations one iteration does
// (pair: 1 malloc+free; batch: 1000 blocks, each one malloc+free; realloc: one
// realloc call; xthread: 1 block = a malloc in one thread + a free in the
// other), so time per op = iteration time / ops.
//
// After the benchmarks the program prints strata's process-heap summary
// (strata_print_summary(NULL, 1)) after a marker line, unless --no_strata_summary.
#include <benchmark/benchmark.h>
#include <oneapi/tbb/scalable_allocator.h>
#include <sched.h>
#include <strata/strata.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---- the allocators --------------------------------------------------------

struct StrataAlloc {
  static constexpr const char* kName = "strata";
  static void* Malloc(std::size_t n) noexcept { return strata_malloc(n); }
  static void Free(void* p) noexcept { strata_free(p); }
  static void* Realloc(void* p, std::size_t n) noexcept { return strata_realloc(p, n); }
};

struct GlibcAlloc {
  static constexpr const char* kName = "glibc";
  static void* Malloc(std::size_t n) noexcept { return std::malloc(n); }
  static void Free(void* p) noexcept { std::free(p); }
  static void* Realloc(void* p, std::size_t n) noexcept { return std::realloc(p, n); }
};

struct TbbAlloc {
  static constexpr const char* kName = "tbbmalloc";
  static void* Malloc(std::size_t n) noexcept { return scalable_malloc(n); }
  static void Free(void* p) noexcept { scalable_free(p); }
  static void* Realloc(void* p, std::size_t n) noexcept { return scalable_realloc(p, n); }
};

[[noreturn]] void OutOfMemory(const char* where, std::size_t n) {
  std::fprintf(stderr, "strata_micro: %s: allocation of %zu bytes failed\n", where, n);
  std::abort();
}

// Writes the first byte through a volatile pointer: the store cannot be
// dropped as dead before the free, and the block is really touched.
inline void Touch(void* p) { *static_cast<volatile unsigned char*>(p) = 1; }

void SetOps(benchmark::State& st, double ops_per_iteration) {
  st.counters["ops"] = benchmark::Counter(ops_per_iteration);
  st.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(st.iterations()) * ops_per_iteration));
}

// ---- pair: malloc + free of one size ---------------------------------------

template <class A>
void BM_Pair(benchmark::State& st, std::size_t size) {
  for (auto _ : st) {
    void* p = A::Malloc(size);
    benchmark::DoNotOptimize(p);  // the pointer escapes: the pair cannot be elided
    if (p == nullptr) OutOfMemory("pair", size);
    Touch(p);
    A::Free(p);
  }
  SetOps(st, 1);
}

// ---- batch: 1000 mixed small blocks, then free them ------------------------

constexpr int kBatch = 1000;

struct BatchPlan {
  std::size_t sizes[kBatch];
  int free_order[kBatch];
  BatchPlan() {
    std::uint64_t x = 0x9E3779B97F4A7C15ull;  // fixed seed: the same plan every run
    auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    for (int i = 0; i < kBatch; ++i) {
      sizes[i] = 8 + next() % 505;  // 8..512 bytes
      free_order[i] = i;
    }
    for (int i = kBatch - 1; i > 0; --i) std::swap(free_order[i], free_order[next() % (i + 1)]);
  }
};
const BatchPlan kPlan;

template <class A>
void BM_Batch(benchmark::State& st, bool shuffled) {
  std::vector<void*> ptrs(kBatch);
  for (auto _ : st) {
    for (int i = 0; i < kBatch; ++i) {
      void* p = A::Malloc(kPlan.sizes[i]);
      if (p == nullptr) OutOfMemory("batch", kPlan.sizes[i]);
      Touch(p);
      ptrs[i] = p;
    }
    benchmark::DoNotOptimize(ptrs.data());
    benchmark::ClobberMemory();
    if (shuffled) {
      for (int i = 0; i < kBatch; ++i) A::Free(ptrs[kPlan.free_order[i]]);
    } else {
      for (int i = 0; i < kBatch; ++i) A::Free(ptrs[i]);
    }
  }
  SetOps(st, kBatch);
}

// ---- realloc growth ---------------------------------------------------------

template <class A>
void BM_ReallocGrow(benchmark::State& st, std::size_t step, std::size_t limit) {
  for (auto _ : st) {
    char* p = nullptr;
    for (std::size_t n = step; n <= limit; n += step) {
      p = static_cast<char*>(A::Realloc(p, n));
      benchmark::DoNotOptimize(p);
      if (p == nullptr) OutOfMemory("realloc", n);
      p[n - 1] = static_cast<char>(n);  // append: the new last byte is written
    }
    benchmark::ClobberMemory();
    A::Free(p);
  }
  SetOps(st, static_cast<double>(limit / step));
}

// ---- xthread: allocate in one thread, free in another ----------------------

inline void CpuRelax() { __builtin_ia32_pause(); }

// Spins a little, then yields: with both threads on 2 cores the spin wins,
// when the machine is oversubscribed the yield keeps it from livelocking.
struct Backoff {
  unsigned n = 0;
  void Wait() {
    if (++n < 256) {
      CpuRelax();
    } else {
      sched_yield();
    }
  }
};

// Single-producer single-consumer ring of pointers.
class SpscRing {
 public:
  static constexpr std::size_t kCapacity = 1024;  // power of two

  void Push(void* p) {
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_cache_ >= kCapacity) {
      Backoff b;
      while (t - (head_cache_ = head_.load(std::memory_order_acquire)) >= kCapacity) b.Wait();
    }
    slots_[t & (kCapacity - 1)] = p;
    tail_.store(t + 1, std::memory_order_release);
  }

  void* Pop() {
    const std::size_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_cache_) {
      Backoff b;
      while (h == (tail_cache_ = tail_.load(std::memory_order_acquire))) b.Wait();
    }
    void* p = slots_[h & (kCapacity - 1)];
    head_.store(h + 1, std::memory_order_release);
    return p;
  }

 private:
  alignas(64) std::atomic<std::size_t> head_{0};  // written by the consumer
  std::size_t tail_cache_ = 0;                    // consumer's view of tail_
  alignas(64) std::atomic<std::size_t> tail_{0};  // written by the producer
  std::size_t head_cache_ = 0;                    // producer's view of head_
  alignas(64) void* slots_[kCapacity] = {};
};

constexpr std::size_t kXthreadBlocks = 16384;  // blocks per iteration

// The benchmark thread produces; a consumer thread, started before the timed
// loop and joined after it, frees.  An iteration ends only when the consumer
// has freed every block of it, so each iteration is exactly kXthreadBlocks
// blocks allocated and freed.  nullptr in the ring tells the consumer to stop.
template <class A>
void BM_Xthread(benchmark::State& st, std::size_t size) {
  auto ring = std::make_unique<SpscRing>();
  alignas(64) std::atomic<std::size_t> freed{0};
  std::thread consumer([&] {
    std::size_t n = 0;
    for (;;) {
      void* p = ring->Pop();
      if (p == nullptr) break;
      A::Free(p);
      freed.store(++n, std::memory_order_release);
    }
  });
  std::size_t produced = 0;
  for (auto _ : st) {
    for (std::size_t i = 0; i < kXthreadBlocks; ++i) {
      void* p = A::Malloc(size);
      if (p == nullptr) OutOfMemory("xthread", size);
      Touch(p);
      ring->Push(p);
    }
    produced += kXthreadBlocks;
    Backoff b;
    while (freed.load(std::memory_order_acquire) != produced) b.Wait();
  }
  ring->Push(nullptr);
  consumer.join();
  SetOps(st, kXthreadBlocks);
}

// ---- registration -----------------------------------------------------------

template <class A>
void RegisterPair(std::size_t size) {
  const std::string name = std::string("pair/") + A::kName + "/" + std::to_string(size);
  benchmark::RegisterBenchmark(name.c_str(), [size](benchmark::State& st) { BM_Pair<A>(st, size); });
}

template <class A>
void RegisterBatch(bool shuffled) {
  const std::string name = std::string("batch/") + A::kName + (shuffled ? "/random" : "/fifo");
  benchmark::RegisterBenchmark(name.c_str(), [shuffled](benchmark::State& st) { BM_Batch<A>(st, shuffled); });
}

template <class A>
void RegisterRealloc(const char* label, std::size_t step, std::size_t limit) {
  const std::string name = std::string("realloc/") + A::kName + "/" + label;
  benchmark::RegisterBenchmark(name.c_str(),
                               [step, limit](benchmark::State& st) { BM_ReallocGrow<A>(st, step, limit); });
}

template <class A>
void RegisterXthread(std::size_t size) {
  const std::string name = std::string("xthread/") + A::kName + "/" + std::to_string(size);
  benchmark::RegisterBenchmark(name.c_str(), [size](benchmark::State& st) { BM_Xthread<A>(st, size); })
      ->UseRealTime();
}

template <template <class> class Fn, class... Args>
void ForEachAllocator(Args... args) {
  Fn<StrataAlloc>{}(args...);
  Fn<GlibcAlloc>{}(args...);
  Fn<TbbAlloc>{}(args...);
}
template <class A> struct PairFn { void operator()(std::size_t s) const { RegisterPair<A>(s); } };
template <class A> struct BatchFn { void operator()(bool s) const { RegisterBatch<A>(s); } };
template <class A> struct ReallocFn {
  void operator()(const char* l, std::size_t s, std::size_t m) const { RegisterRealloc<A>(l, s, m); }
};
template <class A> struct XthreadFn { void operator()(std::size_t s) const { RegisterXthread<A>(s); } };

void RegisterAll() {
  for (std::size_t size : {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576})
    ForEachAllocator<PairFn>(size);
  ForEachAllocator<BatchFn>(false);
  ForEachAllocator<BatchFn>(true);
  ForEachAllocator<ReallocFn>("byte_64K", std::size_t{1}, std::size_t{64} << 10);
  ForEachAllocator<ReallocFn>("word_1M", std::size_t{8}, std::size_t{1} << 20);
  ForEachAllocator<XthreadFn>(std::size_t{64});
  ForEachAllocator<XthreadFn>(std::size_t{1024});
}

void WriteAll(int fd, const char* s) {
  std::size_t left = std::strlen(s);
  while (left > 0) {
    const ssize_t w = write(fd, s, left);
    if (w <= 0) return;
    s += w;
    left -= static_cast<std::size_t>(w);
  }
}

}  // namespace

// The line compare.py looks for; everything after it is strata's summary.
#define STRATA_SUMMARY_MARKER "==== strata heap summary after the benchmarks: strata_print_summary(NULL, 1) ====\n"

int main(int argc, char** argv) {
  bool summary = true;
  bool listing = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no_strata_summary") == 0) {
      summary = false;
      continue;
    }
    if (std::strncmp(argv[i], "--benchmark_list_tests", 22) == 0) listing = true;
    argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = nullptr;

  RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  if (summary && !listing) {
    std::cout.flush();
    std::fflush(stdout);
    WriteAll(1, STRATA_SUMMARY_MARKER);
    strata_print_summary(nullptr, 1);
  }
  return 0;
}
