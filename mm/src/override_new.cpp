// strata — operator new/delete: every C++17/20 form routed to strata with
// the standard's semantics (new_handler retry, bad_alloc; nothrow forms return
// null).  Sized deletes check the size against the block (a size larger than
// the block is reported as STRATA_ERROR_WRONG_SIZE, the block is still freed
// correctly).  Built into libstrata.so and, alone, into libstrata_new_delete.a
// (strata::new_delete) for programs that want strata for C++ objects only.
//
// libstrata.so (STRATA_NEW_LAZY_RUNTIME) must not depend on the C++ runtime:
// it is preloaded into C programs too, and loading libstdc++ (with libm and
// libgcc_s) costs every process start about a millisecond.  Only C++ programs
// call operator new, and they have their runtime loaded already, so the .so
// reaches it on the failure path only, by name:
//   - std::get_new_handler() of the program's runtime (the handler the
//     program installed lives there, not in any copy of ours);
//   - std::__throw_bad_alloc() to throw;
//   - the runtime's own nothrow operator new, which calls the throwing form
//     (ours, through the PLT) in a try block, as the standard specifies: the
//     nothrow forms use it when a new_handler is installed, so that a handler
//     that throws leads to null without a catch (and a personality routine,
//     i.e. libstdc++/libgcc_s) in this library.
// libstrata_new_delete.a is linked into C++ programs and uses std:: directly;
// libstrata_module_heap.a (STRATA_MODULE_HEAP) into modules, with hidden
// definitions (module_heap.cpp).
#include <strata/strata.h>

#include <cstddef>
#include <new>

#ifdef STRATA_NEW_LAZY_RUNTIME
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#endif

namespace {

inline void* allocate(std::size_t n, std::size_t align) noexcept {
  return align <= 16 ? strata_malloc(n) : strata_aligned_alloc(align, n);
}

#ifdef STRATA_NEW_LAZY_RUNTIME

// ---- the program's C++ runtime, found by name on the failure path ----------
static_assert(sizeof(std::size_t) == 8, "the mangled names below are those of a 64-bit size_t");

// A symbol of the C++ runtime that comes after this library.  RTLD_NEXT covers
// a C++ program (its runtime is in the global scope, after libstrata.so, or
// strata's operator new would not be the one called).  A runtime loaded only
// in a local scope (a C program that dlopen()ed a C++ module RTLD_LOCAL, as
// Python does with extension modules) is found by its soname; RTLD_NOLOAD
// never loads it, and the reference taken is kept so the cached pointer
// stays valid.  (A process with two C++ runtimes, libstdc++ and libc++, gets
// the first one found; the other's new_handler is not seen.)
void* runtime_symbol(const char* name) noexcept {
  if (void* p = dlsym(RTLD_NEXT, name)) return p;
  static const char* const kRuntimes[] = {"libstdc++.so.6", "libc++.so.1"};
  for (const char* lib : kRuntimes) {
    if (void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD)) {
      if (void* p = dlsym(h, name)) return p;
      dlclose(h);
    }
  }
  return nullptr;
}

// A lazily resolved runtime function; a failed look-up is not cached (the
// runtime may be dlopen()ed later).
template <typename Fn>
class RuntimeFn {
 public:
  constexpr RuntimeFn(const char* name, const char* alt = nullptr) : name_(name), alt_(alt) {}
  Fn get() noexcept {
    void* p = __atomic_load_n(&p_, __ATOMIC_ACQUIRE);
    if (!p) {
      p = runtime_symbol(name_);
      if (!p && alt_) p = runtime_symbol(alt_);
      if (p) __atomic_store_n(&p_, p, __ATOMIC_RELEASE);
    }
    return reinterpret_cast<Fn>(p);
  }

 private:
  const char* name_;
  const char* alt_;
  void* p_ = nullptr;
};

using GetNewHandlerFn = std::new_handler (*)() noexcept;
using ThrowFn = void (*)();
using NothrowNewFn = void* (*)(std::size_t, const std::nothrow_t&) noexcept;
using NothrowAlignedNewFn = void* (*)(std::size_t, std::align_val_t, const std::nothrow_t&) noexcept;

RuntimeFn<GetNewHandlerFn> g_get_new_handler{"_ZSt15get_new_handlerv"};                  // std::get_new_handler()
RuntimeFn<ThrowFn> g_throw_bad_alloc{"_ZSt17__throw_bad_allocv",                         // libstdc++
                                     "_ZNSt3__117__throw_bad_allocEv"};                 // libc++
RuntimeFn<NothrowNewFn> g_nothrow_new{"_ZnwmRKSt9nothrow_t"};                            // new(n, nothrow)
RuntimeFn<NothrowAlignedNewFn> g_nothrow_aligned_new{"_ZnwmSt11align_val_tRKSt9nothrow_t"};  // new(n, al, nothrow)

std::new_handler current_new_handler() noexcept {
  GetNewHandlerFn f = g_get_new_handler.get();
  return f ? f() : nullptr;  // no C++ runtime, no handler
}

[[noreturn]] __attribute__((cold, noinline)) void throw_bad_alloc() {
  if (ThrowFn f = g_throw_bad_alloc.get()) f();
  // Reached only when operator new is called in a process without a C++ runtime.
  static const char kMsg[] = "strata: operator new: out of memory and no C++ runtime to throw std::bad_alloc\n";
  if (write(2, kMsg, sizeof kMsg - 1) < 0) {
  }
  std::abort();
}

__attribute__((cold, noinline)) void* new_failed(std::size_t n, std::size_t align) {
  for (;;) {
    std::new_handler h = current_new_handler();
    if (!h) throw_bad_alloc();
    h();
    if (void* p = allocate(n, align)) return p;
  }
}

__attribute__((cold, noinline)) void* nothrow_failed(std::size_t n, std::size_t align) noexcept {
  // Without a handler the throwing form would throw at once: null.
  if (!current_new_handler()) return nullptr;
  // With one, it may free memory (retry) or throw (null): the runtime's
  // nothrow form calls our throwing form in a try block and does both.
  static constexpr std::nothrow_t kNothrow{};  // not std::nothrow: that object lives in libstdc++
  if (align <= 16) {
    if (NothrowNewFn f = g_nothrow_new.get()) return f(n, kNothrow);
  } else {
    if (NothrowAlignedNewFn f = g_nothrow_aligned_new.get()) return f(n, std::align_val_t{align}, kNothrow);
  }
  return nullptr;  // a handler but no runtime's operator new: cannot happen
}

inline void* new_impl(std::size_t n, std::size_t align) {
  void* p = allocate(n, align);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return new_failed(n, align);
}
inline void* new_nothrow(std::size_t n, std::size_t align) noexcept {
  void* p = allocate(n, align);
  if (__builtin_expect(p != nullptr, 1)) return p;
  return nothrow_failed(n, align);
}

#else  // libstrata_new_delete.a: linked into C++ programs, std:: at hand

void* new_impl(std::size_t n, std::size_t align) {
  for (;;) {
    void* p = allocate(n, align);
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

#endif

}  // namespace

#ifdef STRATA_MODULE_HEAP
// libstrata_module_heap.a: the module's own operator new and delete, hidden;
// a delete of a block of the process's operator new goes to the process's
// free (module_heap.cpp).
extern "C" __attribute__((visibility("hidden"))) void strata_detail_module_free(void* p) noexcept;
extern "C" __attribute__((visibility("hidden"))) void strata_detail_module_free_sized(void* p, size_t n) noexcept;
// <new> declares them with default visibility, which an attribute cannot
// change: they are made local to the module by the link option the
// target carries (--exclude-libs for this archive).
#define STRATA_EXPORT
#define strata_free strata_detail_module_free
#define strata_free_sized strata_detail_module_free_sized
#else
#define STRATA_EXPORT __attribute__((visibility("default")))
#endif

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
