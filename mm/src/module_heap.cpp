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
#include "client.hpp"  // share/: a strata::share module may use another module's heap
#endif

namespace {

using namespace strata::detail;

// Whether p is a block of the process's malloc rather than of this module's
// strata: an address the chunk map does not know, or one strata gave back to
// the OS that is mapped again (by the process's malloc, say).  Reads only
// the chunk map, then (for the second case) asks the kernel.
bool foreign(const void* p) noexcept {
#ifdef STRATA_SHARE_CLIENT
  if (const strata::share::Table* t = strata::share::client_table()) return !t->owns(p);
#endif
  ChunkKind k = chunk_map::kind_of(chunk_map::lookup(reinterpret_cast<std::uintptr_t>(p)));
  if (k == ChunkKind::kNone) return true;
  return k == ChunkKind::kFreed && os::is_mapped(p);
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
STRATA_MODULE_FN void strata_detail_module_free(void* p) noexcept {
  if (p && foreign(p)) return process_free(p);
  strata_free(p);
}
STRATA_MODULE_FN void strata_detail_module_free_sized(void* p, size_t n) noexcept {
  if (p && foreign(p)) return process_free(p);
  strata_free_sized(p, n);
}

STRATA_MODULE_FN void* malloc(size_t n) noexcept { return strata_malloc(n); }
STRATA_MODULE_FN void free(void* p) noexcept { strata_detail_module_free(p); }
STRATA_MODULE_FN void* calloc(size_t c, size_t n) noexcept { return strata_calloc(c, n); }
STRATA_MODULE_FN void* realloc(void* p, size_t n) noexcept {
  if (p && foreign(p)) {
    auto f = next<void* (*)(void*, size_t)>(g_realloc, "realloc");
    return f ? f(p, n) : nullptr;
  }
  return strata_realloc(p, n);
}
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
  if (p && foreign(p)) {
    auto f = next<size_t (*)(void*)>(g_usable, "malloc_usable_size");
    return f ? f(p) : 0;
  }
  return strata_usable_size(p);
}
