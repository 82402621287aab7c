// strata — a module's own malloc family on its private heap
// (strata::module_heap, libstrata_module_heap.a).
//
// Linked into a shared library together with libstrata.a, these hidden
// definitions of malloc, free, calloc, realloc, reallocarray, aligned_alloc,
// memalign, posix_memalign, valloc, pvalloc and malloc_usable_size (and, in
// override_new.cpp built with STRATA_MODULE_HEAP, every operator new and
// delete) are what the library's own code calls: its blocks come from the
// library's copy of strata and go with it when it is unloaded.  Code outside
// the library (libc's strdup, libstdc++'s out-of-line functions, other
// libraries) still calls the process's malloc; a block of the process's
// malloc that the library frees or reallocates is recognised (the chunk map
// says it is not strata's) and handed to the process's functions, found with
// dlsym(RTLD_NEXT).  A block of the private heap must not reach the process's
// free (docs/unloading.md).  Built with STRATA_SHARE_CLIENT for strata::share
// (share/), where the blocks are the shared manager's once the module uses it.
// Layer: API (an alternative to override_malloc.cpp, for modules).
#include <dlfcn.h>
#include <errno.h>
#include <strata/strata.h>

#include <atomic>
#include <climits>
#include <cstdint>

#include "chunk_map.hpp"
#include "glibc_rules.hpp"
#include "os.hpp"
#ifdef STRATA_SHARE_CLIENT
// strata::share (share/): once the module uses a shared manager its calls go
// through that manager's table (g_route below); until then straight to this
// copy's functions, renamed *_own there (STRATA_OWN), not through
// share/dispatch.cpp's entry points.
#include <strata/leaks.h>
#include <strata/state.h>

#include "client.hpp"
#define STRATA_SHARE_FN(name, ret, params, args) extern "C" ret name##_own params noexcept;
#include "api.def"
#undef STRATA_SHARE_FN
#define STRATA_OWN(name) name##_own
#define STRATA_NOINLINE_IF_ROUTED STRATA_NOINLINE static
#else
#define STRATA_OWN(name) name
#define STRATA_NOINLINE_IF_ROUTED static inline
#endif

namespace {

using namespace strata::detail;

// Whether p is a block of the process's malloc rather than of this module's
// strata: an address the chunk map does not know, or one strata gave back to
// the OS that is mapped again (by the process's malloc, say) -- and in
// neither case inside one of this module's large blocks (whose chunks
// between anchors the map knows only by the interior marks: a probe per
// power of two up to the largest block, chunk_map.hpp).  Reads only the
// chunk map, then (for the second case) asks the kernel.
bool foreign(const void* p) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  ChunkKind k = chunk_map::kind_of(chunk_map::lookup(a));
  if (k == ChunkKind::kNone) return !chunk_map::in_interior(a);
  return k == ChunkKind::kFreed && !chunk_map::in_interior(a) && os::is_mapped(p);
}

// The process's own function (the next definition after this module).
template <typename Fn>
Fn next(std::atomic<void*>& cache, const char* name) noexcept {
  void* f = cache.load(std::memory_order_acquire);
  if (!f) {
    f = dlsym(RTLD_NEXT, name);
    cache.store(f, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(f);
}
std::atomic<void*> g_free, g_realloc, g_usable;

void process_free(void* p) noexcept {
  if (auto f = next<void (*)(void*)>(g_free, "free")) f(p);
}

}  // namespace

#define STRATA_MODULE_FN extern "C" __attribute__((visibility("hidden")))

// Frees p: a block of this module's heap into it, any other to the process's free.
STRATA_NOINLINE_IF_ROUTED void own_free(void* p) noexcept {
  if (p && foreign(p)) return process_free(p);
  STRATA_OWN(strata_free)(p);
}
STRATA_NOINLINE_IF_ROUTED void own_free_sized(void* p, size_t n) noexcept {
  if (p && foreign(p)) return process_free(p);
  STRATA_OWN(strata_free_sized)(p, n);
}
STRATA_NOINLINE_IF_ROUTED void* own_realloc(void* p, size_t n) noexcept {
  if (p && foreign(p)) {
    auto f = next<void* (*)(void*, size_t)>(g_realloc, "realloc");
    return f ? f(p, n) : nullptr;
  }
  return STRATA_OWN(strata_realloc)(p, n);
}

#ifdef STRATA_SHARE_CLIENT
namespace {
using strata::share::Table;
const Table* shared() noexcept { return strata::share::client_table(); }
// Through the shared manager's table: a block the manager does not know goes
// to the process's functions, as a block this copy does not know does.
void shared_free(void* p) noexcept {  // a provider without free_any
  const Table* t = shared();
  if (!p) return;
  if (!t->owns(p)) return process_free(p);
  t->fn_strata_free(p);
}
void shared_free_sized(void* p, size_t n) noexcept {
  if (!p) return;
  const Table* t = shared();
  if (!t->owns(p)) return process_free(p);
  t->fn_strata_free_sized(p, n);
}
void* shared_realloc(void* p, size_t n) noexcept {
  const Table* t = shared();
  if (p && !t->owns(p)) {
    auto f = next<void* (*)(void*, size_t)>(g_realloc, "realloc");
    return f ? f(p, n) : nullptr;
  }
  return t->fn_strata_realloc(p, n);
}
// The module's malloc, free, calloc, realloc and sized free are one indirect
// jump through these: to this copy's functions, and to the shared ones from
// the switch on (strata_detail_route_shared): straight to the provider's
// functions where nothing is to be decided here — no test per call.
struct Route {
  std::atomic<void* (*)(size_t) noexcept> malloc{&STRATA_OWN(strata_malloc)};
  std::atomic<void* (*)(size_t, size_t) noexcept> calloc{&STRATA_OWN(strata_calloc)};
  std::atomic<void (*)(void*) noexcept> free{&own_free};
  std::atomic<void (*)(void*, size_t) noexcept> free_sized{&own_free_sized};
  std::atomic<void* (*)(void*, size_t) noexcept> realloc{&own_realloc};
};
constinit Route g_route;
}  // namespace
// Called by share/dispatch.cpp's client_use, once, when the module switches.
extern "C" __attribute__((visibility("hidden"))) void strata_detail_route_shared() noexcept {
  const Table* t = shared();
  g_route.malloc.store(t->fn_strata_malloc, std::memory_order_release);
  g_route.calloc.store(t->fn_strata_calloc, std::memory_order_release);
  g_route.free.store(t->free_any ? t->free_any : &shared_free, std::memory_order_release);
  g_route.free_sized.store(&shared_free_sized, std::memory_order_release);
  g_route.realloc.store(&shared_realloc, std::memory_order_release);
}
#define STRATA_ROUTED(fn, own) g_route.fn.load(std::memory_order_relaxed)
#else
#define STRATA_ROUTED(fn, own) own
#endif

STRATA_MODULE_FN void strata_detail_module_free(void* p) noexcept { STRATA_ROUTED(free, own_free)(p); }
// A shared manager's free for its users (share/table.hpp, free_any).
STRATA_MODULE_FN void strata_detail_free_any(void* p) noexcept { STRATA_ROUTED(free, own_free)(p); }
STRATA_MODULE_FN void strata_detail_module_free_sized(void* p, size_t n) noexcept {
  STRATA_ROUTED(free_sized, own_free_sized)(p, n);
}
STRATA_MODULE_FN void* malloc(size_t n) noexcept { return STRATA_ROUTED(malloc, STRATA_OWN(strata_malloc))(n); }
STRATA_MODULE_FN void free(void* p) noexcept { STRATA_ROUTED(free, own_free)(p); }
STRATA_MODULE_FN void* calloc(size_t c, size_t n) noexcept {
  return STRATA_ROUTED(calloc, STRATA_OWN(strata_calloc))(c, n);
}
STRATA_MODULE_FN void* realloc(void* p, size_t n) noexcept { return STRATA_ROUTED(realloc, own_realloc)(p, n); }
STRATA_MODULE_FN void* reallocarray(void* p, size_t c, size_t n) noexcept {
  size_t total;
  return glibc_array_size(c, n, &total) ? realloc(p, total) : nullptr;
}
STRATA_MODULE_FN void* memalign(size_t a, size_t n) noexcept { return glibc_memalign(a, n); }
STRATA_MODULE_FN void* aligned_alloc(size_t a, size_t n) noexcept { return glibc_memalign(a, n); }
STRATA_MODULE_FN int posix_memalign(void** out, size_t a, size_t n) noexcept {
  return glibc_posix_memalign(out, a, n);
}
STRATA_MODULE_FN void* valloc(size_t n) noexcept { return strata_aligned_alloc(4096, n); }
STRATA_MODULE_FN void* pvalloc(size_t n) noexcept { return glibc_pvalloc(n); }
STRATA_MODULE_FN size_t malloc_usable_size(void* p) noexcept {
#ifdef STRATA_SHARE_CLIENT
  if (const strata::share::Table* t = strata::share::client_table()) {
    if (p && !t->owns(p)) {
      auto f = next<size_t (*)(void*)>(g_usable, "malloc_usable_size");
      return f ? f(p) : 0;
    }
    return t->fn_strata_usable_size(p);
  }
#endif
  if (p && foreign(p)) {
    auto f = next<size_t (*)(void*)>(g_usable, "malloc_usable_size");
    return f ? f(p) : 0;
  }
  return strata_usable_size(p);
}
