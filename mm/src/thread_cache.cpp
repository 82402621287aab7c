// strata — thread caches: thread slots, the TLS pointers, creating a
// thread's cache of a heap, flushing it, and thread exit.
//
// Thread exit: one pthread key per copy of strata; its destructor flushes the
// exiting thread's caches in every heap back to the heaps.  When the copy of
// strata lives in a module that is unloaded, the module's finalisation
// deletes the key (thread_cache_fini), so no thread-exit hook is left
// pointing into unloaded code.  TLS holds only plain pointers without
// destructors.
// Layer: beside the heap (calls the tiers' flush functions and mapping.cpp).
#include "thread_cache.hpp"

#include <pthread.h>

#include <cstring>

#include "chunk_map.hpp"
#include "classify.hpp"
#include "error.hpp"  // a medium cache list or tag found overwritten is reported
#include "heap.hpp"
#include "list.hpp"
#include "medium.hpp"
#include "os.hpp"
#include "process.hpp"
#include "purge.hpp"
#include "thread_local.hpp"
#include "track.hpp"

namespace strata::detail {

constinit ThreadCache g_empty_cache{};
__thread ThreadCache* t_cache = &g_empty_cache;
__thread std::uint32_t t_slot = 0;  // slot + 1, 0 = none

namespace {

using CacheList = IntrusiveList<&ThreadCache::next, &ThreadCache::prev>;

// Thread state: 0 no slot yet; 1 has a slot; 2 exiting (no more caches).
__thread std::uint8_t t_state = 0;
__thread bool t_busy = false;  // inside cache creation (re-entrancy guard)

// Thread slots (g_heaps_lock).
std::uint64_t g_slot_bits[kMaxThreadSlots / 64];
unsigned g_slot_words = 0;  // words of g_slot_bits ever written: the rest is all zero

pthread_key_t g_key;
std::atomic<bool> g_key_live{false};
std::atomic<int> g_exits_running{0};  // on_thread_exit calls in progress (thread_cache_fini waits for them)

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

// Detaches tc from its heap after it was flushed (meta_lock held).
void cache_detach_locked(Heap* h, ThreadCache* tc) noexcept {
  CacheList::remove(h->caches, tc);
  ThreadCache** page = h->dir[tc->slot / kSlotsPerDirPage].load(std::memory_order_relaxed);
  if (page) page[tc->slot % kSlotsPerDirPage] = nullptr;
  tc->next = h->free_caches;
  tc->heap = nullptr;
  h->free_caches = tc;
  h->cache_count--;
}

void on_thread_exit(void* value) noexcept {
  g_exits_running.fetch_add(1, std::memory_order_acq_rel);
  auto slot = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(value) - 1);
  // Thread-local blocks first, while the thread may still allocate: their
  // finalizers run module code that may free or allocate.
  if (ThreadCache* tc = t_cache; tc != &g_empty_cache && tc->tl_count) thread_local_release_thread(tc);
  t_state = 2;
  t_cache = &g_empty_cache;
  {
    LockGuard g(g_heaps_lock);
    for (Heap* h = g_heaps; h; h = h->next) {
      ThreadCache** page = h->dir[slot / kSlotsPerDirPage].load(std::memory_order_acquire);
      ThreadCache* tc = page ? page[slot % kSlotsPerDirPage] : nullptr;
      if (!tc) continue;
      large_unpark(tc, false);  // the thread's last freed large block: nobody else reuses it soon
      cache_flush_all(tc);
      // What the thread emptied goes back at once: nobody reuses an exited
      // thread's spans soon, and no later call may come (docs/design.md).
      small_purge(h, 0);
      LockGuard m(h->meta_lock);
      cache_detach_locked(h, tc);
    }
    slot_free_locked(slot);
  }
  t_slot = 0;
  // The last thing this copy's code does for the exiting thread: the
  // module's unload waits for the count to drop (thread_cache_fini).
  g_exits_running.fetch_sub(1, std::memory_order_acq_rel);
}

// fork's child: a thread that did not survive the fork may have been
// between two stores of a bin's push or pop (its list one block longer or
// shorter than max - room says), so its bins are recounted from their lists
// before they are flushed, every link checked to be a block of the bin's
// class (a live medium start) in tc's heap; a list is cut at a link that is
// not.  At most the one block in flight is lost (to this child).
template <class Valid>
void repair_bin(CacheBin& bin, Valid valid) noexcept {
  std::int32_t n = 0;
  Block* last = nullptr;  // the last block kept
  for (std::uintptr_t a = bin.head; a != kBinEnd; a = link_of(last)) {
    if (n == 3 * bin.max || !link_plausible(a) || !valid(reinterpret_cast<Block*>(a))) {  // (a bin may hold up to 2.5 times max)
      if (last) set_link(last, kBinEnd);
      else bin.head = kBinEnd;
      break;
    }
    ++n;
    last = reinterpret_cast<Block*>(a);
  }
  bin.room = bin.max - n;
}

void cache_repair_after_fork(ThreadCache* tc) noexcept {
  Heap* h = tc->heap;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    auto small_ok = [h, c](Block* b) { return small_link_valid(h, c, reinterpret_cast<std::uintptr_t>(b)); };
    repair_bin(tc->bins[c], small_ok);
    repair_bin(tc->foreign[c], small_ok);
  }
  std::size_t bytes = 0;
  for (CacheBin& bin : tc->medium_bins) {
    repair_bin(bin, [h, &bytes](Block* b) {
      auto a = reinterpret_cast<std::uintptr_t>(b);
      std::uintptr_t e = chunk_map::lookup(a);
      if (chunk_map::kind_of(e) != ChunkKind::kMedium) return false;
      auto* pool = chunk_map::owner_of<MediumPool>(e);
      if (pool->heap != h || !medium_is_live_start(pool, b)) return false;
      bytes += medium_block_size_racy(b);
      return true;
    });
  }
  tc->medium_cached_bytes = bytes;
}

}  // namespace

bool thread_cache_init() noexcept {
  if (pthread_key_create(&g_key, on_thread_exit) != 0) return false;
  g_key_live.store(true, std::memory_order_release);
  return true;
}

void thread_cache_fini() noexcept {
  if (!g_key_live.exchange(false)) return;
  pthread_key_delete(g_key);
  // A thread that was already inside on_thread_exit when the key went away
  // finishes before this copy's code may be unmapped.  (glibc reads a key's
  // destructor and calls it without a lock: a thread between those two
  // steps is not seen here; that window is a few instructions long.)
  while (g_exits_running.load(std::memory_order_acquire) != 0) os::yield();
}

void thread_cache_after_fork_child() noexcept {
  // Only the forking thread lives on: give the caches of the others back.
  std::uint32_t mine = t_slot;
  // Their thread-local blocks first, with no strata lock held (the frees
  // may set up this thread's cache); the child has one thread, nothing
  // changes the list meanwhile but the frees, which add at its front.
  for (ThreadCache* tc = g_default_heap.caches; tc; tc = tc->next)
    if (tc->slot + 1 != mine && tc->tl_count) thread_local_drop_thread(tc);
  LockGuard g(g_heaps_lock);
  for (Heap* h = g_heaps; h; h = h->next) {
    ThreadCache* tc = h->caches;
    while (tc) {
      ThreadCache* next = tc->next;
      if (tc->slot + 1 != mine) {
        cache_repair_after_fork(tc);
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

void thread_cache_reset_all(Heap* h) noexcept {
  LockGuard m(h->meta_lock);
  for (ThreadCache* tc = h->caches; tc; tc = tc->next) {
    for (unsigned c = 0; c < kNumClasses; ++c) {
      bin_clear(tc->bins[c]);
      bin_clear(tc->foreign[c]);
      tc->owned[c] = tc->own_partial[c] = nullptr;
    }
    for (CacheBin& bin : tc->medium_bins) bin_clear(bin);
    tc->medium_cached_bytes = 0;
    __atomic_store_n(&tc->parked_large, nullptr, __ATOMIC_RELAXED);
    __atomic_store_n(&tc->parked_large_bytes, 0, __ATOMIC_RELAXED);
    tc->parked_seen = nullptr;
    tc->central_pending = 0;
  }
}

std::atomic<TrackHook> g_track_hook{nullptr};

void track_install(TrackHook hook) noexcept {
  g_track_hook.store(hook, std::memory_order_release);
  if (!hook) return;
  // The process heap's fast paths read the thread's t_cache: point every
  // thread at the empty cache (a relaxed store of one pointer, which the
  // owner reads at its next allocation).  The caches stay attached: their
  // blocks go back at the thread's exit; cache_for hands them out no more.
  LockGuard g(g_heaps_lock);
  LockGuard m(g_default_heap.meta_lock);
  for (ThreadCache* tc = g_default_heap.caches; tc; tc = tc->next)
    if (tc->tls_home) __atomic_store_n(tc->tls_home, &g_empty_cache, __ATOMIC_RELAXED);
}

void thread_cache_forget_all(Heap* h) noexcept {
  // g_heaps_lock keeps exiting threads (on_thread_exit) off h's caches.
  LockGuard g(g_heaps_lock);
  LockGuard m(h->meta_lock);
  for (ThreadCache* tc = h->caches; tc; tc = tc->next)
    if (tc->tls_home) *tc->tls_home = &g_empty_cache;  // the thread is alive: its cache is still listed
  h->caches = h->free_caches = nullptr;
  h->cache_count = 0;
  for (auto& page : h->dir) page.store(nullptr, std::memory_order_relaxed);
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
  if (STRATA_UNLIKELY(tracking())) return nullptr;  // every allocation reaches a tier (track.hpp)
  if (ThreadCache* tc = cache_lookup(h)) return tc;
  if (t_state == 2 || t_busy) return nullptr;
  ensure_process_init();
  if (!process_initialised() || !g_key_live.load(std::memory_order_acquire)) return nullptr;
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
    if (page && page[slot % kSlotsPerDirPage]) {
      // The process heap's cache of a thread that tracking pointed at the
      // empty cache (track_install): taken up again once tracking is off.
      tc = page[slot % kSlotsPerDirPage];
    } else if (page) {
      tc = h->free_caches;
      if (tc) h->free_caches = tc->next;
      else tc = static_cast<ThreadCache*>(meta_alloc_locked(h, sizeof(ThreadCache)));
      if (tc) {
        // A reused cache keeps its thread-local pages (their entries were
        // cleared when its thread exited); a new one is zero already.
        std::memset(static_cast<void*>(tc), 0, offsetof(ThreadCache, tl_count));
        tc->heap = h;
        tc->slot = slot;
        tc->medium_arena = &medium_arena_for(h);  // t_slot is slot + 1
        for (unsigned c = 0; c < kNumClasses; ++c) {
          tc->bins[c] = {kBinEnd, static_cast<std::int32_t>(2 * batch_for_class(c)),
                         static_cast<std::int32_t>(2 * batch_for_class(c))};
          tc->foreign[c] = {kBinEnd, static_cast<std::int32_t>(batch_for_class(c)),
                            static_cast<std::int32_t>(batch_for_class(c))};
        }
        for (unsigned c = 0; c < kNumMediumClasses; ++c)
          tc->medium_bins[c] = {kBinEnd, medium_cache_max(c), medium_cache_max(c)};
        if (h == &g_default_heap) tc->tls_home = &t_cache;
        CacheList::push_front(h->caches, tc);
        h->cache_count++;
        page[slot % kSlotsPerDirPage] = tc;
      }
    }
  }
  if (tc && h == &g_default_heap) t_cache = tc;
  t_busy = false;
  if (tc) purge_thread_maybe_start();  // (opt-in; nothing once it runs)
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
    heap_count_central(tc->heap, pending);
  }
}

void medium_cache_flush(ThreadCache* tc) noexcept {
  Block* chain = nullptr;
  const Block* forged = nullptr;
  for (unsigned c = 0; c < kNumMediumClasses; ++c) {
    CacheBin& bin = tc->medium_bins[c];
    while (bin.head != kBinEnd) {
      auto* b = reinterpret_cast<Block*>(bin.head);
      // Checked before its link is followed (a use after free may have
      // forged it): the rest of a forged list is never read.
      if (STRATA_UNLIKELY(!medium_cached_link_ok(b))) {
        forged = b;
        break;
      }
      bin.head = link_of(b);
      set_next(b, chain);
      chain = b;
    }
    bin_clear(bin);
  }
  tc->medium_cached_bytes = 0;
  Block* rejected = chain ? medium_free_chain(tc->heap, chain) : nullptr;
  // Reported once no lock is held (the handler may call strata).
  if (forged)
    report(STRATA_ERROR_CORRUPTION, forged, "free",
           "a medium block's link in a thread cache was overwritten after it was freed (a use after free)");
  for (Block* b = rejected; b;) {
    Block* next = next_of(b);
    report(STRATA_ERROR_CORRUPTION, b, "free",
           "the boundary tag of a medium block was overwritten after it was freed (a use after free)");
    b = next;
  }
}

}  // namespace strata::detail
