// operator new's standard semantics under a preloaded libstrata.so that does
// not link the C++ runtime (issue #3): the library reaches the program's
// std::get_new_handler, std::__throw_bad_alloc and nothrow operator new by
// name, on the failure path.  Built three times:
//   dropin_new_preloaded  a C++ program run with LD_PRELOAD=libstrata.so
//                         (libstdc++ in the global scope);
//   dropin_new_linked     the same with libstrata.so linked (DT_NEEDED);
//   dropin_new_module     a module that dropin_c_host (a C program, no
//                         libstdc++ of its own) dlopen()s RTLD_LOCAL, as
//                         Python does with extension modules: libstdc++ is
//                         then only in the module's local scope.
// Each runs dropin_new_checks(); it returns the number of failures.
//
// The allocations must really fail: sizes near SIZE_MAX/2 always do, and a
// real shortage is made with RLIMIT_AS for the "handler frees a reserve, the
// retry succeeds" cases.
#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <typeinfo>

namespace {

int g_failures;
#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);    \
      std::fprintf(stderr, __VA_ARGS__);                              \
      std::fputc('\n', stderr);                                       \
      ++g_failures;                                                   \
    }                                                                 \
  } while (0)

constexpr std::size_t kHuge = SIZE_MAX / 2;
const std::align_val_t kAlign{4096};
void* volatile g_sink;  // results escape, so no new/delete pair is elided

using Usable = std::size_t (*)(const void*);
Usable g_usable;  // strata_usable_size, found at run time

// ---- handlers -------------------------------------------------------------------
int g_calls;
void* g_reserve;

void throwing_handler() {
  ++g_calls;
  throw std::bad_alloc();
}
// Uninstalls itself on its third call: the throwing forms then throw, the
// nothrow forms return null.
void three_calls_handler() {
  if (++g_calls == 3) std::set_new_handler(nullptr);
}
// Gives the reserve back: the retry must succeed.
void reserve_handler() {
  ++g_calls;
  if (g_reserve) {
    ::operator delete(g_reserve);
    g_reserve = nullptr;
  }
}

// ---- the cases ------------------------------------------------------------------
template <typename F>
void expect_bad_alloc(const char* what, F f) {
  std::set_new_handler(nullptr);
  bool caught = false;
  try {
    g_sink = f();
    CHECK(false, "%s: returned %p instead of throwing", what, g_sink);
  } catch (const std::bad_alloc& e) {
    caught = true;
    CHECK(typeid(e) == typeid(std::bad_alloc), "%s: threw %s, expected std::bad_alloc", what, typeid(e).name());
  } catch (...) {
    CHECK(false, "%s: threw something other than std::bad_alloc", what);
  }
  CHECK(caught, "%s: no std::bad_alloc", what);
}

template <typename F>
void expect_bad_alloc_after_3(const char* what, F f) {
  g_calls = 0;
  std::set_new_handler(three_calls_handler);
  bool caught = false;
  try {
    g_sink = f();
  } catch (const std::bad_alloc&) {
    caught = true;
  }
  CHECK(caught, "%s: no std::bad_alloc once the handler uninstalled itself", what);
  CHECK(g_calls == 3, "%s: the handler ran %d times, expected 3", what, g_calls);
  std::set_new_handler(nullptr);
}

// f is a nothrow form.
template <typename F>
void expect_null(const char* what, std::new_handler h, int expected_calls, F f) {
  g_calls = 0;
  std::set_new_handler(h);
  void* p = reinterpret_cast<void*>(1);
  try {
    p = f();
  } catch (...) {
    CHECK(false, "%s: a nothrow form threw", what);
  }
  CHECK(p == nullptr, "%s: returned %p, expected null", what, p);
  CHECK(g_calls == expected_calls, "%s: the handler ran %d times, expected %d", what, g_calls, expected_calls);
  std::set_new_handler(nullptr);
}

// Address space in use, from /proc/self/statm (pages).
std::size_t address_space_bytes() {
  unsigned long pages = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return pages * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// Under an address-space limit that leaves 64 MiB, a 192 MiB request fails
// until the handler frees a 256 MiB reserve; then the retry must succeed.
template <typename F, typename D>
void expect_retry_succeeds(const char* what, std::size_t align, F f, D del) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  constexpr std::size_t kReserve = 256 * kMiB, kRequest = 192 * kMiB;
  rlimit old{};
  if (getrlimit(RLIMIT_AS, &old) != 0) {
    CHECK(false, "%s: getrlimit failed", what);
    return;
  }
  g_reserve = ::operator new(kReserve);
  rlimit tight = old;
  tight.rlim_cur = address_space_bytes() + 64 * kMiB;
  if (old.rlim_cur != RLIM_INFINITY && tight.rlim_cur > old.rlim_cur) tight.rlim_cur = old.rlim_cur;
  if (setrlimit(RLIMIT_AS, &tight) != 0) {
    CHECK(false, "%s: setrlimit failed", what);
    ::operator delete(g_reserve);
    g_reserve = nullptr;
    return;
  }
  g_calls = 0;
  std::set_new_handler(reserve_handler);
  void* p = nullptr;
  try {
    p = f(kRequest);
  } catch (const std::bad_alloc&) {
    CHECK(false, "%s: std::bad_alloc although the handler freed enough", what);
  }
  std::set_new_handler(nullptr);
  setrlimit(RLIMIT_AS, &old);
  CHECK(p != nullptr, "%s: null although the handler freed enough", what);
  CHECK(g_calls == 1, "%s: the handler ran %d times, expected 1 (the request must fail before it)", what,
        g_calls);
  CHECK(g_reserve == nullptr, "%s: the handler did not run", what);
  if (p) {
    CHECK(align == 0 || reinterpret_cast<std::uintptr_t>(p) % align == 0, "%s: %p is not %zu-aligned", what, p,
          align);
    CHECK(!g_usable || g_usable(p) >= kRequest, "%s: strata_usable_size(%p) = %zu, below the request", what, p,
          g_usable(p));
    std::memset(p, 0x5a, 4096);
  }
  if (g_reserve) ::operator delete(g_reserve);
  g_reserve = nullptr;
  if (p) del(p, kRequest);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int dropin_new_checks(void) {
  g_failures = 0;
  // strata must be the one answering: operator new is libstrata.so's.
  Dl_info info{};
  void* op_new = dlsym(RTLD_DEFAULT, "_Znwm");
  CHECK(op_new && dladdr(op_new, &info) && info.dli_fname && std::strstr(info.dli_fname, "libstrata"),
        "operator new comes from %s, not libstrata.so (run with LD_PRELOAD=libstrata.so)",
        info.dli_fname ? info.dli_fname : "?");
  g_usable = reinterpret_cast<Usable>(dlsym(RTLD_DEFAULT, "strata_usable_size"));
  CHECK(g_usable != nullptr, "strata_usable_size not found");
  if (g_failures) return g_failures;

  // Every form works and frees (sized and aligned deletes included).
  {
    void* a = ::operator new(100);
    void* b = ::operator new[](5000);
    void* c = ::operator new(300, kAlign);
    void* d = ::operator new[](70000, kAlign, std::nothrow);
    void* e = ::operator new(1, std::nothrow);
    CHECK(a && b && c && d && e, "a satisfiable request failed");
    CHECK(reinterpret_cast<std::uintptr_t>(c) % 4096 == 0 && reinterpret_cast<std::uintptr_t>(d) % 4096 == 0,
          "aligned new: %p %p not 4096-aligned", c, d);
    CHECK(g_usable(a) >= 100 && g_usable(b) >= 5000 && g_usable(d) >= 70000, "blocks smaller than asked");
    ::operator delete(a, 100);
    ::operator delete[](b, 5000);
    ::operator delete(c, 300, kAlign);
    ::operator delete[](d, kAlign);
    ::operator delete(e, std::nothrow);
  }

  // No handler: the throwing forms throw std::bad_alloc.
  expect_bad_alloc("new(huge)", [] { return ::operator new(kHuge); });
  expect_bad_alloc("new[](huge)", [] { return ::operator new[](kHuge); });
  expect_bad_alloc("new(huge, align)", [] { return ::operator new(kHuge, kAlign); });
  expect_bad_alloc("new[](huge, align)", [] { return ::operator new[](kHuge, kAlign); });
  expect_bad_alloc("new(huge, align 8)", [] { return ::operator new(kHuge, std::align_val_t{8}); });

  // A handler that uninstalls itself: called until then, then std::bad_alloc.
  expect_bad_alloc_after_3("new(huge) + handler", [] { return ::operator new(kHuge); });
  expect_bad_alloc_after_3("new[](huge, align) + handler", [] { return ::operator new[](kHuge, kAlign); });

  // No handler: the nothrow forms return null without calling anything.
  expect_null("new(huge, nothrow)", nullptr, 0, [] { return ::operator new(kHuge, std::nothrow); });
  expect_null("new[](huge, nothrow)", nullptr, 0, [] { return ::operator new[](kHuge, std::nothrow); });
  expect_null("new(huge, align, nothrow)", nullptr, 0, [] { return ::operator new(kHuge, kAlign, std::nothrow); });
  expect_null("new[](huge, align, nothrow)", nullptr, 0,
              [] { return ::operator new[](kHuge, kAlign, std::nothrow); });

  // A handler that throws std::bad_alloc: the nothrow forms return null.
  expect_null("new(huge, nothrow) + throwing handler", throwing_handler, 1,
              [] { return ::operator new(kHuge, std::nothrow); });
  expect_null("new[](huge, nothrow) + throwing handler", throwing_handler, 1,
              [] { return ::operator new[](kHuge, std::nothrow); });
  expect_null("new(huge, align, nothrow) + throwing handler", throwing_handler, 1,
              [] { return ::operator new(kHuge, kAlign, std::nothrow); });
  expect_null("new[](huge, align, nothrow) + throwing handler", throwing_handler, 1,
              [] { return ::operator new[](kHuge, kAlign, std::nothrow); });

  // A handler that uninstalls itself: the nothrow forms call it, then null.
  expect_null("new(huge, nothrow) + handler", three_calls_handler, 3,
              [] { return ::operator new(kHuge, std::nothrow); });
  expect_null("new[](huge, align, nothrow) + handler", three_calls_handler, 3,
              [] { return ::operator new[](kHuge, kAlign, std::nothrow); });

  // A handler that frees memory: the retry succeeds, for every form.
  auto del = [](void* p, std::size_t n) { ::operator delete(p, n); };
  auto del_array = [](void* p, std::size_t n) { ::operator delete[](p, n); };
  auto del_aligned = [](void* p, std::size_t n) { ::operator delete(p, n, kAlign); };
  expect_retry_succeeds("new + reserve handler", 0, [](std::size_t n) { return ::operator new(n); }, del);
  expect_retry_succeeds("new[] + reserve handler", 0, [](std::size_t n) { return ::operator new[](n); }, del_array);
  expect_retry_succeeds("new(align) + reserve handler", 4096,
                        [](std::size_t n) { return ::operator new(n, kAlign); }, del_aligned);
  expect_retry_succeeds("new(nothrow) + reserve handler", 0,
                        [](std::size_t n) { return ::operator new(n, std::nothrow); }, del);
  expect_retry_succeeds("new[](nothrow) + reserve handler", 0,
                        [](std::size_t n) { return ::operator new[](n, std::nothrow); }, del_array);
  expect_retry_succeeds("new(align, nothrow) + reserve handler", 4096,
                        [](std::size_t n) { return ::operator new(n, kAlign, std::nothrow); }, del_aligned);

  std::fprintf(stderr, "dropin_new_checks: %d failure(s)\n", g_failures);
  return g_failures;
}

#ifdef DROPIN_MAIN
int main() { return dropin_new_checks() == 0 ? 0 : 1; }
#endif
