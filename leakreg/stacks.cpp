// leakreg — call stacks for the leak report (stacks.hpp).
// Layer: leakreg.
#include "stacks.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <elfutils/libdwfl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "../report/report.hpp"
#include "lock.hpp"
#include "options.hpp"
#include "table.hpp"
#include "track.hpp"

namespace strata::leakreg {

using detail::Lock;
using detail::LockGuard;

namespace {

// ---- capture ----------------------------------------------------------------

using BacktraceFn = int (*)(void**, int);
std::atomic<BacktraceFn> g_backtrace{nullptr};
std::atomic<bool> g_on{false};

__thread int t_disabled = 0;   // strata_leak_tracking_disable depth
__thread bool t_in_hook = false;
__thread int t_internal = 0;

struct StackEntry {
  std::uint64_t key;   // the frames' hash (never 0)
  std::uint32_t depth;
  std::uintptr_t* frames;  // in g_frames
};
struct AddrStack {
  std::uint64_t key;    // the block's address
  std::uint64_t stack;  // its stack's key
};

constexpr unsigned kStripes = 64;
struct Stripe {
  Lock lock;
  Table<AddrStack> addrs;
};
Stripe g_stripes[kStripes];
Lock g_stack_lock;
Table<StackEntry> g_stacks;
Arena g_frames;

Stripe& stripe_of(std::uintptr_t a) noexcept { return g_stripes[mix(a) & (kStripes - 1)]; }

std::uint64_t intern(void* const* frames, unsigned n) noexcept {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  for (unsigned i = 0; i < n; ++i) h = mix(h ^ reinterpret_cast<std::uintptr_t>(frames[i]));
  if (h <= kInternalStack) h = kInternalStack + 1;
  LockGuard g(g_stack_lock);
  for (;; h = mix(h) | 2) {  // a different stack under the same hash: probe on
    bool fresh;
    StackEntry* e = g_stacks.insert(h, &fresh);
    if (!e) return 0;
    if (fresh) {
      auto* f = static_cast<std::uintptr_t*>(g_frames.alloc(n * sizeof(std::uintptr_t)));
      if (!f) {
        g_stacks.erase(h);
        return 0;
      }
      std::memcpy(f, frames, n * sizeof(std::uintptr_t));
      e->depth = n;
      e->frames = f;
      return h;
    }
    if (e->depth == n && std::memcmp(e->frames, frames, n * sizeof(std::uintptr_t)) == 0) return h;
  }
}

// libunwind's own locks (its caches, taken inside unw_backtrace) are not
// fork-safe: a fork while another thread walks its stack left them held in
// the child, whose first capture then waited forever (found by
// leak_registry's fork test under debug-full).  A capture runs inside a
// gate that fork's prepare closes and waits to drain, before it takes the
// layer's locks; a capture that finds the gate closed waits for the fork.
std::atomic<int> g_unwinding{0};      // captures inside unw_backtrace
std::atomic<bool> g_forking{false};  // the gate is closed
__thread bool t_forker = false;      // this thread closed it (its later handlers may allocate)
int capture(BacktraceFn bt, void** frames) noexcept {
  for (;;) {
    g_unwinding.fetch_add(1);  // (seq_cst, as the prepare's store and load: one of the two sees the other)
    if (!g_forking.load()) break;
    g_unwinding.fetch_sub(1);
    if (t_forker) return 0;  // no stack for what the forking thread allocates meanwhile
    while (g_forking.load(std::memory_order_acquire)) sched_yield();
  }
  int n = bt(frames, static_cast<int>(kMaxFrames));
  g_unwinding.fetch_sub(1, std::memory_order_release);
  return n;
}

void on_alloc(detail::Heap*, void* p) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  Stripe& s = stripe_of(a);
  std::uint64_t key = 0;
  if (t_internal) {
    key = kInternalStack;
  } else if (!t_disabled && !t_in_hook) {
    t_in_hook = true;  // whatever the capture allocates is not tracked
    void* frames[kMaxFrames];
    BacktraceFn bt = g_backtrace.load(std::memory_order_relaxed);
    int n = bt ? capture(bt, frames) : 0;
    if (n > 0) key = intern(frames, static_cast<unsigned>(n));
    t_in_hook = false;
  }
  LockGuard g(s.lock);
  if (!key) {
    s.addrs.erase(a);  // untracked now: the stack of an earlier block here is not this one's
    return;
  }
  bool fresh;
  if (AddrStack* e = s.addrs.insert(a, &fresh)) e->stack = key;
}

bool load_unwinder() noexcept {
  if (g_backtrace.load(std::memory_order_acquire)) return true;
  // libunwind's unw_backtrace: walks the caller's stack from the unwind
  // tables (no frame pointers needed) without allocating.
  void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return false;
  auto fn = reinterpret_cast<BacktraceFn>(dlsym(lib, "unw_backtrace"));
  if (!fn) return false;  // the library stays loaded: cheaper than a dlclose race
  g_backtrace.store(fn, std::memory_order_release);
  return true;
}

}  // namespace

bool stacks_on() noexcept { return g_on.load(std::memory_order_acquire); }

bool stacks_switch(bool on) noexcept {
  static Lock switch_lock;
  LockGuard g(switch_lock);
  if (on == stacks_on()) return on;
  if (on) {
    // The hook goes in first, so that what dlopen allocates for libunwind
    // is recorded as strata's own, not the program's.
    g_on.store(true, std::memory_order_release);
    detail::track_install(on_alloc);
    internal_begin();
    bool ok = load_unwinder();
    internal_end();
    if (ok) return true;
    detail::track_install(nullptr);
    g_on.store(false, std::memory_order_release);
    return false;
  }
  detail::track_install(nullptr);
  g_on.store(false, std::memory_order_release);
  // The stacks recorded so far would be wrong for blocks handed out while
  // tracking is off: dropped.
  for (Stripe& s : g_stripes) {
    LockGuard sg(s.lock);
    s.addrs.clear();
  }
  return false;
}

void stacks_from_environment() noexcept {
  if (detail::option_enabled(detail::Option::kLeakStacks)) stacks_switch(true);
}

std::uint64_t stack_of(const void* p) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  Stripe& s = stripe_of(a);
  LockGuard g(s.lock);
  const AddrStack* e = s.addrs.find(a);
  return e ? e->stack : 0;
}

unsigned stack_frames(std::uint64_t key, std::uintptr_t* out) noexcept {
  LockGuard g(g_stack_lock);
  const StackEntry* e = g_stacks.find(key);
  if (!e) return 0;
  std::memcpy(out, e->frames, e->depth * sizeof(std::uintptr_t));
  return e->depth;
}

void stacks_fork_prepare() noexcept {
  t_forker = true;
  g_forking.store(true);  // no capture starts now; those under way end
  while (g_unwinding.load() != 0) sched_yield();
  for (Stripe& s : g_stripes) s.lock.lock();
  g_stack_lock.lock();
}
void stacks_fork_parent() noexcept {
  g_stack_lock.unlock();
  for (Stripe& s : g_stripes) s.lock.unlock();
  g_forking.store(false, std::memory_order_release);
  t_forker = false;
}
void stacks_fork_child() noexcept {
  g_stack_lock.reset_after_fork();
  for (Stripe& s : g_stripes) s.lock.reset_after_fork();
  g_unwinding.store(0, std::memory_order_relaxed);
  g_forking.store(false, std::memory_order_release);
  t_forker = false;
}

void internal_begin() noexcept { ++t_internal; }
void internal_end() noexcept {
  if (t_internal > 0) --t_internal;
}
void tracking_disable() noexcept { ++t_disabled; }
void tracking_enable() noexcept {
  if (t_disabled > 0) --t_disabled;
}

// ---- symbolising --------------------------------------------------------------

namespace {

struct Dw {
  bool tried = false;
  decltype(&dwfl_begin) begin;
  decltype(&dwfl_linux_proc_report) proc_report;
  decltype(&dwfl_report_end) report_end;
  decltype(&dwfl_addrmodule) addrmodule;
  decltype(&dwfl_module_addrname) addrname;
  decltype(&dwfl_module_info) info;
  decltype(&dwfl_module_getsrc) getsrc;
  decltype(&dwfl_lineinfo) lineinfo;
  decltype(&dwfl_end) end;
  Dwfl_Callbacks callbacks;
  bool ok = false;
};
Dw g_dw;
Lock g_dw_lock;

template <class F>
bool sym(void* lib, const char* name, F& out) noexcept {
  out = reinterpret_cast<F>(dlsym(lib, name));
  return out != nullptr;
}

bool load_libdw() noexcept {
  LockGuard g(g_dw_lock);
  if (g_dw.tried) return g_dw.ok;
  g_dw.tried = true;
  void* lib = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return false;
  decltype(&dwfl_linux_proc_find_elf) find_elf;
  decltype(&dwfl_standard_find_debuginfo) find_debuginfo;
  g_dw.ok = sym(lib, "dwfl_begin", g_dw.begin) && sym(lib, "dwfl_linux_proc_report", g_dw.proc_report) &&
            sym(lib, "dwfl_report_end", g_dw.report_end) && sym(lib, "dwfl_addrmodule", g_dw.addrmodule) &&
            sym(lib, "dwfl_module_addrname", g_dw.addrname) && sym(lib, "dwfl_module_info", g_dw.info) &&
            sym(lib, "dwfl_module_getsrc", g_dw.getsrc) && sym(lib, "dwfl_lineinfo", g_dw.lineinfo) &&
            sym(lib, "dwfl_end", g_dw.end) && sym(lib, "dwfl_linux_proc_find_elf", find_elf) &&
            sym(lib, "dwfl_standard_find_debuginfo", find_debuginfo);
  if (g_dw.ok) {
    std::memset(&g_dw.callbacks, 0, sizeof g_dw.callbacks);
    g_dw.callbacks.find_elf = find_elf;
    g_dw.callbacks.find_debuginfo = find_debuginfo;
  }
  return g_dw.ok;
}

// C++ function names: libstdc++'s demangler when the program has it (it
// allocates through the program's malloc: the report's snapshot is taken by
// then, and tracking is off for the reporting thread).
void demangle_function(char* name, std::size_t cap) noexcept {
  if (name[0] != '_' || name[1] != 'Z') return;
  using Demangle = char* (*)(const char*, char*, std::size_t*, int*);
  auto fn = reinterpret_cast<Demangle>(dlsym(RTLD_DEFAULT, "__cxa_demangle"));
  if (!fn) return;
  int status = -1;
  char* d = fn(name, nullptr, nullptr, &status);
  if (d && status == 0) report::copy_string(name, cap, d);
  std::free(d);
}

}  // namespace

Symbolizer::Symbolizer() noexcept {
  if (!load_libdw()) return;
  Dwfl* d = g_dw.begin(&g_dw.callbacks);
  if (!d) return;
  if (g_dw.proc_report(d, ::getpid()) != 0 || g_dw.report_end(d, nullptr, nullptr) != 0) {
    g_dw.end(d);
    return;
  }
  dwfl_ = d;
}

Symbolizer::~Symbolizer() {
  if (dwfl_) g_dw.end(static_cast<Dwfl*>(dwfl_));
}

void Symbolizer::resolve(std::uintptr_t pc, Frame& f) noexcept {
  std::memset(&f, 0, sizeof f);
  f.pc = pc;
  // A return address: the call is the instruction before it.
  const std::uintptr_t at = pc ? pc - 1 : pc;
  if (dwfl_) {
    auto* d = static_cast<Dwfl*>(dwfl_);
    if (Dwfl_Module* m = g_dw.addrmodule(d, at)) {
      Dwarf_Addr start = 0;
      const char* file = nullptr;
      const char* name = g_dw.info(m, nullptr, &start, nullptr, nullptr, nullptr, &file, nullptr);
      report::copy_string(f.module, sizeof f.module, file ? file : name);
      f.offset = pc - start;
      report::copy_string(f.function, sizeof f.function, g_dw.addrname(m, at));
      if (Dwfl_Line* line = g_dw.getsrc(m, at)) {
        int lineno = 0;
        const char* src = g_dw.lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
        report::copy_string(f.file, sizeof f.file, src);
        f.line = lineno > 0 ? static_cast<unsigned>(lineno) : 0;
      }
    }
  }
  if (!f.module[0] || !f.function[0]) {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(at), &info)) {
      if (!f.module[0] && info.dli_fname) {
        report::copy_string(f.module, sizeof f.module, info.dli_fname);
        f.offset = pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
      }
      if (!f.function[0] && info.dli_sname) report::copy_string(f.function, sizeof f.function, info.dli_sname);
    }
  }
  demangle_function(f.function, sizeof f.function);
}

bool Symbolizer::is_strata_frame(const Frame& f) noexcept {
  static const char* const kEntries[] = {
      "malloc", "calloc", "realloc", "reallocarray", "free", "memalign", "aligned_alloc", "posix_memalign",
      "valloc", "pvalloc", "__libc_malloc", "__libc_calloc", "__libc_realloc", "__libc_memalign"};
  const char* n = f.function;
  if (!n[0]) return false;
  if (std::strncmp(n, "strata_", 7) == 0 || std::strncmp(n, "strata::", 8) == 0) return true;
  if (std::strncmp(n, "operator new", 12) == 0) return true;
  for (const char* e : kEntries)
    if (std::strcmp(n, e) == 0) return true;
  return false;
}

}  // namespace strata::leakreg
