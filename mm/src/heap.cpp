// strata — heap lifecycle: the process heap, pools, thread caches and thread
// slots, process initialisation, fork and thread/module exit.
//
// Thread exit: one pthread key per copy of strata; its destructor flushes the
// exiting thread's caches in every heap back to the heaps.  When the copy of
// strata lives in a module that is unloaded, the module destructor deletes the
// key, so no thread-exit hook is left pointing into unloaded code.  TLS holds
// only plain pointers without destructors.
#include <pthread.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "heap.hpp"
#include "log.hpp"
#include "os.hpp"

namespace strata::detail {

constinit Heap g_default_heap;
constinit ThreadCache g_empty_cache{};
std::atomic<std::uintptr_t> g_secret{0};
__thread ThreadCache* t_cache = &g_empty_cache;
__thread std::uint32_t t_slot = 0;  // slot + 1, 0 = none
std::atomic<std::uint32_t> g_medium_arena_mask{0};
std::atomic<std::uint64_t> g_medium_trim_delay_ms{kMediumTrimDelayMs};

namespace {

// Thread state: 0 no slot yet; 1 has a slot; 2 exiting (no more caches).
__thread std::uint8_t t_state = 0;
__thread bool t_busy = false;       // inside cache creation (re-entrancy guard)

constinit Lock g_heaps_lock;         // rank 1: g_heaps, slot bitmap
Heap* g_heaps = nullptr;
std::uint64_t g_slot_bits[kMaxThreadSlots / 64];
unsigned g_slot_words = 0;  // words of g_slot_bits ever written (g_heaps_lock): the rest is all zero

std::atomic<int> g_init_state{0};    // 0 not started, 1 running, 2 done
pthread_key_t g_key;
std::atomic<bool> g_key_live{false};
bool g_unloadable = true;            // cleared by the malloc-replacing library

void link_heap_locked(Heap* h) noexcept {
  h->prev = nullptr;
  h->next = g_heaps;
  if (g_heaps) g_heaps->prev = h;
  g_heaps = h;
}
void unlink_heap_locked(Heap* h) noexcept {
  if (h->prev) h->prev->next = h->next; else g_heaps = h->next;
  if (h->next) h->next->prev = h->prev;
  h->next = h->prev = nullptr;
}

int slot_alloc_locked() noexcept {
  for (unsigned w = 0; w < kMaxThreadSlots / 64; ++w) {
    if (~g_slot_bits[w]) {
      unsigned b = static_cast<unsigned>(__builtin_ctzll(~g_slot_bits[w]));
      g_slot_bits[w] |= std::uint64_t{1} << b;
      if (w >= g_slot_words) g_slot_words = w + 1;
      return static_cast<int>(w * 64 + b);
    }
  }
  return -1;
}
void slot_free_locked(std::uint32_t slot) noexcept { g_slot_bits[slot / 64] &= ~(std::uint64_t{1} << (slot % 64)); }

// Bump allocation from the heap's metadata regions (meta_lock held).
void* meta_alloc_locked(Heap* h, std::size_t size) noexcept {
  size = align_up(size, 64);
  if (h->meta_cursor + size > h->meta_end || !h->meta_cursor) {
    std::size_t region = align_up(size + 64, kChunkSize);
    auto* r = static_cast<MetaRegion*>(heap_map(h, region, ChunkKind::kMeta, nullptr, "strata:meta"));
    if (!r) return nullptr;
    r->next = h->meta_regions;
    r->size = region;
    h->meta_regions = r;
    h->meta_cursor = reinterpret_cast<char*>(r) + 64;
    h->meta_end = reinterpret_cast<char*>(r) + region;
  }
  void* p = h->meta_cursor;
  h->meta_cursor += size;
  return p;
}

// Detaches tc from its heap after it was flushed (meta_lock held).
void cache_detach_locked(Heap* h, ThreadCache* tc) noexcept {
  if (tc->prev) tc->prev->next = tc->next; else h->caches = tc->next;
  if (tc->next) tc->next->prev = tc->prev;
  ThreadCache** page = h->dir[tc->slot / kSlotsPerDirPage].load(std::memory_order_relaxed);
  if (page) page[tc->slot % kSlotsPerDirPage] = nullptr;
  tc->next = h->free_caches;
  tc->heap = nullptr;
  h->free_caches = tc;
  h->cache_count--;
}

void on_thread_exit(void* value) noexcept {
  auto slot = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(value) - 1);
  t_state = 2;
  t_cache = &g_empty_cache;
  LockGuard g(g_heaps_lock);
  for (Heap* h = g_heaps; h; h = h->next) {
    ThreadCache** page = h->dir[slot / kSlotsPerDirPage].load(std::memory_order_acquire);
    ThreadCache* tc = page ? page[slot % kSlotsPerDirPage] : nullptr;
    if (!tc) continue;
    cache_flush_all(tc);
    LockGuard m(h->meta_lock);
    cache_detach_locked(h, tc);
  }
  slot_free_locked(slot);
  t_slot = 0;
}

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
    fn(h->span_lock);
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
  // Only the forking thread lives on: give the caches of the others back.
  std::uint32_t mine = t_slot;
  LockGuard g(g_heaps_lock);
  for (Heap* h = g_heaps; h; h = h->next) {
    ThreadCache* tc = h->caches;
    while (tc) {
      ThreadCache* next = tc->next;
      if (tc->slot + 1 != mine) {
        cache_flush_all(tc);
        LockGuard m(h->meta_lock);
        cache_detach_locked(h, tc);
      }
      tc = next;
    }
  }
  // Only the words ever used are read and only the non-zero ones written:
  // touching an untouched page of the 8 KiB bitmap would cost the child a
  // page fault (reading one maps the zero page), writing a shared one a
  // copy-on-write fault.
  for (unsigned w = 0; w < g_slot_words; ++w)
    if (g_slot_bits[w]) g_slot_bits[w] = 0;
  if (mine) g_slot_bits[(mine - 1) / 64] |= std::uint64_t{1} << ((mine - 1) % 64);
}

}  // namespace

void secret_init() noexcept {
  if (g_secret.load(std::memory_order_acquire)) return;
  std::uintptr_t expected = 0;
  g_secret.compare_exchange_strong(expected, static_cast<std::uintptr_t>(os::random_u64()), std::memory_order_acq_rel);
}

void ensure_process_init() noexcept {
  int s = g_init_state.load(std::memory_order_acquire);
  if (STRATA_LIKELY(s == 2)) return;
  if (s == 1) return;  // another thread (or this one, re-entered) is initialising
  if (!g_init_state.compare_exchange_strong(s, 1, std::memory_order_acq_rel)) return;
  secret_init();
  if (const char* v = os::getenv_raw("STRATA_TRIM_DELAY_MS"); v && *v >= '0' && *v <= '9') {
    std::uint64_t ms = 0;
    for (; *v >= '0' && *v <= '9' && ms < (std::uint64_t{1} << 40); ++v) ms = ms * 10 + static_cast<std::uint64_t>(*v - '0');
    g_medium_trim_delay_ms.store(ms, std::memory_order_relaxed);
  }
  {
    unsigned cpus = os::cpu_count();
    std::uint32_t arenas = 1;
    while (arenas * 2 <= cpus && arenas * 2 <= kMediumArenas) arenas *= 2;
    g_medium_arena_mask.store(arenas - 1, std::memory_order_relaxed);
  }
  {
    LockGuard g(g_heaps_lock);
    if (!g_default_heap.next && !g_default_heap.prev && g_heaps != &g_default_heap) link_heap_locked(&g_default_heap);
  }
  if (pthread_key_create(&g_key, on_thread_exit) == 0) g_key_live.store(true, std::memory_order_release);
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  g_init_state.store(2, std::memory_order_release);
}

namespace {
// Counts delta in the heap's shared count of bytes handed out, and its peak.
void central_count(Heap* h, std::ptrdiff_t delta) noexcept {
  std::size_t now = h->central_bytes.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed) +
                    static_cast<std::size_t>(delta);
  // The peak is a sample: a racing update may lower it by one step; it is a
  // report, not an invariant.  The count itself may dip below zero for a
  // moment (a thread counts the frees of blocks whose handing out another
  // thread has not counted yet): no peak then.
  if (delta > 0 && static_cast<std::ptrdiff_t>(now) > 0 && now > h->peak_central_bytes.load(std::memory_order_relaxed))
    h->peak_central_bytes.store(now, std::memory_order_relaxed);
}
}  // namespace

void heap_account_central(Heap* h, std::ptrdiff_t delta) noexcept {
  if (ThreadCache* tc = cache_lookup(h)) {
    std::ptrdiff_t pending = tc->central_pending + delta;
    if (pending < kCentralAccountSlack && pending > -kCentralAccountSlack) {
      tc->central_pending = pending;
      return;
    }
    tc->central_pending = 0;
    delta = pending;
  }
  central_count(h, delta);
}

void heap_account_os(Heap* h, std::ptrdiff_t delta) noexcept {
  std::size_t now = h->os_bytes.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed) +
                    static_cast<std::size_t>(delta);
  std::size_t peak = h->peak_os_bytes.load(std::memory_order_relaxed);
  while (delta > 0 && now > peak && !h->peak_os_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void* heap_map(Heap* h, std::size_t size, ChunkKind kind, const void* owner, const char* name) noexcept {
  secret_init();
  void* p = os::map_aligned(size, kChunkSize);
  if (!p) return nullptr;
  if (!chunk_map::set_range(p, size, chunk_map::make(owner ? owner : p, kind))) {
    os::unmap(p, size);
    return nullptr;
  }
  if (name) os::name_region(p, size, name);
  h->map_calls.fetch_add(1, std::memory_order_relaxed);
  heap_account_os(h, static_cast<std::ptrdiff_t>(size));
  return p;
}

void heap_unmap(Heap* h, void* base, std::size_t size) noexcept {
  chunk_map::clear_range(base, size);
  os::unmap(base, size);
  heap_account_os(h, -static_cast<std::ptrdiff_t>(size));
}

ThreadCache* cache_lookup(Heap* h) noexcept {
  if (h == &g_default_heap) {
    ThreadCache* tc = t_cache;
    return tc == &g_empty_cache ? nullptr : tc;
  }
  std::uint32_t s = t_slot;
  if (!s) return nullptr;
  --s;
  ThreadCache** page = h->dir[s / kSlotsPerDirPage].load(std::memory_order_acquire);
  return page ? page[s % kSlotsPerDirPage] : nullptr;
}

ThreadCache* cache_for(Heap* h) noexcept {
  if (ThreadCache* tc = cache_lookup(h)) return tc;
  if (t_state == 2 || t_busy) return nullptr;
  ensure_process_init();
  if (g_init_state.load(std::memory_order_acquire) != 2 || !g_key_live.load(std::memory_order_acquire)) return nullptr;
  t_busy = true;
  ThreadCache* tc = nullptr;
  if (!t_slot) {
    int slot;
    {
      LockGuard g(g_heaps_lock);
      slot = slot_alloc_locked();
    }
    if (slot >= 0) {
      // pthread_setspecific may allocate (keys >= 32): t_busy keeps that off the cache path.
      if (pthread_setspecific(g_key, reinterpret_cast<void*>(static_cast<std::uintptr_t>(slot) + 1)) == 0) {
        t_slot = static_cast<std::uint32_t>(slot) + 1;
        t_state = 1;
      } else {
        LockGuard g(g_heaps_lock);
        slot_free_locked(static_cast<std::uint32_t>(slot));
      }
    }
  }
  if (t_slot) {
    std::uint32_t slot = t_slot - 1;
    LockGuard m(h->meta_lock);
    auto& dslot = h->dir[slot / kSlotsPerDirPage];
    ThreadCache** page = dslot.load(std::memory_order_relaxed);
    if (!page) {
      page = static_cast<ThreadCache**>(meta_alloc_locked(h, sizeof(ThreadCache*) * kSlotsPerDirPage));
      if (page) dslot.store(page, std::memory_order_release);
    }
    if (page) {
      tc = h->free_caches;
      if (tc) h->free_caches = tc->next;
      else tc = static_cast<ThreadCache*>(meta_alloc_locked(h, sizeof(ThreadCache)));
      if (tc) {
        std::memset(static_cast<void*>(tc), 0, sizeof(ThreadCache));
        tc->heap = h;
        tc->slot = slot;
        tc->medium_arena = &medium_arena_for(h);  // t_slot is slot + 1
        for (unsigned c = 0; c < kNumClasses; ++c) {
          tc->bins[c].max = tc->bins[c].room = static_cast<std::int32_t>(2 * batch_for_class(c));
          tc->foreign[c].max = tc->foreign[c].room = static_cast<std::int32_t>(batch_for_class(c));
        }
        for (unsigned c = 0; c < kNumMediumClasses; ++c)
          tc->medium_bins[c].max = tc->medium_bins[c].room = medium_cache_max(c);
        tc->next = h->caches;
        if (h->caches) h->caches->prev = tc;
        h->caches = tc;
        h->cache_count++;
        page[slot % kSlotsPerDirPage] = tc;
      }
    }
  }
  if (tc && h == &g_default_heap) t_cache = tc;
  t_busy = false;
  return tc;
}

void cache_flush_all(ThreadCache* tc) noexcept {
  small_flush_cache(tc);
  medium_cache_flush(tc);
  large_unpark(tc);
  // What the flush gave back was counted in the calling thread's cache,
  // which may be another one (fork's child flushes every other thread's).
  if (std::ptrdiff_t pending = tc->central_pending) {
    tc->central_pending = 0;
    central_count(tc->heap, pending);
  }
}

void medium_cache_flush(ThreadCache* tc) noexcept {
  Block* chain = nullptr;
  for (unsigned c = 0; c < kNumMediumClasses; ++c) {
    CacheBin& bin = tc->medium_bins[c];
    while (Block* b = bin.head) {
      bin.head = b->next;
      b->next = chain;
      chain = b;
    }
    bin.room = bin.max;
  }
  tc->medium_cached_bytes = 0;
  if (chain) medium_free_chain(tc->heap, chain);
}

Heap* heap_create() noexcept {
  ensure_process_init();
  std::size_t size = align_up(sizeof(Heap), kChunkSize);
  void* mem = os::map_aligned(size, kChunkSize);
  if (!mem) return nullptr;
  Heap* h = new (mem) Heap();
  h->magic = kHeapMagic;
  h->is_pool = true;
  if (!chunk_map::set_range(mem, size, chunk_map::make(mem, ChunkKind::kMeta))) {
    os::unmap(mem, size);
    return nullptr;
  }
  os::name_region(mem, size, "strata:pool");
  h->os_bytes.store(size, std::memory_order_relaxed);
  h->peak_os_bytes.store(size, std::memory_order_relaxed);
  h->map_calls.store(1, std::memory_order_relaxed);
  LockGuard g(g_heaps_lock);
  link_heap_locked(h);
  return h;
}

void heap_destroy(Heap* h) noexcept {
  {
    // Off the list first: exiting threads then no longer look at it.
    LockGuard g(g_heaps_lock);
    unlink_heap_locked(h);
  }
  small_release_all(h);
  medium_release_all(h);
  large_release_all(h);
  MetaRegion* r = h->meta_regions;
  while (r) {
    MetaRegion* next = r->next;
    heap_unmap(h, r, r->size);
    r = next;
  }
  h->magic = 0;
  std::size_t size = align_up(sizeof(Heap), kChunkSize);
  chunk_map::clear_range(h, size);
  os::unmap(h, size);
}

}  // namespace strata::detail

// Module unload: no thread-exit hook may outlive this copy's code.  The
// malloc-replacing library is never unloaded (-z nodelete) and keeps its key.
extern "C" __attribute__((visibility("hidden"))) void strata_detail_mark_not_unloadable() noexcept {
  strata::detail::g_unloadable = false;
}
__attribute__((destructor)) static void strata_module_fini() noexcept {
  using namespace strata::detail;
  if (g_unloadable && g_key_live.exchange(false)) pthread_key_delete(g_key);
}
