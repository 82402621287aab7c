// strata — the malloc family for libstrata.so: replaces glibc's allocator for
// the whole process when linked or preloaded.  (The complete drop-in work —
// every glibc edge case and introspection call — is tracked separately.)
#include <errno.h>
#include <malloc.h>
#include <strata/strata.h>
#include <unistd.h>

#include <cstring>

extern "C" __attribute__((visibility("hidden"))) void strata_detail_mark_not_unloadable() noexcept;

namespace {
__attribute__((constructor)) void mark() { strata_detail_mark_not_unloadable(); }
}  // namespace

#define STRATA_EXPORT extern "C" __attribute__((visibility("default")))

STRATA_EXPORT void* malloc(size_t n) noexcept { return strata_malloc(n); }
STRATA_EXPORT void free(void* p) noexcept { strata_free(p); }
STRATA_EXPORT void* calloc(size_t c, size_t n) noexcept { return strata_calloc(c, n); }
STRATA_EXPORT void* realloc(void* p, size_t n) noexcept { return strata_realloc(p, n); }
STRATA_EXPORT void* reallocarray(void* p, size_t c, size_t n) noexcept {
  size_t total;
  if (__builtin_mul_overflow(c, n, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return strata_realloc(p, total);
}
STRATA_EXPORT void* aligned_alloc(size_t a, size_t n) noexcept { return strata_aligned_alloc(a, n); }
STRATA_EXPORT void* memalign(size_t a, size_t n) noexcept { return strata_aligned_alloc(a, n); }
STRATA_EXPORT int posix_memalign(void** out, size_t a, size_t n) noexcept {
  if (a < sizeof(void*) || (a & (a - 1))) return EINVAL;
  int saved = errno;
  void* p = strata_aligned_alloc(a, n);
  errno = saved;
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
STRATA_EXPORT void* valloc(size_t n) noexcept { return strata_aligned_alloc(4096, n); }
STRATA_EXPORT void* pvalloc(size_t n) noexcept {
  size_t r = (n + 4095) & ~size_t{4095};
  if (r < n) {
    errno = ENOMEM;
    return nullptr;
  }
  return strata_aligned_alloc(4096, r ? r : 4096);
}
STRATA_EXPORT size_t malloc_usable_size(void* p) noexcept { return strata_usable_size(p); }
