// C++ consumer of the shared, malloc-replacing library (strata::override /
// pkg-config strata-override): malloc/free and new/delete go through strata.
//
//   override_consumer_cxx [LIBDIR]   LIBDIR: libstrata.so must be loaded from there
#include "consumer_check.h"

#include <strata/strata.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace {

[[maybe_unused]] void check_owner(const char* sym, const char* libdir) {
  const char* owner = consumer_symbol_owner(sym);
  if (!std::strstr(owner, "libstrata.so") || (libdir && !consumer_path_under(owner, libdir))) {
    std::fprintf(stderr, "error: %s is defined by '%s', not by %s/libstrata.so\n", sym, owner,
                 libdir ? libdir : "<any dir>");
    ++consumer_failures;
  }
}

[[maybe_unused]] void check_strata_block(const void* p, std::size_t size, const char* what) {
  int errors = consumer_errors;
  std::size_t u = strata_usable_size(p);
  if (consumer_errors != errors || u < size || strata_pool_of(p) != nullptr) {
    std::fprintf(stderr, "%s: %p is not a strata block of >= %zu bytes (usable %zu)\n", what, p, size, u);
    ++consumer_failures;
  }
}

struct alignas(128) Overaligned {
  char bytes[300];
};

}  // namespace

int main(int argc, char** argv) {
  const char* libdir = argc > 1 ? argv[1] : nullptr;
  strata_set_error_handler(consumer_error_handler, nullptr);

  {
    std::vector<int, strata::allocator<int>> v(1000, 7);
    CONSUMER_CHECK(strata_usable_size(v.data()) >= 1000 * sizeof(int));
  }
  check_owner("strata_malloc", libdir);

#ifndef STRATA_CONSUMER_SANITIZED
  check_owner("malloc", libdir);
  check_owner("free", libdir);
  check_owner("_Znwm", libdir);       // operator new(size_t)
  check_owner("_ZdlPv", libdir);      // operator delete(void*)
  check_owner("_Znam", libdir);       // operator new[](size_t)
  check_owner("_ZdaPv", libdir);      // operator delete[](void*)
  check_owner("_ZnwmSt11align_val_t", libdir);
  check_owner("_ZdlPvSt11align_val_t", libdir);
  check_owner("_ZnwmRKSt9nothrow_t", libdir);
  check_owner("_ZdlPvm", libdir);     // sized delete

  constexpr int N = 64;
  void* blocks[N];
  strata_heap_summary_t before = consumer_summary();
  for (auto& b : blocks) b = std::malloc(100);
  strata_heap_summary_t after = consumer_summary();
  if (after.small_blocks < before.small_blocks + N) {
    std::fprintf(stderr, "malloc(100) x %d: strata small_blocks %zu -> %zu\n", N, before.small_blocks,
                 after.small_blocks);
    ++consumer_failures;
  }
  for (auto* b : blocks) check_strata_block(b, 100, "malloc(100)");
  for (auto* b : blocks) std::free(b);

  std::uint64_t* objs[N];
  before = consumer_summary();
  for (auto& o : objs) o = new std::uint64_t(42);
  after = consumer_summary();
  if (after.small_blocks < before.small_blocks + N) {
    std::fprintf(stderr, "new uint64_t x %d: strata small_blocks %zu -> %zu\n", N, before.small_blocks,
                 after.small_blocks);
    ++consumer_failures;
  }
  for (auto* o : objs) check_strata_block(o, sizeof(std::uint64_t), "new uint64_t");
  for (auto* o : objs) delete o;

  auto* arr = new char[5000];
  check_strata_block(arr, 5000, "new char[5000]");
  delete[] arr;

  auto* ov = new Overaligned;
  CONSUMER_CHECK(reinterpret_cast<std::uintptr_t>(ov) % 128 == 0);
  check_strata_block(ov, sizeof(Overaligned), "new Overaligned");
  delete ov;

  auto* nt = new (std::nothrow) int[10];
  CONSUMER_CHECK(nt != nullptr);
  check_strata_block(nt, 10 * sizeof(int), "new (nothrow) int[10]");
  delete[] nt;

  // Standard containers with the default allocator land in strata.
  std::vector<double> v(10000, 1.0);
  check_strata_block(v.data(), 10000 * sizeof(double), "std::vector<double>");
  std::string s(1000, 'x');
  check_strata_block(s.data(), 1000, "std::string");

  // A refused operator new throws std::bad_alloc (the pointer escapes through
  // a volatile so that the new/delete pair cannot be elided).
  static char* volatile sink;
  static volatile std::size_t huge_size = std::size_t(1) << 62;
  bool threw = false;
  try {
    sink = new char[huge_size];
    delete[] sink;
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CONSUMER_CHECK(threw);
#else
  std::puts("sanitizer build: malloc/new are interposed by the sanitizer runtime; routing checks skipped");
#endif

  CONSUMER_CHECK(consumer_errors == 0);
  return consumer_finish("override_consumer (C++)");
}
