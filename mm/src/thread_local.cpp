// strata — thread-local blocks (thread_local.hpp).
#include "thread_local.hpp"

#include <cstring>

#include "fast_path.hpp"

namespace strata::detail {

namespace {

ThreadLocalSlot* slot_at_locked(Heap* h, std::uint32_t index) noexcept {
  ThreadLocalSlot* page = h->tl_slots[index / kThreadLocalPerPage];
  return page ? &page[index % kThreadLocalPerPage] : nullptr;
}

// Takes tc's block of handle `index` out of its table (meta_lock held).
void* take_locked(ThreadCache* tc, std::uint32_t index) noexcept {
  void** page = tc->tl_pages[index / kThreadLocalPerPage];
  if (!page) return nullptr;
  void* b = page[index % kThreadLocalPerPage];
  if (b) {
    page[index % kThreadLocalPerPage] = nullptr;
    tc->tl_count--;
  }
  return b;
}

// Takes, one at a time under the lock, every block of tc and calls
// fn(block, index) for each without the lock (fn may allocate or free).
template <class Fn>
void take_each_of_thread(ThreadCache* tc, Fn fn) noexcept {
  Heap* h = tc->heap;
  for (std::uint32_t p = 0; p < kThreadLocalPages && tc->tl_count; ++p) {
    if (!tc->tl_pages[p]) continue;
    for (std::uint32_t i = 0; i < kThreadLocalPerPage; ++i) {
      const std::uint32_t index = p * kThreadLocalPerPage + i;
      void* b;
      {
        LockGuard m(h->meta_lock);
        b = take_locked(tc, index);
      }
      if (b) fn(b, index);
    }
  }
}

// The same for every thread's block of handle `index`: each block is taken
// exactly once, also when a thread exits meanwhile (it takes its own under
// the same lock).
template <class Fn>
void take_each_of_handle(Heap* h, std::uint32_t index, Fn fn) noexcept {
  for (;;) {
    void* b = nullptr;
    {
      LockGuard m(h->meta_lock);
      for (ThreadCache* tc = h->caches; tc && !b; tc = tc->next) b = take_locked(tc, index);
    }
    if (!b) return;
    fn(b);
  }
}

}  // namespace

ThreadLocalSlot* thread_local_create(Heap* h, std::size_t size, ThreadLocalFn init, ThreadLocalFn fini,
                                     void* ctx) noexcept {
  LockGuard m(h->meta_lock);
  ThreadLocalSlot* s = h->tl_free;
  if (s) {
    h->tl_free = s->next_free;
  } else {
    if (h->tl_count == kThreadLocalPages * kThreadLocalPerPage) return nullptr;
    ThreadLocalSlot*& page = h->tl_slots[h->tl_count / kThreadLocalPerPage];
    if (!page) {
      page = static_cast<ThreadLocalSlot*>(meta_alloc_locked(h, sizeof(ThreadLocalSlot) * kThreadLocalPerPage));
      if (!page) return nullptr;
    }
    s = &page[h->tl_count % kThreadLocalPerPage];
    s->index = h->tl_count++;
  }
  s->heap = h;
  s->live = true;
  s->size = size ? size : 1;
  s->init = init;
  s->fini = fini;
  s->ctx = ctx;
  s->next_free = nullptr;
  return s;
}

void thread_local_destroy(ThreadLocalSlot* s) noexcept {
  Heap* h = s->heap;
  take_each_of_handle(h, s->index, [s, h](void* b) {
    if (s->fini) s->fini(b, s->ctx);
    free_slow(b, h, "strata_thread_local_destroy");
  });
  LockGuard m(h->meta_lock);
  s->live = false;
  s->next_free = h->tl_free;
  h->tl_free = s;
}

void* thread_local_get_slow(ThreadLocalSlot* s) noexcept {
  Heap* h = s->heap;
  ThreadCache* tc = cache_for(h);
  if (!tc) return nullptr;  // an exiting thread, or strata re-entered while it sets up the thread
  const std::uint32_t p = s->index / kThreadLocalPerPage, i = s->index % kThreadLocalPerPage;
  if (!tc->tl_pages[p]) {
    LockGuard m(h->meta_lock);
    // Zero: metadata is fresh memory, never reused within a heap's life.
    tc->tl_pages[p] = static_cast<void**>(meta_alloc_locked(h, sizeof(void*) * kThreadLocalPerPage));
    if (!tc->tl_pages[p]) return nullptr;
  }
  if (void* b = tc->tl_pages[p][i]) return b;
  void* b = heap_alloc(h, s->size);
  if (!b) return nullptr;
  std::memset(b, 0, s->size);
  if (s->init) s->init(b, s->ctx);
  LockGuard m(h->meta_lock);
  tc->tl_pages[p][i] = b;
  tc->tl_count++;
  return b;
}

void thread_local_release_thread(ThreadCache* tc) noexcept {
  Heap* h = tc->heap;
  take_each_of_thread(tc, [tc, h](void* b, std::uint32_t index) {
    ThreadLocalSlot* s;
    {
      LockGuard m(h->meta_lock);
      s = slot_at_locked(h, index);
    }
    if (s && s->live && s->fini) s->fini(b, s->ctx);
    heap_free(b, tc, nullptr, "thread exit");
  });
}

void thread_local_drop_thread(ThreadCache* tc) noexcept {
  Heap* h = tc->heap;
  take_each_of_thread(tc, [h](void* b, std::uint32_t) { free_slow(b, h, "fork"); });
}

void thread_local_finalize_heap(Heap* h) noexcept {
  for (std::uint32_t index = 0;; ++index) {
    ThreadLocalSlot* s;
    {
      LockGuard m(h->meta_lock);
      if (index >= h->tl_count) break;
      s = slot_at_locked(h, index);
    }
    if (s->live && s->fini) take_each_of_handle(h, index, [s](void* b) { s->fini(b, s->ctx); });
  }
}

}  // namespace strata::detail
