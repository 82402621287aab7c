// strata — this copy of strata in its process: initialisation, fork and
// the finalisation point (process.hpp).
#include "process.hpp"
#include "purge.hpp"

#include <link.h>
#include <pthread.h>

#include "error.hpp"
#include "heap.hpp"
#include "log.hpp"
#include "options.hpp"
#include "os.hpp"

namespace strata::detail {

namespace {

std::atomic<int> g_init_state{0};  // 0 not started, 1 running, 2 done
bool g_unloadable = true;          // cleared by the malloc-replacing library

struct Finalizer {
  void (*fn)(void*);
  void* ctx;
};
constinit Lock g_fini_lock;
Finalizer g_finalizers[kMaxFinalizers];
unsigned g_finalizer_count = 0;

// ---- fork: every lock is taken before fork and released in both processes.
void for_each_heap_lock(void (*fn)(Lock&)) noexcept {
  for (Heap* h = g_heaps; h; h = h->next) {
    fn(h->meta_lock);
    for (auto& c : h->classes) fn(c.lock);
    // Arenas in index order; those beyond the mask are never locked (and
    // their pages, 8 KiB each, are not written after fork).
    std::uint32_t arenas = g_medium_arena_mask.load(std::memory_order_relaxed) + 1;
    for (std::uint32_t i = 0; i < arenas; ++i) fn(h->medium_locks[i]);
    fn(h->large.lock);
    fn(h->spans.lock);
  }
}
void fork_prepare() noexcept {
  g_heaps_lock.lock();
  for_each_heap_lock([](Lock& l) { l.lock(); });
}
void fork_parent() noexcept {
  for_each_heap_lock([](Lock& l) { l.unlock(); });
  g_heaps_lock.unlock();
}
void fork_child() noexcept {
  for_each_heap_lock([](Lock& l) { l.reset_after_fork(); });
  g_heaps_lock.reset_after_fork();
  thread_cache_after_fork_child();
  purge_thread_after_fork_child();
}

// Whether this copy of strata is part of the main program (the first object
// dl_iterate_phdr lists), found from the address of one of its functions.
bool in_main_program(const void* code) noexcept {
  struct Find {
    std::uintptr_t addr;
    int index = -1, seen = 0;
  } f{reinterpret_cast<std::uintptr_t>(code)};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* ctx) -> int {
        auto* find = static_cast<Find*>(ctx);
        for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          if (ph.p_type == PT_LOAD && find->addr >= lo && find->addr < lo + ph.p_memsz) {
            find->index = find->seen;
            return 1;
          }
        }
        find->seen++;
        return 0;
      },
      &f);
  return f.index == 0;
}

}  // namespace

ReleaseReport process_release_all() noexcept {
  ReleaseReport r = heap_release_all();
  if (option_enabled(Option::kVerbose)) {
    MessageBuilder m;
    m.str("strata: released ").dec(r.heaps).str(r.heaps == 1 ? " heap, " : " heaps, ").bytes(r.os_bytes)
        .str(" unmapped; ").dec(r.live_blocks).str(" blocks (").bytes(r.live_bytes).str(") were still live\n");
    m.write(2);
  }
  return r;
}

bool process_initialised() noexcept { return g_init_state.load(std::memory_order_acquire) == 2; }
bool process_unloadable() noexcept { return g_unloadable; }

void ensure_process_init() noexcept {
  int s = g_init_state.load(std::memory_order_acquire);
  if (STRATA_LIKELY(s == 2)) return;
  if (s == 1) return;  // another thread (or this one, re-entered) is initialising
  if (!g_init_state.compare_exchange_strong(s, 1, std::memory_order_acq_rel)) return;
  secret_init();
  g_medium_trim_delay_ms.store(option_value(Option::kTrimDelayMs), std::memory_order_relaxed);
  {
    unsigned cpus = os::cpu_count();
    std::uint32_t arenas = 1;
    while (arenas * 2 <= cpus && arenas * 2 <= kMediumArenas) arenas *= 2;
    g_medium_arena_mask.store(arenas - 1, std::memory_order_relaxed);
  }
  {
    LockGuard g(g_heaps_lock);
    if (!g_default_heap.next && !g_default_heap.prev && g_heaps != &g_default_heap) heap_link_locked(&g_default_heap);
  }
  thread_cache_init();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  g_init_state.store(2, std::memory_order_release);
}

bool process_on_finalize(void (*fn)(void*), void* ctx) noexcept {
  LockGuard g(g_fini_lock);
  if (g_finalizer_count == kMaxFinalizers) return false;
  g_finalizers[g_finalizer_count++] = {fn, ctx};
  return true;
}

}  // namespace strata::detail

// The malloc-replacing library is never unloaded (-z nodelete) and keeps its key.
extern "C" __attribute__((visibility("hidden"))) void strata_detail_mark_not_unloadable() noexcept {
  strata::detail::g_unloadable = false;
}

// The finalisation point: process exit, or the unload of the module that
// carries this copy (a static archive's member is linked only when
// referenced: cache_for and heap_create reference this file through
// ensure_process_init).  Priority 101, the last of the module's
// destructors: it runs after the module's C++ static destructors, which
// may still free blocks (checked by the unload tests).
static void strata_module_fini() noexcept;
__attribute__((destructor(101))) static void strata_module_fini() noexcept {
  using namespace strata::detail;
  for (;;) {
    Finalizer f;
    {
      LockGuard g(g_fini_lock);
      if (!g_finalizer_count) break;
      f = g_finalizers[--g_finalizer_count];
    }
    f.fn(f.ctx);
  }
  if (!g_unloadable) return;  // libstrata.so: never unloaded, keeps its heap and its key
  purge_thread_stop();        // the background purge runs this copy's code
  // A copy in a shared library gives back everything its heaps hold: the
  // library is being unloaded (or the process ends, which this code cannot
  // tell apart).  Not a copy in the main program: at exit, threads that are
  // still running may use its blocks until the very end.
  if (process_initialised() && option_enabled(Option::kReleaseOnUnload) &&
      !in_main_program(reinterpret_cast<const void*>(&strata_module_fini))) {
    process_release_all();
    silence_errors();  // a late free from a thread that outlives the copy is ignored
  }
  // No thread-exit hook may outlive this copy's code.
  thread_cache_fini();
}
