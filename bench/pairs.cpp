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

__attribute__((noinline, noipa)) void LoopStrataAligned(std::size_t size, long n) {
  for (long i = 0; i < n; ++i) {
    void* p = strata_aligned_alloc(64, size);
    Escape(p);
    strata_free(p);
  }
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
    std::fprintf(stderr, "usage: %s strata|malloc|append|strata-append|strata-aligned <size|step> <iterations>\n",
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
