// strata — the malloc family for libstrata.so: replaces glibc's allocator for
// the whole process when linked or preloaded.  Edge cases follow glibc
// (malloc(0) unique, realloc(p, 0) frees and returns NULL, posix_memalign's
// EINVAL without touching errno, overflow -> ENOMEM); glibc's introspection
// calls answer from strata's own state.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <strata/strata.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstring>


#include <atomic>

#include "glibc_rules.hpp"
#ifdef STRATA_SHARE_CLIENT
#include <strata/leaks.h>
#include <strata/state.h>

#include "client.hpp"
#endif
#include "options.hpp"
#include "process.hpp"

extern "C" __attribute__((visibility("hidden"))) void strata_detail_mark_not_unloadable() noexcept;

namespace {
// (STRATA_SHOW_STATS and STRATA_REPORT: the exit report, registered by api.cpp.)
__attribute__((constructor)) void mark() { strata_detail_mark_not_unloadable(); }

strata_heap_summary_t summary() noexcept {
  strata_heap_summary_t s{};
  s.size = sizeof s;
  strata_heap_summary(nullptr, &s);
  return s;
}
}  // namespace

#define STRATA_EXPORT extern "C" __attribute__((visibility("default")))

// malloc, free, calloc and realloc are aliases of strata_malloc, strata_free,
// strata_calloc and strata_realloc (api.cpp, STRATA_MALLOC_ALIASES) in
// libstrata.so.  An executable built with strata::share (share/, the
// STRATA_SHARE_CLIENT copy, whose strata_* are dispatch.cpp's entry points)
// gets them here: its copy is the process's malloc, which the modules it
// loads may share.
#ifdef STRATA_SHARE_CLIENT
// Each one indirect jump: to this copy's functions (renamed *_own, share/),
// and to the shared manager's from a switch on (strata_detail_route_shared).
#define STRATA_SHARE_FN(name, ret, params, args) extern "C" ret name##_own params noexcept;
#include "api.def"
#undef STRATA_SHARE_FN
namespace {
struct Route {
  std::atomic<void* (*)(size_t) noexcept> malloc{&strata_malloc_own};
  std::atomic<void (*)(void*) noexcept> free{&strata_free_own};
  std::atomic<void* (*)(size_t, size_t) noexcept> calloc{&strata_calloc_own};
  std::atomic<void* (*)(void*, size_t) noexcept> realloc{&strata_realloc_own};
};
constinit Route g_route;
}  // namespace
extern "C" __attribute__((visibility("hidden"))) void strata_detail_route_shared() noexcept {
  const strata::share::Table* t = strata::share::client_table();
  g_route.malloc.store(t->fn_strata_malloc, std::memory_order_release);
  g_route.free.store(t->free_any ? t->free_any : t->fn_strata_free, std::memory_order_release);
  g_route.calloc.store(t->fn_strata_calloc, std::memory_order_release);
  g_route.realloc.store(t->fn_strata_realloc, std::memory_order_release);
}
STRATA_EXPORT void* malloc(size_t n) noexcept { return g_route.malloc.load(std::memory_order_relaxed)(n); }
STRATA_EXPORT void free(void* p) noexcept { g_route.free.load(std::memory_order_relaxed)(p); }
STRATA_EXPORT void* calloc(size_t c, size_t n) noexcept { return g_route.calloc.load(std::memory_order_relaxed)(c, n); }
STRATA_EXPORT void* realloc(void* p, size_t n) noexcept {
  return g_route.realloc.load(std::memory_order_relaxed)(p, n);
}
#endif
// A shared manager's free for its users (share/table.hpp, free_any): this
// copy is the process's malloc, so every block of the process is its own.
extern "C" __attribute__((visibility("hidden"))) void strata_detail_free_any(void* p) noexcept { free(p); }
STRATA_EXPORT void* reallocarray(void* p, size_t c, size_t n) noexcept {
  size_t total;
  return strata::detail::glibc_array_size(c, n, &total) ? strata_realloc(p, total) : nullptr;
}
STRATA_EXPORT void* aligned_alloc(size_t a, size_t n) noexcept { return strata::detail::glibc_memalign(a, n); }
STRATA_EXPORT void* memalign(size_t a, size_t n) noexcept { return strata::detail::glibc_memalign(a, n); }
STRATA_EXPORT int posix_memalign(void** out, size_t a, size_t n) noexcept {
  return strata::detail::glibc_posix_memalign(out, a, n);
}
STRATA_EXPORT void* valloc(size_t n) noexcept { return strata_aligned_alloc(4096, n); }
STRATA_EXPORT void* pvalloc(size_t n) noexcept { return strata::detail::glibc_pvalloc(n); }
STRATA_EXPORT size_t malloc_usable_size(void* p) noexcept { return strata_usable_size(p); }

// C23
STRATA_EXPORT void free_sized(void* p, size_t size) noexcept { strata_free_sized(p, size); }
STRATA_EXPORT void free_aligned_sized(void* p, size_t, size_t size) noexcept { strata_free_sized(p, size); }

// ---- glibc introspection, answered from strata's state ----
STRATA_EXPORT struct mallinfo2 mallinfo2() noexcept {
  strata_heap_summary_t s = summary();
  struct mallinfo2 mi{};
  mi.arena = s.os_reserved_bytes - s.large_bytes;  // non-mmapped space: spans, pools, metadata
  mi.ordblks = 0;
  mi.smblks = s.cached_blocks;                      // free small blocks in thread caches
  mi.hblks = s.large_blocks;                        // blocks with a mapping of their own
  mi.hblkhd = s.large_bytes;
  mi.usmblks = s.peak_os_reserved_bytes;            // glibc: always 0; here the peak
  mi.fsmblks = s.cached_bytes;
  mi.uordblks = s.small_bytes + s.medium_bytes;     // in use outside large blocks
  mi.fordblks = mi.arena > mi.uordblks ? mi.arena - mi.uordblks : 0;
  mi.keepcost = 0;
  return mi;
}
STRATA_EXPORT struct mallinfo mallinfo() noexcept {
  struct mallinfo2 m2 = mallinfo2();
  auto clip = [](size_t v) { return v > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(v); };
  struct mallinfo mi{};
  mi.arena = clip(m2.arena);
  mi.smblks = clip(m2.smblks);
  mi.hblks = clip(m2.hblks);
  mi.hblkhd = clip(m2.hblkhd);
  mi.usmblks = clip(m2.usmblks);
  mi.fsmblks = clip(m2.fsmblks);
  mi.uordblks = clip(m2.uordblks);
  mi.fordblks = clip(m2.fordblks);
  return mi;
}
// Returns 1 if memory was given back to the OS, 0 otherwise (glibc's meaning).
STRATA_EXPORT int malloc_trim(size_t) noexcept { return strata_heap_trim(nullptr) > 0 ? 1 : 0; }
STRATA_EXPORT void malloc_stats() noexcept { strata_print_summary(nullptr, 2); }
// glibc's tuning knobs describe glibc's heap (fastbins, brk trimming, mmap
// threshold, arenas); strata sizes its caches and returns memory by its own
// rules, so it accepts them and ignores them, answering 1 for exactly the
// values glibc 2.36 accepts (a program that checks the result sees what it
// would see with glibc).  M_PERTURB would change behaviour (fill blocks on
// malloc and free): strata does not do it, so only 0 ("off") is accepted.
// An unknown option is refused with 0, as mallopt(3) documents (glibc itself
// returns 1, a bug the man page lists).  See docs/usage.md.
STRATA_EXPORT int mallopt(int option, int value) noexcept {
  switch (option) {
    case M_MXFAST:  // glibc: up to 80 * sizeof(size_t) / 4 bytes
      return static_cast<size_t>(value) <= 80 * sizeof(size_t) / 4 ? 1 : 0;
    case M_MMAP_THRESHOLD:  // glibc 2.36 takes any value (older ones refused above 32 MiB)
    case M_TRIM_THRESHOLD:
    case M_TOP_PAD:
    case M_MMAP_MAX:
    case M_CHECK_ACTION:
    case M_ARENA_TEST:
    case M_ARENA_MAX:
      return 1;
    case M_PERTURB:
      return value == 0 ? 1 : 0;
    default:
      return 0;
  }
}
STRATA_EXPORT int malloc_info(int options, FILE* fp) noexcept {
  if (options != 0 || !fp) {
    errno = EINVAL;
    return -1;
  }
  strata_heap_summary_t s = summary();
  fprintf(fp,
          "<malloc version=\"strata-1\">\n"
          "<total type=\"small\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"medium\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"large\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"cached\" count=\"%zu\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "<system type=\"max\" size=\"%zu\"/>\n"
          "</malloc>\n",
          s.small_blocks, s.small_bytes, s.medium_blocks, s.medium_bytes, s.large_blocks, s.large_bytes,
          s.cached_blocks, s.cached_bytes, s.os_reserved_bytes, s.peak_os_reserved_bytes);
  return 0;
}
