// Shared pieces of the whole-workload benchmarks (bench/workloads/*.cpp).
//
// Every workload is a plain program that calls malloc/free (or new/delete), so
// the allocator under test is whatever the process resolves them to: glibc by
// default, a peer or strata through LD_PRELOAD (bench/run does that).
//
//   <workload> <threads> [scale]
//
// threads: worker threads; scale: multiplies the iteration counts (1 = the
// full run, about 0.5-2 s with glibc on one core).  The work is deterministic
// (fixed seeds per thread), independent of the allocator, and every block's
// content is written and checked before it is freed, so an allocator that
// hands out overlapping or corrupt blocks fails (exit status 3) instead of
// winning.  On success a workload prints one line of key=value pairs:
//
//   workload=larson threads=2 scale=1 elapsed_s=0.8123 checksum=... ops=...
//
// plus extra keys of its own (fragmentation: final_rss_kb).  vm_hwm_kb is the
// process's peak resident set (VmHWM).
#pragma once

#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace wl {

struct Args {
  int threads = 1;
  double scale = 1.0;
};

inline Args ParseArgs(int argc, char** argv, const char* name) {
  Args a;
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s <threads> [scale]\n", name);
    std::exit(2);
  }
  a.threads = std::atoi(argv[1]);
  if (argc == 3) a.scale = std::atof(argv[2]);
  if (a.threads < 1 || a.threads > 1024 || !(a.scale > 0)) {
    std::fprintf(stderr, "%s: bad arguments\n", name);
    std::exit(2);
  }
  return a;
}

inline long Scaled(double base, double scale) {
  const double v = base * scale;
  return v < 1 ? 1 : static_cast<long>(v);
}

// xorshift64*: small, fast, the same sequence everywhere.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
    if (s == 0) s = 1;
  }
  std::uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  std::uint64_t Below(std::uint64_t n) { return static_cast<std::uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64); }
};

// The realistic size mix (FastMM's observation on real applications: the vast
// majority of blocks are small).  99.2 % of blocks are under 2 KiB:
//   40 % 8..64 B, 30 % 65..256 B, 20 % 257..1024 B, 9.2 % 1025..2048 B,
//   0.7 % 2 KiB..32 KiB, 0.1 % 32 KiB..256 KiB.
inline std::size_t MixSize(Rng& r) {
  const std::uint64_t p = r.Below(10000);
  if (p < 4000) return 8 + r.Below(57);
  if (p < 7000) return 65 + r.Below(192);
  if (p < 9000) return 257 + r.Below(768);
  if (p < 9920) return 1025 + r.Below(1024);
  if (p < 9990) return 2049 + r.Below(30720);
  return 32769 + r.Below(229376);
}

// Block content: the first and last 8 bytes (or the whole block when smaller
// than 16) carry a tag derived from (id, size).  Fill writes them, Check
// verifies them.
inline std::uint64_t Tag(std::uint64_t id, std::size_t size) {
  std::uint64_t x = id * 0xD6E8FEB86659FD93ull ^ size;
  x ^= x >> 32;
  return x * 0x9E3779B97F4A7C15ull | 1;
}

// Fail prints the block's address and never reads the block: GCC 12 without
// optimisation otherwise warns that a block fresh from malloc, passed as a
// const void*, may be read uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#define WL_ADDRESS_ONLY __attribute__((access(none, 2)))
#else
#define WL_ADDRESS_ONLY
#endif
[[noreturn]] WL_ADDRESS_ONLY inline void Fail(const char* what, const void* p, std::size_t size) {
  std::fprintf(stderr, "workload: %s (block %p, %zu bytes): the allocator returned bad memory\n", what, p, size);
  std::fflush(stderr);
  _exit(3);
}

inline void* Alloc(std::size_t size) {
  void* p = std::malloc(size);
  if (p == nullptr) Fail("malloc returned NULL", p, size);
  if ((reinterpret_cast<std::uintptr_t>(p) & 15) != 0 && size >= 16) Fail("malloc returned a misaligned block", p, size);
  return p;
}

inline void Fill(void* p, std::size_t size, std::uint64_t id) {
  const std::uint64_t t = Tag(id, size);
  auto* c = static_cast<unsigned char*>(p);
  if (size >= 16) {
    std::memcpy(c, &t, 8);
    std::memcpy(c + size - 8, &t, 8);
  } else {
    for (std::size_t i = 0; i < size; ++i) c[i] = static_cast<unsigned char>(t >> (8 * (i & 7)));
  }
}

inline void Check(const void* p, std::size_t size, std::uint64_t id) {
  const std::uint64_t t = Tag(id, size);
  auto* c = static_cast<const unsigned char*>(p);
  if (size >= 16) {
    std::uint64_t a, b;
    std::memcpy(&a, c, 8);
    std::memcpy(&b, c + size - 8, 8);
    if (a != t || b != t) Fail("content check failed", p, size);
  } else {
    for (std::size_t i = 0; i < size; ++i)
      if (c[i] != static_cast<unsigned char>(t >> (8 * (i & 7)))) Fail("content check failed", p, size);
  }
}

// A live block in a workload's table.
struct Slot {
  void* p = nullptr;
  std::size_t size = 0;
  std::uint64_t id = 0;
};

inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A reusable barrier for N threads (spins briefly, then yields).
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void Wait() {
    const unsigned gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
      return;
    }
    unsigned spins = 0;
    while (gen_.load(std::memory_order_acquire) == gen) {
      if (++spins < 128) {
        __builtin_ia32_pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<unsigned> gen_{0};
};

// Runs body(t) on `threads` threads (thread 0 is a new thread too, so every
// worker runs with the allocator's per-thread state of a non-main thread,
// the way servers run) and returns the elapsed seconds.
template <class F>
double RunThreads(int threads, F&& body) {
  std::vector<std::thread> ts;
  ts.reserve(threads);
  const double t0 = Now();
  for (int t = 0; t < threads; ++t) ts.emplace_back([&body, t] { body(t); });
  for (auto& th : ts) th.join();
  return Now() - t0;
}

// kB of resident memory from /proc/self/status (key "VmRSS:" or "VmHWM:").
inline long StatusKb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long v = -1;
  const std::size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, key, n) == 0) {
      v = std::atol(line + n);
      break;
    }
  }
  std::fclose(f);
  return v;
}

// The object that `malloc` resolves to in this process (bench/run checks that
// an LD_PRELOAD took effect).
inline const char* MallocObject() {
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr) {
    const char* slash = std::strrchr(info.dli_fname, '/');
    return slash != nullptr ? slash + 1 : info.dli_fname;
  }
  return "?";
}

inline void Report(const char* name, const Args& a, double elapsed, std::uint64_t checksum, double ops,
                   const std::string& extra = "") {
  // Peak resident set of this process (the high-water mark of its own address
  // space since exec).  bench/run uses it rather than the parent's
  // ru_maxrss, which Linux floors at the parent's own RSS at exec time.
  const long hwm = StatusKb("VmHWM:");
  std::printf("workload=%s threads=%d scale=%g elapsed_s=%.6f checksum=%016llx ops=%.0f malloc_from=%s vm_hwm_kb=%ld%s%s\n",
              name, a.threads, a.scale, elapsed, static_cast<unsigned long long>(checksum), ops, MallocObject(), hwm,
              extra.empty() ? "" : " ", extra.c_str());
  std::fflush(stdout);
}

}  // namespace wl
