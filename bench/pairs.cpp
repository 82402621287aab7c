// strata_pairs: a bare malloc+free loop, for counting instructions per pair
// with callgrind (scripts/callgrind-pairs.sh).
//
//   strata_pairs strata <size> <iterations>   strata_malloc / strata_free (libstrata.a)
//   strata_pairs malloc <size> <iterations>   malloc / free: glibc's, or whatever
//                                             LD_PRELOAD puts in front of it
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

const char* MallocObject() {
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || (std::strcmp(argv[1], "strata") != 0 && std::strcmp(argv[1], "malloc") != 0)) {
    std::fprintf(stderr, "usage: %s strata|malloc <size> <iterations>\n", argv[0]);
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
