// Every form of operator new / delete, called explicitly and through new
// expressions, must hand out strata blocks of the right size and alignment
// and take them back without an error report.  Built twice: without strata
// (run with LD_PRELOAD=libstrata.so) and linked to strata::override.
#define OV_DEFINE_GLOBALS
#include "ov_check.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

const ov_strata_api_t* S;

// Sizes across the three tiers: small (<= 2,624), medium (<= ~260 KiB), large.
constexpr std::size_t kSizes[] = {0, 1, 8, 24, 100, 256, 1000, 2624, 2625, 5000, 65536, 200000, 266224, 300000,
                                  1 << 21};
constexpr std::size_t kAligns[] = {32, 64, 128, 256, 512, 1024, 2048, 4096};
constexpr std::size_t kBigAligns[] = {8192, 65536, 1 << 20};

void fill(void* p, std::size_t n, unsigned char v) {
  if (n) std::memset(p, v, n);
}
void check_fill(const void* p, std::size_t n, unsigned char v) {
  auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; i += 509)
    if (b[i] != v) {
      OV_CHECK(false, "block %p byte %zu changed", p, i);
      return;
    }
  if (n) OV_CHECK(b[n - 1] == v, "block %p last byte changed", p);
}

void plain_forms() {
  for (std::size_t n : kSizes) {
    void* a = ::operator new(n);
    void* b = ::operator new[](n);
    void* c = ::operator new(n, std::nothrow);
    void* d = ::operator new[](n, std::nothrow);
    for (void* p : {a, b, c, d}) {
      OV_CHECK(p != nullptr, "new(%zu) returned null", n);
      if (!p) continue;
      OV_CHECK_STRATA_BLOCK(S, p, n);
      OV_CHECK_ALIGNED(p, __STDCPP_DEFAULT_NEW_ALIGNMENT__);
      fill(p, n, 0x5a);
    }
    for (void* p : {a, b, c, d})
      if (p) check_fill(p, n, 0x5a);
    ::operator delete(a, n);         // sized
    ::operator delete[](b, n);       // sized array
    ::operator delete(c, std::nothrow);
    ::operator delete[](d, std::nothrow);
    void* e = ::operator new(n);
    void* f = ::operator new[](n);
    OV_CHECK_STRATA_BLOCK(S, e, n);
    OV_CHECK_STRATA_BLOCK(S, f, n);
    ::operator delete(e);            // unsized
    ::operator delete[](f);
  }
  OV_CHECK(ov_strata_errors == 0, "plain forms: strata reported errors");
}

void aligned_forms(std::size_t al) {
  const std::align_val_t A{al};
  for (std::size_t n : kSizes) {
    void* p[8] = {
        ::operator new(n, A),
        ::operator new[](n, A),
        ::operator new(n, A, std::nothrow),
        ::operator new[](n, A, std::nothrow),
        ::operator new(n, A),
        ::operator new[](n, A),
        ::operator new(n, A, std::nothrow),
        ::operator new[](n, A, std::nothrow),
    };
    for (void* q : p) {
      OV_CHECK(q != nullptr, "new(%zu, align %zu) returned null", n, al);
      if (!q) continue;
      OV_CHECK_STRATA_BLOCK(S, q, n);
      OV_CHECK_ALIGNED(q, al);
      fill(q, n, 0xa5);
    }
    for (void* q : p)
      if (q) check_fill(q, n, 0xa5);
    ::operator delete(p[0], A);
    ::operator delete[](p[1], A);
    ::operator delete(p[2], n, A);            // sized aligned
    ::operator delete[](p[3], n, A);          // sized aligned array
    ::operator delete(p[4], A, std::nothrow);
    ::operator delete[](p[5], A, std::nothrow);
    ::operator delete(p[6], n, A);
    ::operator delete[](p[7], A);
  }
  int errs = ov_strata_errors;
  OV_CHECK(errs == 0, "aligned forms (alignment %zu): strata reported errors", al);
}

// New expressions: the compiler picks sized / aligned forms itself.
struct Plain {
  char bytes[40];
  Plain() { std::memset(bytes, 1, sizeof bytes); }
};
struct WithDtor {
  std::string s{"a string long enough to live on the heap, not in the SSO buffer"};
  ~WithDtor() { s.clear(); }
};
template <std::size_t Al>
struct alignas(Al) Over {
  unsigned char bytes[Al + 8];
  Over() { std::memset(bytes, 3, sizeof bytes); }
  ~Over() { bytes[0] = 0; }
};

template <std::size_t Al>
void over_aligned_expressions() {
  auto* one = new Over<Al>;  // operator new(size, align_val_t), delete(p, size, align_val_t)
  OV_CHECK_ALIGNED(one, Al);
  OV_CHECK_STRATA_BLOCK(S, one, sizeof(Over<Al>));
  delete one;
  auto* arr = new Over<Al>[7];  // array cookie + aligned array form
  OV_CHECK_ALIGNED(arr, Al);
  for (auto& o : arr[0].bytes) OV_CHECK(o == 3, "constructed");
  delete[] arr;
  auto* nt = new (std::nothrow) Over<Al>[3];
  OV_CHECK(nt != nullptr, "nothrow aligned array new");
  OV_CHECK_ALIGNED(nt, Al);
  delete[] nt;
  std::vector<Over<Al>> v(5);  // std::allocator uses the aligned forms
  for (int i = 0; i < 20; i++) v.emplace_back();
  OV_CHECK_ALIGNED(v.data(), Al);
  OV_CHECK_STRATA_BLOCK(S, v.data(), v.capacity() * sizeof(Over<Al>));
  auto u = std::make_unique<Over<Al>[]>(4);
  OV_CHECK_ALIGNED(u.get(), Al);
}

void expressions() {
  auto* p = new Plain;
  OV_CHECK_STRATA_BLOCK(S, p, sizeof(Plain));
  delete p;  // sized delete (-fsized-deallocation is on in C++14 and later)
  auto* a = new Plain[33];
  OV_CHECK_STRATA_BLOCK(S, a, sizeof(Plain) * 33);
  delete[] a;
  auto* w = new WithDtor[17];  // array with a cookie: sized delete[] passes the cookie too
  OV_CHECK_STRATA_BLOCK(S, w[16].s.data(), w[16].s.size());
  delete[] w;
  auto* nt = new (std::nothrow) WithDtor;
  OV_CHECK(nt != nullptr, "nothrow new expression");
  delete nt;
  over_aligned_expressions<32>();
  over_aligned_expressions<64>();
  over_aligned_expressions<128>();
  over_aligned_expressions<256>();
  over_aligned_expressions<512>();
  over_aligned_expressions<1024>();
  over_aligned_expressions<2048>();
  over_aligned_expressions<4096>();
  // Containers and strings: many small blocks, growth, shared_ptr control blocks.
  std::vector<std::string> strs;
  for (int i = 0; i < 20000; i++) strs.push_back(std::string(static_cast<std::size_t>(i % 300), 'x'));
  auto sp = std::make_shared<std::vector<int>>(100000, 7);
  OV_CHECK_STRATA_BLOCK(S, sp->data(), 100000 * sizeof(int));
  OV_CHECK(ov_strata_errors == 0, "new expressions: strata reported errors");
}

// Blocks from new may be released by another form of the same family only;
// but memory from malloc and new is one heap: check that interleaving is fine.
void mixed_with_malloc() {
  std::vector<void*> v;
  for (int i = 0; i < 4000; i++) {
    std::size_t n = static_cast<std::size_t>((i * 7919) % 9000);
    v.push_back(i % 2 ? std::malloc(n) : ::operator new(n));
  }
  for (std::size_t i = 0; i < v.size(); i++) {
    if (i % 2)
      std::free(v[i]);
    else
      ::operator delete(v[i]);
  }
}

// A sized delete naming more bytes than the block has is reported.
void wrong_size_is_reported() {
  void* p = ::operator new(100);
  std::size_t u = S->usable_size(p);
  int before = ov_strata_errors;
  ::operator delete(p, u + 4096);
  int after = ov_strata_errors;
  OV_CHECK(after == before + 1 && ov_last_error_kind == 7,
           "sized delete with a too large size: expected one STRATA_ERROR_WRONG_SIZE report, got %d reports "
           "(last kind %d)",
           after - before, static_cast<int>(ov_last_error_kind));
  ov_strata_errors = before;  // expected
}

}  // namespace

int main() {
  S = ov_require_strata("ov_new_forms");
  OV_CHECK(std::string(ov_defining_object("_Znwm")).find("libstrata") != std::string::npos,
           "operator new(size_t) resolves into %s", ov_defining_object("_Znwm"));
  OV_CHECK(std::string(ov_defining_object("_ZdlPvmSt11align_val_t")).find("libstrata") != std::string::npos,
           "operator delete(void*, size_t, align_val_t) resolves into %s",
           ov_defining_object("_ZdlPvmSt11align_val_t"));
  plain_forms();
  for (std::size_t al : kAligns) aligned_forms(al);
  for (std::size_t al : kBigAligns) aligned_forms(al);
  expressions();
  mixed_with_malloc();
  wrong_size_is_reported();
  return ov_finish("ov_new_forms");
}
