// strata — operator new/delete for libstrata.so: the C++17/20 forms routed to
// strata with the standard's semantics (new_handler retry, bad_alloc).
#include <strata/strata.h>

#include <cstddef>
#include <new>

namespace {

void* new_impl(std::size_t n, std::size_t align) {
  for (;;) {
    void* p = align <= 16 ? strata_malloc(n) : strata_aligned_alloc(align, n);
    if (p) return p;
    std::new_handler h = std::get_new_handler();
    if (!h) throw std::bad_alloc();
    h();
  }
}
void* new_nothrow(std::size_t n, std::size_t align) noexcept {
  try {
    return new_impl(n, align);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

#define STRATA_EXPORT __attribute__((visibility("default")))

STRATA_EXPORT void* operator new(std::size_t n) { return new_impl(n, 0); }
STRATA_EXPORT void* operator new[](std::size_t n) { return new_impl(n, 0); }
STRATA_EXPORT void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, 0); }
STRATA_EXPORT void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, 0); }
STRATA_EXPORT void* operator new(std::size_t n, std::align_val_t a) { return new_impl(n, static_cast<std::size_t>(a)); }
STRATA_EXPORT void* operator new[](std::size_t n, std::align_val_t a) { return new_impl(n, static_cast<std::size_t>(a)); }
STRATA_EXPORT void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(n, static_cast<std::size_t>(a));
}
STRATA_EXPORT void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_nothrow(n, static_cast<std::size_t>(a));
}

STRATA_EXPORT void operator delete(void* p) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete(void* p, std::size_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, std::size_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete(void* p, std::align_val_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete(void* p, std::size_t, std::align_val_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { strata_free(p); }
