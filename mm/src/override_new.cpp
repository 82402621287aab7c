// strata — operator new/delete: every C++17/20 form routed to strata with
// the standard's semantics (new_handler retry, bad_alloc; nothrow forms return
// null).  Sized deletes check the size against the block (a size larger than
// the block is reported as STRATA_ERROR_WRONG_SIZE, the block is still freed
// correctly).  Built into libstrata.so and, alone, into libstrata_new_delete.a
// (strata::new_delete) for programs that want strata for C++ objects only.
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
STRATA_EXPORT void operator delete(void* p, std::size_t n) noexcept { strata_free_sized(p, n); }
STRATA_EXPORT void operator delete[](void* p, std::size_t n) noexcept { strata_free_sized(p, n); }
STRATA_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete(void* p, std::align_val_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete(void* p, std::size_t n, std::align_val_t) noexcept { strata_free_sized(p, n); }
STRATA_EXPORT void operator delete[](void* p, std::size_t n, std::align_val_t) noexcept { strata_free_sized(p, n); }
STRATA_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { strata_free(p); }
STRATA_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { strata_free(p); }
