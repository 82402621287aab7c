// strata micro benchmarks: strata vs glibc malloc, tbbmalloc, mimalloc,
// jemalloc and tcmalloc, all in one process (see "the allocators" below).
//
// Every pattern is registered once per allocator, in the order strata, glibc,
// tbbmalloc, mimalloc, jemalloc, tcmalloc, so the runs of a pattern follow
// each other (they see the same machine state) and bench/compare.py can pair
// them by name:
//
//   pair/<alloc>/<size>          malloc + free of one block, 16 B .. 8 MiB; the
//                                first byte is written (a real program
//                                touches its memory)
//   pair/<alloc>/mix             the same with sizes from the realistic mix
//                                (99.2 % under 2 KiB, bench/workloads/common.hpp)
//   batch/<alloc>/fifo           1000 blocks of mixed small sizes (8..512 bytes)
//                                allocated, then freed in allocation order
//   batch/<alloc>/lifo           the same, freed in reverse order
//   batch/<alloc>/random         the same, freed in a fixed shuffled order
//   batch/<alloc>/mix            1000 blocks of the realistic mix, freed in
//                                a fixed shuffled order
//   realloc/<alloc>/byte_64K     a buffer grown 1 byte per realloc, 1 B -> 64 KiB
//   realloc/<alloc>/word_1M      a buffer grown 8 bytes per realloc, 8 B -> 1 MiB
//   aligned/<alloc>/<a>x<size>   aligned allocation + free (64 x 48, 4096 x 4096)
//   calloc/<alloc>/<size>        calloc + free (256 B, 64 KiB)
//   xthread/<alloc>/<size>       one thread allocates, a second frees: blocks go
//                                through a lock-free SPSC ring (real time)
//   pair2t/<alloc>/<size>        malloc + free pairs in two threads at once
//                                (real time, Google Benchmark's ->Threads(2))
//
// Each benchmark sets the counter "ops" to the operations one iteration does
// (pair: 1 malloc+free; batch: 1000 blocks, each one malloc+free; realloc: one
// realloc call; xthread: 1 block = a malloc in one thread + a free in the
// other), so time per op = iteration time / ops.
//
// Options of this program (before Google Benchmark's own):
//   --allocators=a,b,...  register only these allocators (names as above, or
//                         "system": the process's malloc, for LD_PRELOAD runs)
//   --no_strata_summary   do not print strata's heap summary at the end
//
// After the benchmarks the program prints strata's process-heap summary
// (the full text report, strata_write_report) after a marker line, unless --no_strata_summary.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <oneapi/tbb/scalable_allocator.h>
#include <sched.h>
#include <strata/state.h>
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
//
// Every allocator is called through a table of function pointers, so each
// benchmark is one compiled loop and no allocator gets an inlined or PLT-free
// call that the others do not.  strata, glibc and tbbmalloc are linked; the
// other peers are loaded with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND):
// RTLD_LOCAL keeps their malloc/free out of the global scope (the process's
// malloc stays glibc's), RTLD_DEEPBIND makes their own internal references
// bind to themselves.  Their prefixed APIs are used: mi_* (mimalloc), tc_*
// (tcmalloc), and jemalloc's non-standard mallocx/dallocx/rallocx (Debian's
// jemalloc exports no je_ prefix).  A peer whose library is missing is left
// out with a note on stderr.
//
// "system" is malloc/free/realloc of the process, whatever LD_PRELOAD put in
// front of them; it is registered only when asked for (--allocators=system),
// to cross-check an in-process peer against the same peer preloaded.

struct Api {
  const char* name;
  void* (*malloc)(std::size_t);
  void (*free)(void*);
  void* (*realloc)(void*, std::size_t);
  void* (*calloc)(std::size_t, std::size_t);
  void* (*aligned)(std::size_t align, std::size_t size);
  void (*aligned_free)(void*);
};

void* StrataAligned(std::size_t a, std::size_t n) { return strata_aligned_alloc(a, n); }
void* GlibcMalloc(std::size_t n) { return std::malloc(n); }
void GlibcFree(void* p) { std::free(p); }
void* GlibcRealloc(void* p, std::size_t n) { return std::realloc(p, n); }
void* GlibcCalloc(std::size_t c, std::size_t n) { return std::calloc(c, n); }
void* GlibcAligned(std::size_t a, std::size_t n) { return std::aligned_alloc(a, (n + a - 1) & ~(a - 1)); }
void* TbbAligned(std::size_t a, std::size_t n) { return scalable_aligned_malloc(n, a); }

// Filled from dlsym.
void* (*mi_malloc_p)(std::size_t);
void (*mi_free_p)(void*);
void* (*mi_realloc_p)(void*, std::size_t);
void* (*mi_calloc_p)(std::size_t, std::size_t);
void* (*mi_malloc_aligned_p)(std::size_t, std::size_t);
void* MiAligned(std::size_t a, std::size_t n) { return mi_malloc_aligned_p(n, a); }

void* (*je_mallocx_p)(std::size_t, int);
void (*je_dallocx_p)(void*, int);
void* (*je_rallocx_p)(void*, std::size_t, int);
constexpr int kJeZero = 0x40;  // MALLOCX_ZERO
void* JeMalloc(std::size_t n) { return je_mallocx_p(n == 0 ? 1 : n, 0); }
void JeFree(void* p) {
  if (p != nullptr) je_dallocx_p(p, 0);
}
void* JeRealloc(void* p, std::size_t n) { return p == nullptr ? JeMalloc(n) : je_rallocx_p(p, n == 0 ? 1 : n, 0); }
void* JeCalloc(std::size_t c, std::size_t n) { return je_mallocx_p(c * n == 0 ? 1 : c * n, kJeZero); }
void* JeAligned(std::size_t a, std::size_t n) { return je_mallocx_p(n, __builtin_ctzll(a)); }  // MALLOCX_LG_ALIGN

void* (*tc_malloc_p)(std::size_t);
void (*tc_free_p)(void*);
void* (*tc_realloc_p)(void*, std::size_t);
void* (*tc_calloc_p)(std::size_t, std::size_t);
void* (*tc_memalign_p)(std::size_t, std::size_t);

template <class F>
bool Sym(void* h, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(h, name));
  return out != nullptr;
}

void* OpenPeer(const char* lib) {
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (h == nullptr) std::fprintf(stderr, "strata_micro: %s not loaded (%s): left out\n", lib, dlerror());
  return h;
}

std::vector<Api> LoadAllocators() {
  std::vector<Api> v;
  v.push_back({"strata", strata_malloc, strata_free, strata_realloc, strata_calloc, StrataAligned, strata_free});
  v.push_back({"glibc", GlibcMalloc, GlibcFree, GlibcRealloc, GlibcCalloc, GlibcAligned, GlibcFree});
  v.push_back({"tbbmalloc", scalable_malloc, scalable_free, scalable_realloc, scalable_calloc, TbbAligned,
               scalable_aligned_free});
  if (void* h = OpenPeer("libmimalloc.so.2")) {
    if (Sym(h, "mi_malloc", mi_malloc_p) && Sym(h, "mi_free", mi_free_p) && Sym(h, "mi_realloc", mi_realloc_p) &&
        Sym(h, "mi_calloc", mi_calloc_p) && Sym(h, "mi_malloc_aligned", mi_malloc_aligned_p))
      v.push_back({"mimalloc", mi_malloc_p, mi_free_p, mi_realloc_p, mi_calloc_p, MiAligned, mi_free_p});
  }
  if (void* h = OpenPeer("libjemalloc.so.2")) {
    if (Sym(h, "mallocx", je_mallocx_p) && Sym(h, "dallocx", je_dallocx_p) && Sym(h, "rallocx", je_rallocx_p))
      v.push_back({"jemalloc", JeMalloc, JeFree, JeRealloc, JeCalloc, JeAligned, JeFree});
  }
  if (void* h = OpenPeer("libtcmalloc_minimal.so.4")) {
    if (Sym(h, "tc_malloc", tc_malloc_p) && Sym(h, "tc_free", tc_free_p) && Sym(h, "tc_realloc", tc_realloc_p) &&
        Sym(h, "tc_calloc", tc_calloc_p) && Sym(h, "tc_memalign", tc_memalign_p))
      v.push_back({"tcmalloc", tc_malloc_p, tc_free_p, tc_realloc_p, tc_calloc_p, tc_memalign_p, tc_free_p});
  }
  return v;
}

const Api kSystem{"system", GlibcMalloc, GlibcFree, GlibcRealloc, GlibcCalloc, GlibcAligned, GlibcFree};

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

void BM_Pair(benchmark::State& st, const Api& A, std::size_t size) {
  for (auto _ : st) {
    void* p = A.malloc(size);
    benchmark::DoNotOptimize(p);  // the pointer escapes: the pair cannot be elided
    if (p == nullptr) OutOfMemory("pair", size);
    Touch(p);
    A.free(p);
  }
  SetOps(st, 1);
}

// The realistic mix (the same as bench/workloads/common.hpp's MixSize).
std::size_t MixSize(std::uint64_t r, std::uint64_t r2) {
  const std::uint64_t p = r % 10000;
  if (p < 4000) return 8 + r2 % 57;
  if (p < 7000) return 65 + r2 % 192;
  if (p < 9000) return 257 + r2 % 768;
  if (p < 9920) return 1025 + r2 % 1024;
  if (p < 9990) return 2049 + r2 % 30720;
  return 32769 + r2 % 229376;
}

struct MixPlan {
  static constexpr int kN = 4096;
  std::size_t sizes[kN];
  MixPlan() {
    std::uint64_t x = 0x2545F4914F6CDD1Dull;
    auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    for (auto& s : sizes) {
      const std::uint64_t a = next();
      s = MixSize(a, next());
    }
  }
};
const MixPlan kMix;

void BM_PairMix(benchmark::State& st, const Api& A) {
  unsigned i = 0;
  for (auto _ : st) {
    const std::size_t size = kMix.sizes[i++ & (MixPlan::kN - 1)];
    void* p = A.malloc(size);
    benchmark::DoNotOptimize(p);
    if (p == nullptr) OutOfMemory("pair", size);
    Touch(p);
    A.free(p);
  }
  SetOps(st, 1);
}

void BM_Aligned(benchmark::State& st, const Api& A, std::size_t align, std::size_t size) {
  for (auto _ : st) {
    void* p = A.aligned(align, size);
    benchmark::DoNotOptimize(p);
    if (p == nullptr || (reinterpret_cast<std::uintptr_t>(p) & (align - 1)) != 0) OutOfMemory("aligned", size);
    Touch(p);
    A.aligned_free(p);
  }
  SetOps(st, 1);
}

void BM_Calloc(benchmark::State& st, const Api& A, std::size_t size) {
  for (auto _ : st) {
    auto* p = static_cast<unsigned char*>(A.calloc(1, size));
    benchmark::DoNotOptimize(p);
    if (p == nullptr) OutOfMemory("calloc", size);
    if (p[size - 1] != 0) OutOfMemory("calloc (not zeroed)", size);
    p[size - 1] = 1;  // the next calloc must zero it again
    A.free(p);
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

enum class Order { kFifo, kLifo, kRandom, kMix };

void BM_Batch(benchmark::State& st, const Api& A, Order order) {
  std::vector<void*> ptrs(kBatch);
  for (auto _ : st) {
    for (int i = 0; i < kBatch; ++i) {
      const std::size_t size = order == Order::kMix ? kMix.sizes[i] : kPlan.sizes[i];
      void* p = A.malloc(size);
      if (p == nullptr) OutOfMemory("batch", size);
      Touch(p);
      ptrs[i] = p;
    }
    benchmark::DoNotOptimize(ptrs.data());
    benchmark::ClobberMemory();
    switch (order) {
      case Order::kFifo:
        for (int i = 0; i < kBatch; ++i) A.free(ptrs[i]);
        break;
      case Order::kLifo:
        for (int i = kBatch - 1; i >= 0; --i) A.free(ptrs[i]);
        break;
      case Order::kRandom:
      case Order::kMix:
        for (int i = 0; i < kBatch; ++i) A.free(ptrs[kPlan.free_order[i]]);
        break;
    }
  }
  SetOps(st, kBatch);
}

// ---- realloc growth ---------------------------------------------------------

void BM_ReallocGrow(benchmark::State& st, const Api& A, std::size_t step, std::size_t limit) {
  for (auto _ : st) {
    char* p = nullptr;
    for (std::size_t n = step; n <= limit; n += step) {
      p = static_cast<char*>(A.realloc(p, n));
      benchmark::DoNotOptimize(p);
      if (p == nullptr) OutOfMemory("realloc", n);
      p[n - 1] = static_cast<char>(n);  // append: the new last byte is written
    }
    benchmark::ClobberMemory();
    A.free(p);
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
void BM_Xthread(benchmark::State& st, const Api& A, std::size_t size) {
  auto ring = std::make_unique<SpscRing>();
  alignas(64) std::atomic<std::size_t> freed{0};
  std::thread consumer([&] {
    std::size_t n = 0;
    for (;;) {
      void* p = ring->Pop();
      if (p == nullptr) break;
      A.free(p);
      freed.store(++n, std::memory_order_release);
    }
  });
  std::size_t produced = 0;
  for (auto _ : st) {
    for (std::size_t i = 0; i < kXthreadBlocks; ++i) {
      void* p = A.malloc(size);
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

std::vector<Api> g_allocators;  // the allocators registered, in order

template <class F>
void ForEachAllocator(const std::string& pattern, const std::string& variant, F fn) {
  for (const Api& a : g_allocators) {
    const std::string name = pattern + "/" + a.name + "/" + variant;
    fn(name, a);
  }
}

void RegisterAll() {
  using benchmark::RegisterBenchmark;
  using benchmark::State;
  for (std::size_t size : {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576, 8388608})
    ForEachAllocator("pair", std::to_string(size), [size](const std::string& n, const Api& a) {
      RegisterBenchmark(n.c_str(), [&a, size](State& st) { BM_Pair(st, a, size); });
    });
  ForEachAllocator("pair", "mix", [](const std::string& n, const Api& a) {
    RegisterBenchmark(n.c_str(), [&a](State& st) { BM_PairMix(st, a); });
  });
  const std::pair<const char*, Order> orders[] = {
      {"fifo", Order::kFifo}, {"lifo", Order::kLifo}, {"random", Order::kRandom}, {"mix", Order::kMix}};
  for (auto [label, order] : orders)
    ForEachAllocator("batch", label, [order = order](const std::string& n, const Api& a) {
      RegisterBenchmark(n.c_str(), [&a, order](State& st) { BM_Batch(st, a, order); });
    });
  const struct { const char* label; std::size_t step, limit; } grows[] = {
      {"byte_64K", 1, std::size_t{64} << 10}, {"word_1M", 8, std::size_t{1} << 20}};
  for (auto g : grows)
    ForEachAllocator("realloc", g.label, [g](const std::string& n, const Api& a) {
      RegisterBenchmark(n.c_str(), [&a, g](State& st) { BM_ReallocGrow(st, a, g.step, g.limit); });
    });
  const struct { std::size_t align, size; } aligns[] = {{64, 48}, {4096, 4096}};
  for (auto al : aligns)
    ForEachAllocator("aligned", std::to_string(al.align) + "x" + std::to_string(al.size),
                     [al](const std::string& n, const Api& a) {
                       RegisterBenchmark(n.c_str(), [&a, al](State& st) { BM_Aligned(st, a, al.align, al.size); });
                     });
  for (std::size_t size : {256, 65536})
    ForEachAllocator("calloc", std::to_string(size), [size](const std::string& n, const Api& a) {
      RegisterBenchmark(n.c_str(), [&a, size](State& st) { BM_Calloc(st, a, size); });
    });
  for (std::size_t size : {64, 1024})
    ForEachAllocator("xthread", std::to_string(size), [size](const std::string& n, const Api& a) {
      RegisterBenchmark(n.c_str(), [&a, size](State& st) { BM_Xthread(st, a, size); })->UseRealTime();
    });
  ForEachAllocator("pair2t", "64", [](const std::string& n, const Api& a) {
    RegisterBenchmark(n.c_str(), [&a](State& st) { BM_Pair(st, a, 64); })->Threads(2)->UseRealTime();
  });
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
#define STRATA_SUMMARY_MARKER \
  "==== strata heap summary after the benchmarks: the full report, strata_write_report(NULL, 1, STRATA_REPORT_TEXT) ====\n"

// jemalloc uses initial-exec TLS, which a dlopen'ed library can only get from
// the static TLS surplus glibc reserves at start-up; the default surplus is
// too small ("cannot allocate memory in static TLS block").  Re-executes the
// program once with a larger surplus (glibc tunable, glibc >= 2.32).
void EnsureStaticTlsSurplus(char** argv) {
  const char* t = std::getenv("GLIBC_TUNABLES");
  if (t != nullptr && std::strstr(t, "glibc.rtld.optional_static_tls") != nullptr) return;
  std::string v = t != nullptr && *t != '\0' ? std::string(t) + ":" : std::string();
  v += "glibc.rtld.optional_static_tls=65536";
  setenv("GLIBC_TUNABLES", v.c_str(), 1);
  execv("/proc/self/exe", argv);  // on failure: go on; jemalloc is then left out with a note
}

int main(int argc, char** argv) {
  EnsureStaticTlsSurplus(argv);
  bool summary = true;
  bool listing = false;
  int kept = 1;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no_strata_summary") == 0) {
      summary = false;
      continue;
    }
    if (std::strncmp(argv[i], "--allocators=", 13) == 0) {
      only.assign(1, ',');
      only.append(argv[i] + 13);
      only.push_back(',');
      continue;
    }
    if (std::strncmp(argv[i], "--benchmark_list_tests", 22) == 0) listing = true;
    argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = nullptr;

  auto wanted = [&only](const char* name) {
    if (only.empty()) return std::strcmp(name, "system") != 0;
    std::string key(1, ',');
    key.append(name);
    key.push_back(',');
    return only.find(key) != std::string::npos;
  };
  if (only != ",system,") {  // --allocators=system alone: do not even load the peers
    for (const Api& a : LoadAllocators())
      if (wanted(a.name)) g_allocators.push_back(a);
  }
  if (wanted("system")) g_allocators.push_back(kSystem);
  RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  if (summary && !listing) {
    std::cout.flush();
    std::fflush(stdout);
    WriteAll(1, STRATA_SUMMARY_MARKER);
    strata_write_report(nullptr, 1, STRATA_REPORT_TEXT, STRATA_WAIT_FOREVER);
  }
  return 0;
}
