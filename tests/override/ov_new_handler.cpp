// operator new's new_handler protocol under strata: on failure the installed
// handler is called, then the allocation is retried; with no handler the
// throwing forms throw std::bad_alloc and the nothrow forms return null.
#define OV_DEFINE_GLOBALS
#include "ov_check.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

int g_calls;
void* g_reserve;

// Counts its calls; frees a reserve on the first, uninstalls itself on the third.
void handler() {
  ++g_calls;
  if (g_calls == 1 && g_reserve) {
    std::free(g_reserve);
    g_reserve = nullptr;
  }
  if (g_calls == 3) std::set_new_handler(nullptr);
}

constexpr std::size_t kHuge = SIZE_MAX / 2;
volatile std::size_t g_huge = kHuge;  // hides the constant from the compiler's size checks

template <typename F>
void expect_bad_alloc_after_3(const char* what, F f) {
  g_calls = 0;
  g_reserve = std::malloc(1000);
  std::set_new_handler(handler);
  bool threw = false;
  try {
    void* p = f();
    OV_CHECK(false, "%s: returned %p instead of throwing", what, p);
  } catch (const std::bad_alloc&) {
    threw = true;
  } catch (...) {
    OV_CHECK(false, "%s: threw something other than std::bad_alloc", what);
  }
  OV_CHECK(threw, "%s: no std::bad_alloc", what);
  OV_CHECK(g_calls == 3, "%s: the new_handler ran %d times, expected 3", what, g_calls);
  OV_CHECK(std::get_new_handler() == nullptr, "%s: handler still installed", what);
  std::free(g_reserve);
  g_reserve = nullptr;
}

template <typename F>
void expect_null_after_3(const char* what, F f) {
  g_calls = 0;
  std::set_new_handler(handler);
  void* p = f();
  OV_CHECK(p == nullptr, "%s: returned %p, expected null", what, p);
  OV_CHECK(g_calls == 3, "%s: the new_handler ran %d times, expected 3", what, g_calls);
  std::set_new_handler(nullptr);
}

template <typename F>
void expect_null_no_handler(const char* what, F f) {
  std::set_new_handler(nullptr);
  void* p = nullptr;
  try {
    p = f();
  } catch (...) {
    OV_CHECK(false, "%s: a nothrow form threw", what);
  }
  OV_CHECK(p == nullptr, "%s: returned %p, expected null", what, p);
}

void counting_handler() { ++g_calls; }

}  // namespace

int main() {
  const ov_strata_api_t* S = ov_require_strata("ov_new_handler");
  const std::align_val_t A{256};
  expect_bad_alloc_after_3("operator new", [] { return ::operator new(kHuge); });
  expect_bad_alloc_after_3("operator new[]", [] { return ::operator new[](kHuge); });
  expect_bad_alloc_after_3("operator new aligned", [&] { return ::operator new(kHuge, A); });
  expect_bad_alloc_after_3("operator new[] aligned", [&] { return ::operator new[](kHuge, A); });
  expect_bad_alloc_after_3("new expression", [] { return static_cast<void*>(new char[g_huge]); });
  expect_null_after_3("operator new nothrow", [] { return ::operator new(kHuge, std::nothrow); });
  expect_null_after_3("operator new[] nothrow", [] { return ::operator new[](kHuge, std::nothrow); });
  expect_null_after_3("operator new aligned nothrow", [&] { return ::operator new(kHuge, A, std::nothrow); });
  expect_null_after_3("operator new[] aligned nothrow", [&] { return ::operator new[](kHuge, A, std::nothrow); });
  expect_null_no_handler("operator new nothrow", [] { return ::operator new(kHuge, std::nothrow); });
  expect_null_no_handler("operator new[] aligned nothrow", [&] { return ::operator new[](kHuge, A, std::nothrow); });
  expect_null_no_handler("new (nothrow) expression", [] { return static_cast<void*>(new (std::nothrow) char[g_huge]); });

  // std::bad_array_new_length for a negative / overflowing array length.
  {
    volatile std::size_t count = SIZE_MAX / 4;
    bool threw = false;
    try {
      auto* p = new std::uint64_t[count];
      delete[] p;
    } catch (const std::bad_alloc&) {  // bad_array_new_length derives from bad_alloc
      threw = true;
    }
    OV_CHECK(threw, "new uint64_t[SIZE_MAX/4] did not throw");
  }

  // A satisfiable request never calls the handler.
  g_calls = 0;
  std::set_new_handler(counting_handler);
  void* ok = ::operator new(1000);
  OV_CHECK(ok && g_calls == 0, "a satisfiable request called the new_handler");
  OV_CHECK_STRATA_BLOCK(S, ok, 1000);
  ::operator delete(ok);
  std::set_new_handler(nullptr);

  // malloc of an impossible size: NULL with ENOMEM, no handler involvement.
  errno = 0;
  void* m = std::malloc(kHuge);
  OV_CHECK(m == nullptr && errno == ENOMEM, "malloc(SIZE_MAX/2) = %p, errno %d", m, errno);
  return ov_finish("ov_new_handler");
}
