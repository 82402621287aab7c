// strata_pairs: a bare malloc+free loop, for counting instructions per pair
// with callgrind (scripts/callgrind-pairs.sh).
//
//   strata_pairs strata <size> <iterations>   strata_malloc / strata_free (libstrata.a)
//   strata_pairs malloc <size> <iterations>   malloc / free: glibc's, or whatever
//                                             LD_PRELOAD puts in front of it
//   strata_pairs append <step> <iterations>    realloc append: a buffer grown by
//                                             <step> bytes per realloc call, the
//                                             new bytes written (a string appended
//                                             one byte or one word at a time);
//                                             <iterations> calls, starting over
//                                             from a fresh buffer every 4096 calls
//   strata_pairs strata-append <step> <n>     the same through strata_realloc
//   strata_pairs strata-aligned <size> <n>    strata_aligned_alloc(64, size) / strata_free
//   strata_pairs tl-get <size> <n>            n calls of strata_thread_local_get (the hot path
//                                             of a thread-local block that exists)
//   strata_pairs strata-batch <size> <rounds>  rounds of 1,000 strata_malloc of <size> bytes, then
//                                             all 1,000 freed (the blocks go through the thread
//                                             cache's refills and spills): the script divides by
//                                             1,000 pairs per round
//   strata_pairs pool-destroy <blocks> <reps>  times strata_pool_destroy and strata_pool_reset
//                                             of a pool holding <blocks> live blocks over the
//                                             three tiers, against freeing them one by one
//
// The script runs each case with two iteration counts and divides the
// difference of the instruction totals by the difference of the counts, so
// start-up, first-touch and exit costs cancel.  What remains per iteration is
// the allocator's malloc + free plus the loop around them (argument set-up,
// the calls, PLT jumps for malloc/free, the escape, increment and branch):
// roughly 10 instructions that are NOT subtracted.
//
// On stderr the program names the object that the `malloc` symbol resolves to,
// so the script can check that an LD_PRELOAD took effect.
#include <dlfcn.h>
#include <strata/strata.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>
#include <algorithm>

namespace {

// Makes p escape: the compiler must produce it, so it cannot drop the pair.
inline void Escape(void* p) { asm volatile("" : : "r"(p) : "memory"); }

// noinline + noipa: one loop, compiled the same way for every size.
__attribute__((noinline, noipa)) void LoopMalloc(std::size_t size, long n) {
  for (long i = 0; i < n; ++i) {
    void* p = std::malloc(size);
    Escape(p);
    std::free(p);
  }
}

__attribute__((noinline, noipa)) void LoopStrata(std::size_t size, long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata_malloc(size);
    Escape(p);
    strata_free(p);
  }
}

__attribute__((noinline, noipa)) void LoopStrataAligned(std::size_t size, long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata_aligned_alloc(64, size);
    Escape(p);
    strata_free(p);
  }
}

constexpr long kBatch = 1000;
__attribute__((noinline, noipa)) void LoopStrataBatch(std::size_t size, long rounds) {
  static void* v[kBatch];
  for (long r = 0; r < rounds; ++r) {
    for (long i = 0; i < kBatch; ++i) v[i] = strata_malloc(size);
    Escape(v);
    for (long i = 0; i < kBatch; ++i) strata_free(v[i]);
  }
}

__attribute__((noinline, noipa)) void LoopThreadLocal(strata_thread_local_t* h, long n) {
  for (long i = 0; i < n; ++i) Escape(strata_thread_local_get(h));
}

double Seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// blocks live blocks in pool: 98 % small (16-256 B), 2 % medium (3-60 KB),
// one large (1 MiB) per 10,000.
std::vector<void*> FillPool(strata_pool_t* pool, long blocks) {
  std::vector<void*> v;
  v.reserve(static_cast<std::size_t>(blocks));
  for (long i = 0; i < blocks; ++i) {
    std::size_t n = i % 10000 == 9999 ? std::size_t{1} << 20
                    : i % 50 == 49    ? 3000 + static_cast<std::size_t>(i % 117) * 512
                                      : 16 + static_cast<std::size_t>(i % 16) * 16;
    v.push_back(strata_pool_malloc(pool, n));
  }
  return v;
}

int PoolDestroy(long blocks, long reps) {
  double destroy = 1e9, reset = 1e9, one_by_one = 1e9;
  std::size_t mapped = 0;
  for (long r = 0; r < reps; ++r) {
    strata_pool_t* pool = strata_pool_create();
    std::vector<void*> v = FillPool(pool, blocks);
    strata_heap_summary_t s{};
    s.size = sizeof s;
    strata_heap_summary(pool, &s);
    mapped = s.os_reserved_bytes;
    double t0 = Seconds();
    strata_pool_reset(pool);
    double t1 = Seconds();
    reset = std::min(reset, t1 - t0);
    v = FillPool(pool, blocks);
    t0 = Seconds();
    strata_pool_destroy(pool);
    t1 = Seconds();
    destroy = std::min(destroy, t1 - t0);
    pool = strata_pool_create();
    v = FillPool(pool, blocks);
    t0 = Seconds();
    for (void* p : v) strata_pool_free(pool, p);
    t1 = Seconds();
    one_by_one = std::min(one_by_one, t1 - t0);
    strata_pool_destroy(pool);
  }
  std::printf("pool with %ld live blocks (%.1f MiB mapped): destroy %.3f ms, reset %.3f ms, "
              "freeing them one by one %.3f ms (best of %ld)\n",
              blocks, static_cast<double>(mapped) / 1048576.0, destroy * 1e3, reset * 1e3, one_by_one * 1e3, reps);
  return 0;
}

// A string grown by `step` bytes per realloc, restarted every 4096 appends
// (so the buffer stays small, 4 KiB or 32 KiB: the common case of a string
// builder, not the large-block path).
template <void* (*Realloc)(void*, std::size_t), void (*Free)(void*)>
__attribute__((noinline, noipa)) void LoopAppend(std::size_t step, long n) {
  char* p = nullptr;
  std::size_t len = 0;
  for (long i = 0; i < n; ++i) {
    if ((i & 4095) == 0 && p != nullptr) {
      Free(p);
      p = nullptr;
      len = 0;
    }
    p = static_cast<char*>(Realloc(p, len + step));
    Escape(p);
    p[len] = static_cast<char>(i);  // append: write the new bytes' first byte
    len += step;
  }
  Free(p);
}

void* LibcRealloc(void* p, std::size_t n) { return std::realloc(p, n); }
void LibcFree(void* p) { std::free(p); }

const char* MallocObject() {
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  const bool append = argc == 4 && (std::strcmp(argv[1], "append") == 0 || std::strcmp(argv[1], "strata-append") == 0);
  if (append) {
    const std::size_t step = std::strtoull(argv[2], nullptr, 0);
    const long n = std::strtol(argv[3], nullptr, 0);
    if (std::strcmp(argv[1], "append") == 0) {
      LoopAppend<LibcRealloc, LibcFree>(step, 1);
      LoopAppend<LibcRealloc, LibcFree>(step, n);
      std::fprintf(stderr, "strata_pairs: append with malloc from %s, step %zu, %ld reallocs\n", MallocObject(),
                   step, n);
    } else {
      LoopAppend<strata_realloc, strata_free>(step, 1);
      LoopAppend<strata_realloc, strata_free>(step, n);
      std::fprintf(stderr, "strata_pairs: append with strata_realloc (libstrata.a), step %zu, %ld reallocs\n", step,
                   n);
    }
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "pool-destroy") == 0)
    return PoolDestroy(std::strtol(argv[2], nullptr, 0), std::strtol(argv[3], nullptr, 0));
  if (argc == 4 && std::strcmp(argv[1], "tl-get") == 0) {
    strata_thread_local_t* h = strata_thread_local_create(std::strtoull(argv[2], nullptr, 0));
    const long n = std::strtol(argv[3], nullptr, 0);
    LoopThreadLocal(h, 1);
    LoopThreadLocal(h, n);
    std::fprintf(stderr, "strata_pairs: strata_thread_local_get, %ld calls\n", n);
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "strata-batch") == 0) {
    const std::size_t size = std::strtoull(argv[2], nullptr, 0);
    const long n = std::strtol(argv[3], nullptr, 0);
    LoopStrataBatch(size, 1);
    LoopStrataBatch(size, n);
    std::fprintf(stderr, "strata_pairs: strata_malloc x %ld then strata_free x %ld (libstrata.a), size %zu, %ld rounds\n",
                 kBatch, kBatch, size, n);
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "strata-aligned") == 0) {
    const std::size_t size = std::strtoull(argv[2], nullptr, 0);
    const long n = std::strtol(argv[3], nullptr, 0);
    LoopStrataAligned(size, 1);
    LoopStrataAligned(size, n);
    std::fprintf(stderr, "strata_pairs: strata_aligned_alloc(64)/strata_free (libstrata.a), size %zu, %ld pairs\n",
                 size, n);
    return 0;
  }
  if (argc != 4 || (std::strcmp(argv[1], "strata") != 0 && std::strcmp(argv[1], "malloc") != 0)) {
    std::fprintf(stderr, "usage: %s strata|malloc|append|strata-append|strata-aligned|strata-batch|tl-get <size|step> <iterations>, or pool-destroy <blocks> <reps>\n",
                 argv[0]);
    return 2;
  }
  const bool strata = std::strcmp(argv[1], "strata") == 0;
  const std::size_t size = std::strtoull(argv[2], nullptr, 0);
  const long n = std::strtol(argv[3], nullptr, 0);
  // One warm-up pair outside the counted difference (both runs do it).
  if (strata) {
    LoopStrata(size, 1);
    LoopStrata(size, n);
    std::fprintf(stderr, "strata_pairs: strata_malloc/strata_free (libstrata.a), size %zu, %ld pairs\n",
                 size, n);
  } else {
    LoopMalloc(size, 1);
    LoopMalloc(size, n);
    std::fprintf(stderr, "strata_pairs: malloc from %s, size %zu, %ld pairs\n", MallocObject(), size, n);
  }
  return 0;
}
