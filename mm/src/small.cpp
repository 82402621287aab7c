// strata — the small tier: size classes of equal-size blocks in 64 KiB spans,
// one lock per class (FastMM), refilling and draining per-thread caches in
// batches.  A free that finds its class locked never waits: it pushes its
// blocks onto the class's lock-free pending list, which the next lock holder
// takes over (FastMM5).
#include "heap.hpp"
#include "os.hpp"

namespace strata::detail {

namespace {

inline Span* span_of(const void* p) noexcept {
  return reinterpret_cast<Span*>(reinterpret_cast<std::uintptr_t>(p) & ~(kChunkSize - 1));
}
inline std::uintptr_t cookie_of(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p) ^ secret(); }

constexpr unsigned kSpansPerMap = 4;  // spans in the first region; later ones double, up to 16x

// The free-span list (span_lock held): newest first, doubly linked, so the
// newest (most likely still in cache) is reused and the oldest decays.
void free_push_locked(Heap* h, Span* s) noexcept {
  s->prev = nullptr;
  s->next = h->free_spans;
  if (h->free_spans) h->free_spans->prev = s; else h->free_spans_tail = s;
  h->free_spans = s;
  h->free_span_count++;
}
void free_remove_locked(Heap* h, Span* s) noexcept {
  if (s->prev) s->prev->next = s->next; else h->free_spans = s->next;
  if (s->next) s->next->prev = s->prev; else h->free_spans_tail = s->prev;
  h->free_span_count--;
}
// Takes a span that is on no list but all_spans off the heap's books
// (span_lock held); the caller unmaps it.
void span_forget_locked(Heap* h, Span* s) noexcept {
  if (s->all_prev) s->all_prev->all_next = s->all_next; else h->all_spans = s->all_next;
  if (s->all_next) s->all_next->all_prev = s->all_prev;
  h->span_count--;
}
// Unmaps the never-used rest of the last span region (span_lock held):
// untouched, so it is address space, not memory.
void fresh_spans_release_locked(Heap* h) noexcept {
  if (h->fresh_spans != h->fresh_spans_end)
    heap_unmap(h, h->fresh_spans, static_cast<std::size_t>(h->fresh_spans_end - h->fresh_spans));
  h->fresh_spans = h->fresh_spans_end = nullptr;
}

// A span for class c: the newest free span, else the next fresh span of the
// last region mapped for spans, else the first of a new region.  Regions grow
// (4, 8, 16, 32, then 64 spans: 4 MiB) so a big heap maps its spans in few
// system calls; a fresh span is written (and faulted in) only when it is
// first used, so an unused rest costs address space, not memory.
Span* span_acquire(Heap* h, unsigned c) noexcept {
  Span* s;
  {
    LockGuard g(h->span_lock);
    s = h->free_spans;
    if (s) {
      free_remove_locked(h, s);
    } else {
      if (h->fresh_spans == h->fresh_spans_end) {
        unsigned shift = h->span_regions < 4 ? h->span_regions : 4;
        std::size_t n = std::size_t{kSpansPerMap} << shift;
        char* mem = static_cast<char*>(heap_map(h, n * kSpanSize, ChunkKind::kNone, nullptr, "strata:small"));
        if (!mem && n > 1) {  // short of address space or memory: one span will do
          n = 1;
          mem = static_cast<char*>(heap_map(h, kSpanSize, ChunkKind::kNone, nullptr, "strata:small"));
        }
        if (!mem) return nullptr;
        h->span_regions++;
        h->fresh_spans = mem;
        h->fresh_spans_end = mem + n * kSpanSize;
      }
      s = reinterpret_cast<Span*>(h->fresh_spans);
      h->fresh_spans += kSpanSize;
      chunk_map::set_range(s, kSpanSize, chunk_map::make(s, ChunkKind::kSmall));
      s->heap = h;
      s->all_prev = nullptr;
      s->all_next = h->all_spans;
      if (h->all_spans) h->all_spans->all_prev = s;
      h->all_spans = s;
      h->span_count++;
    }
  }
  s->secret = secret();
  s->bin_offset = static_cast<std::uint32_t>(offsetof(ThreadCache, bins) + c * sizeof(CacheBin));
  s->block_size = kClassSize[c];
  s->recip = class_reciprocal(c);
  s->capacity = blocks_per_span(c);
  s->size_class = static_cast<std::uint8_t>(c);
  s->free_list = s->free_tail = nullptr;
  s->used.set(0);
  s->in_partial = false;
  s->owner.store(nullptr, std::memory_order_relaxed);
  s->assigned = true;
  s->carved.store(0, std::memory_order_release);
  return s;
}

// Gives an empty span back to the heap's free spans.  At most once per
// kFreeSpanDecayMs, a purge unmaps the oldest free spans beyond the limit
// (kFreeSpansKept, or one per kFreeSpansPerUsed spans in use) that have been
// free for kFreeSpanDecayMs.  (Purging at most that often keeps a program
// that frees everything on its way out, as CPython does, from unmapping its
// spans one system call at a time just before exit.)
void span_release(Heap* h, Span* s) noexcept {
  s->carved.store(0, std::memory_order_release);  // any later free into it is "never allocated"
  s->assigned = false;
  std::uint64_t now = os::now_ms();
  s->freed_ms = now;
  LockGuard g(h->span_lock);
  free_push_locked(h, s);
  if (now < h->span_purge_ms + kFreeSpanDecayMs) return;
  h->span_purge_ms = now;
  std::size_t in_use = h->span_count - h->free_span_count;
  std::size_t limit = in_use / kFreeSpansPerUsed > kFreeSpansKept ? in_use / kFreeSpansPerUsed : kFreeSpansKept;
  // Unmapped in address order, adjacent spans (common: regions are carved
  // in order) in one system call.
  constexpr unsigned kBatch = 64;
  Span* batch[kBatch];
  bool more = true;
  while (more) {
    unsigned n = 0;
    while (n < kBatch && h->free_span_count > limit) {
      Span* old = h->free_spans_tail;
      if (old->freed_ms + kFreeSpanDecayMs > now) break;
      free_remove_locked(h, old);
      span_forget_locked(h, old);
      unsigned i = n++;
      for (; i > 0 && batch[i - 1] > old; --i) batch[i] = batch[i - 1];
      batch[i] = old;
    }
    more = n == kBatch;
    for (unsigned i = 0; i < n;) {
      unsigned j = i + 1;
      while (j < n && reinterpret_cast<char*>(batch[j]) == reinterpret_cast<char*>(batch[j - 1]) + kSpanSize) ++j;
      heap_unmap(h, batch[i], (j - i) * kSpanSize);
      i = j;
    }
  }
}

// The partial list a span belongs on: its owner's, or its class's ([S2]).
inline Span*& partial_head(SizeClass& sc, Span* s) noexcept {
  ThreadCache* o = s->owner.load(std::memory_order_relaxed);
  return o ? o->own_partial[s->size_class] : sc.partial;
}
void partial_push(SizeClass& sc, Span* s) noexcept {
  Span*& head = partial_head(sc, s);
  s->in_partial = true;
  s->prev = nullptr;
  s->next = head;
  if (head) head->prev = s;
  head = s;
}
void partial_remove(SizeClass& sc, Span* s) noexcept {
  if (s->prev) s->prev->next = s->next; else partial_head(sc, s) = s->next;
  if (s->next) s->next->prev = s->prev;
  s->in_partial = false;
}

// Ownership changes (class lock held).  A span changes owner off its partial
// list: the caller takes it off first and puts it back after.
void claim_locked(ThreadCache* tc, Span* s) noexcept {
  STRATA_ASSERT_INTERNAL(!s->in_partial && s->owner.load(std::memory_order_relaxed) == nullptr);
  Span*& head = tc->owned[s->size_class];
  s->own_prev = nullptr;
  s->own_next = head;
  if (head) head->own_prev = s;
  head = s;
  s->owner.store(tc, std::memory_order_relaxed);
}
void unclaim_locked(Span* s) noexcept {
  ThreadCache* o = s->owner.load(std::memory_order_relaxed);
  if (!o) return;
  STRATA_ASSERT_INTERNAL(!s->in_partial);
  if (s->own_prev) s->own_prev->own_next = s->own_next; else o->owned[s->size_class] = s->own_next;
  if (s->own_next) s->own_next->own_prev = s->own_prev;
  s->owner.store(nullptr, std::memory_order_relaxed);
}

// Returns one free block to its span (class lock held).
void return_block_locked(Heap* h, SizeClass& sc, Block* b) noexcept {
  Span* s = span_of(b);
  STRATA_ASSERT_INTERNAL(s->assigned && s->heap == h);
  b->next = s->free_list;
  b->cookie = cookie_of(b);
  if (!s->free_list) s->free_tail = b;
  s->free_list = b;
  STRATA_ASSERT_INTERNAL(s->used.get() > 0);
  std::uint32_t used = s->used.get() - 1;
  s->used.set(used);
  if (!s->in_partial) partial_push(sc, s);
  // An empty span goes back to the heap unless it is the last on its list
  // (hysteresis: the class's, or its owner's working span).
  if (used == 0 && (s->prev || s->next)) {
    partial_remove(sc, s);
    unclaim_locked(s);
    sc.span_count--;
    span_release(h, s);
  }
}

void drain_pending_locked(Heap* h, SizeClass& sc) noexcept {
  Block* b = sc.pending.exchange(nullptr, std::memory_order_acquire);
  while (b) {
    Block* next = b->next;
    return_block_locked(h, sc, b);
    b = next;
  }
}

// Takes up to `want` free blocks of class c into a chain (class lock held)
// for thread cache tc (null: the caller has none).  A cache takes blocks from
// the spans it owns first, then claims an ownerless span with free blocks,
// then a new span.  Blocks keep their free cookie; the caller clears it when
// handing one out.
std::uint32_t take_locked(Heap* h, ThreadCache* tc, unsigned c, std::uint32_t want, std::uint32_t cap,
                          Block** head_out, Block** tail_out) noexcept {
  SizeClass& sc = h->classes[c];
  Block* head = nullptr;
  Block* tail = nullptr;
  std::uint32_t got = 0;
  // Blocks freed while the lock was busy are still counted as used by their
  // spans: those of the caller's own spans are handed straight on, the others
  // go back to their spans.
  Block* pend = sc.pending.exchange(nullptr, std::memory_order_acquire);
  while (pend) {
    Block* next = pend->next;
    if (got < want && span_of(pend)->owner.load(std::memory_order_relaxed) == tc) {
      pend->next = head;
      if (!head) tail = pend;
      head = pend;
      ++got;
    } else {
      return_block_locked(h, sc, pend);
    }
    pend = next;
  }
  Span*& own = tc ? tc->own_partial[c] : sc.partial;
  while (got < want) {
    Span* s = own;
    if (!s) {
      s = sc.partial;
      if (s) {
        partial_remove(sc, s);
      } else {
        s = span_acquire(h, c);
        if (!s) break;
        sc.span_count++;
      }
      if (tc) claim_locked(tc, s);
      partial_push(sc, s);
    }
    std::uint32_t used = s->used.get();
    std::uint32_t carved = s->carved.load(std::memory_order_relaxed);
    if (std::uint32_t n = carved - used; s->free_list && n <= (tc ? 2 * cap : cap - got)) {
      // The whole list at once: the blocks were written by the threads that
      // freed them, and walking the list here would read each of them from
      // another core's cache, one dependent miss after another (the
      // allocation reads it later anyway, with the next block prefetched).
      // A thread cache takes a list of up to four times its refill this way
      // (after slow start, twice its bin's bound: the bin then overflows at
      // the owner's next frees); walking 64 blocks of such a list was 9 %
      // of the xmalloc workload's time.
      s->free_tail->next = head;
      if (!head) tail = s->free_tail;
      head = s->free_list;
      s->free_list = s->free_tail = nullptr;
      got += n;
      used += n;
    }
    while (got < want && s->free_list) {
      Block* b = s->free_list;
      s->free_list = b->next;
      b->next = head;
      if (!head) tail = b;
      head = b;
      ++got;
      ++used;
    }
    if (got < want && carved < s->capacity) {
      std::uint32_t n = s->capacity - carved;
      if (n > want - got) n = want - got;
      char* base = reinterpret_cast<char*>(s) + kSpanHeaderSize;
      for (std::uint32_t i = 0; i < n; ++i) {
        auto* b = reinterpret_cast<Block*>(base + std::size_t{carved + i} * s->block_size);
        b->next = head;
        b->cookie = cookie_of(b);
        if (!head) tail = b;
        head = b;
      }
      got += n;
      used += n;
      carved += n;
      s->carved.store(carved, std::memory_order_release);
    }
    STRATA_ASSERT_INTERNAL(carved <= s->capacity && used <= carved);
    s->used.set(used);
    if (!s->free_list && carved == s->capacity) partial_remove(sc, s);
  }
  *head_out = head;
  *tail_out = tail;
  return got;
}

// Takes a chain of n blocks off the front of a bin and gives it back to the
// blocks' spans.
void bin_spill(ThreadCache* tc, CacheBin& bin, unsigned c, std::uint32_t n) noexcept {
  Block* head = bin.head;
  Block* tail = head;
  for (std::uint32_t i = 1; i < n; ++i) tail = tail->next;
  bin.head = tail->next;
  tail->next = nullptr;
  bin.room += static_cast<std::int32_t>(n);
  small_return_chain(tc->heap, c, head, tail, n);
}

}  // namespace

void small_return_chain(Heap* h, unsigned c, Block* head, Block* tail, std::uint32_t n) noexcept {
  SizeClass& sc = h->classes[c];
  heap_account_central(h, -static_cast<std::ptrdiff_t>(std::size_t{n} * kClassSize[c]));
  if (!sc.lock.try_lock()) {
    // Never wait in a free: leave the blocks for the next lock holder.
    Block* top = sc.pending.load(std::memory_order_relaxed);
    do {
      tail->next = top;
    } while (!sc.pending.compare_exchange_weak(top, head, std::memory_order_release, std::memory_order_relaxed));
    return;
  }
  drain_pending_locked(h, sc);
  for (Block* b = head; b;) {
    Block* next = b->next;
    return_block_locked(h, sc, b);
    b = next;
  }
  sc.lock.unlock();
}

void* small_alloc_slow(Heap* h, unsigned c) noexcept {
  ThreadCache* tc = cache_for(h);
  SizeClass& sc = h->classes[c];
  Block *head, *tail;
  std::uint32_t want = 1;
  if (tc) {
    want = batch_for_class(c);
    if (std::uint8_t& r = tc->refills[c]; r < kCacheSlowStartSteps) {
      std::uint32_t w = static_cast<std::uint32_t>((kCacheSlowStartBytes << r) / kClassSize[c]);
      if (w < want) want = w ? w : 1;
      ++r;
    }
  }
  std::uint32_t got;
  {
    LockGuard g(sc.lock);
    got = take_locked(h, tc, c, want, tc ? 2 * want : 1, &head, &tail);
  }
  if (!got) return nullptr;
  heap_account_central(h, static_cast<std::ptrdiff_t>(std::size_t{got} * kClassSize[c]));
  Block* b = head;
  if (tc) {
    CacheBin& bin = tc->bins[c];
    tail->next = bin.head;
    bin.head = b->next;
    bin.room -= static_cast<std::int32_t>(got - 1);
  }
  b->cookie = 0;
  return b;
}

void small_free_central(Heap* h, Block* b, unsigned c) noexcept {
  b->next = nullptr;
  b->cookie = cookie_of(b);
  small_return_chain(h, c, b, b, 1);
}

void cache_overflow(ThreadCache* tc, unsigned c) noexcept { bin_spill(tc, tc->bins[c], c, batch_for_class(c)); }

void small_free_foreign(ThreadCache* tc, unsigned c, Block* b, std::uintptr_t cookie) noexcept {
  CacheBin& bin = tc->foreign[c];
  b->next = bin.head;
  b->cookie = cookie;
  bin.head = b;
  if (--bin.room <= 0) bin_spill(tc, bin, c, static_cast<std::uint32_t>(bin.max - bin.room));  // all of them
}

void small_flush_cache(ThreadCache* tc) noexcept {
  Heap* h = tc->heap;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    for (CacheBin* bin : {&tc->bins[c], &tc->foreign[c]})
      if (bin->room != bin->max) bin_spill(tc, *bin, c, static_cast<std::uint32_t>(bin->max - bin->room));
    if (!tc->owned[c]) continue;
    SizeClass& sc = h->classes[c];
    LockGuard g(sc.lock);
    drain_pending_locked(h, sc);
    while (Span* s = tc->owned[c]) {
      bool partial = s->in_partial;
      if (partial) partial_remove(sc, s);
      unclaim_locked(s);
      if (!partial) continue;
      if (s->used.get() == 0 && sc.partial) {  // empty: back to the heap unless the class has no other partial span
        sc.span_count--;
        span_release(h, s);
      } else {
        partial_push(sc, s);
      }
    }
    STRATA_ASSERT_INTERNAL(!tc->own_partial[c]);
  }
}

std::size_t small_trim(Heap* h) noexcept {
  std::size_t released = 0;
  LockGuard g(h->span_lock);
  while (Span* s = h->free_spans) {
    free_remove_locked(h, s);
    span_forget_locked(h, s);
    heap_unmap(h, s, kSpanSize);
    released += kSpanSize;
  }
  fresh_spans_release_locked(h);
  return released;
}

void small_release_all(Heap* h) noexcept {
  Span* s = h->all_spans;
  while (s) {
    Span* next = s->all_next;
    heap_unmap(h, s, kSpanSize);
    s = next;
  }
  fresh_spans_release_locked(h);
  h->all_spans = h->free_spans = h->free_spans_tail = nullptr;
  h->span_count = h->free_span_count = 0;
}

}  // namespace strata::detail
