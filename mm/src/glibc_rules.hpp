// strata — glibc 2.36's rules for the aligned members of the malloc family
// and for the overflow of a count times a size, over strata's API: the one
// copy that the process's malloc family (override_malloc.cpp) and a module's
// own (module_heap.cpp) both export.
// Layer: API.
#pragma once
#include <errno.h>
#include <stdint.h>
#include <strata/strata.h>

namespace strata::detail {

// memalign and aligned_alloc: an alignment of 0 means none, any other is
// rounded up to a power of two (only posix_memalign says EINVAL).
inline void* glibc_memalign(size_t a, size_t n) noexcept {
  if (a <= 16) return strata_malloc(n);
  if (a & (a - 1)) {
    if (a > (SIZE_MAX >> 1)) {
      errno = EINVAL;
      return nullptr;
    }
    a = size_t{1} << (64 - __builtin_clzl(a));
  }
  return strata_aligned_alloc(a, n);
}
// posix_memalign: EINVAL for an alignment that is not a power of two of at
// least a pointer, ENOMEM when out of memory; errno untouched.
inline int glibc_posix_memalign(void** out, size_t a, size_t n) noexcept {
  if (a < sizeof(void*) || (a & (a - 1))) return EINVAL;
  int saved = errno;
  void* p = strata_aligned_alloc(a, n);
  errno = saved;
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
// pvalloc: whole pages, at least one.
inline void* glibc_pvalloc(size_t n) noexcept {
  size_t r = (n + 4095) & ~size_t{4095};
  if (r < n) {
    errno = ENOMEM;
    return nullptr;
  }
  return strata_aligned_alloc(4096, r ? r : 4096);
}
// c * n, or false with errno ENOMEM when it overflows (reallocarray).
inline bool glibc_array_size(size_t c, size_t n, size_t* total) noexcept {
  if (!__builtin_mul_overflow(c, n, total)) return true;
  errno = ENOMEM;
  return false;
}

}  // namespace strata::detail
