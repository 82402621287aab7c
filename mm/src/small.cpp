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

constexpr unsigned kSpansPerMap = 4;

// A span for class c from the heap's free spans, or freshly mapped.
Span* span_acquire(Heap* h, unsigned c) noexcept {
  Span* s;
  {
    LockGuard g(h->span_lock);
    s = h->free_spans;
    if (s) {
      h->free_spans = s->next;
      h->free_span_count--;
    } else {
      char* mem = static_cast<char*>(heap_map(h, kSpansPerMap * kSpanSize, ChunkKind::kNone, nullptr, "strata:small"));
      if (!mem) return nullptr;
      for (unsigned i = 0; i < kSpansPerMap; ++i) {
        auto* sp = reinterpret_cast<Span*>(mem + i * kSpanSize);
        chunk_map::set_range(sp, kSpanSize, chunk_map::make(sp, ChunkKind::kSmall));
        sp->heap = h;
        sp->assigned = false;
        sp->all_prev = nullptr;
        sp->all_next = h->all_spans;
        if (h->all_spans) h->all_spans->all_prev = sp;
        h->all_spans = sp;
        h->span_count++;
        if (i) {
          sp->next = h->free_spans;
          h->free_spans = sp;
          h->free_span_count++;
        }
      }
      s = reinterpret_cast<Span*>(mem);
    }
  }
  s->secret = secret();
  s->bin_offset = static_cast<std::uint32_t>(offsetof(ThreadCache, bins) + c * sizeof(CacheBin));
  s->block_size = kClassSize[c];
  s->recip = class_reciprocal(c);
  s->capacity = blocks_per_span(c);
  s->size_class = static_cast<std::uint8_t>(c);
  s->free_list = nullptr;
  s->used.set(0);
  s->in_partial = false;
  s->assigned = true;
  s->carved.store(0, std::memory_order_release);
  return s;
}

// Gives an empty span back to the heap; beyond kFreeSpansKept it is unmapped.
void span_release(Heap* h, Span* s) noexcept {
  s->carved.store(0, std::memory_order_release);  // any later free into it is "never allocated"
  s->assigned = false;
  LockGuard g(h->span_lock);
  if (h->free_span_count < kFreeSpansKept) {
    s->next = h->free_spans;
    h->free_spans = s;
    h->free_span_count++;
    return;
  }
  if (s->all_prev) s->all_prev->all_next = s->all_next; else h->all_spans = s->all_next;
  if (s->all_next) s->all_next->all_prev = s->all_prev;
  h->span_count--;
  heap_unmap(h, s, kSpanSize);
}

void partial_push(SizeClass& sc, Span* s) noexcept {
  s->in_partial = true;
  s->prev = nullptr;
  s->next = sc.partial;
  if (sc.partial) sc.partial->prev = s;
  sc.partial = s;
}
void partial_remove(SizeClass& sc, Span* s) noexcept {
  if (s->prev) s->prev->next = s->next; else sc.partial = s->next;
  if (s->next) s->next->prev = s->prev;
  s->in_partial = false;
}

// Returns one free block to its span (class lock held).
void return_block_locked(Heap* h, SizeClass& sc, Block* b) noexcept {
  Span* s = span_of(b);
  STRATA_ASSERT_INTERNAL(s->assigned && s->heap == h);
  b->next = s->free_list;
  b->cookie = cookie_of(b);
  s->free_list = b;
  STRATA_ASSERT_INTERNAL(s->used.get() > 0);
  std::uint32_t used = s->used.get() - 1;
  s->used.set(used);
  if (!s->in_partial) partial_push(sc, s);
  if (used == 0 && (s->prev || s->next)) {  // keep the last partial span of the class (hysteresis)
    partial_remove(sc, s);
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

// Takes up to `want` free blocks of class c into a chain (class lock held).
// Blocks keep their free cookie; the caller clears it when handing one out.
std::uint32_t take_locked(Heap* h, unsigned c, std::uint32_t want, Block** head_out, Block** tail_out) noexcept {
  SizeClass& sc = h->classes[c];
  Block* head = nullptr;
  Block* tail = nullptr;
  std::uint32_t got = 0;
  // Blocks freed while the lock was busy are still counted as used by their
  // spans: hand them straight on.
  Block* pend = sc.pending.exchange(nullptr, std::memory_order_acquire);
  while (pend && got < want) {
    Block* next = pend->next;
    pend->next = head;
    if (!head) tail = pend;
    head = pend;
    ++got;
    pend = next;
  }
  while (pend) {
    Block* next = pend->next;
    return_block_locked(h, sc, pend);
    pend = next;
  }
  while (got < want) {
    Span* s = sc.partial;
    if (!s) {
      s = span_acquire(h, c);
      if (!s) break;
      sc.span_count++;
      partial_push(sc, s);
    }
    std::uint32_t used = s->used.get();
    while (got < want && s->free_list) {
      Block* b = s->free_list;
      s->free_list = b->next;
      b->next = head;
      if (!head) tail = b;
      head = b;
      ++got;
      ++used;
    }
    std::uint32_t carved = s->carved.load(std::memory_order_relaxed);
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
    got = take_locked(h, c, want, &head, &tail);
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

void cache_overflow(ThreadCache* tc, unsigned c) noexcept {
  CacheBin& bin = tc->bins[c];
  std::uint32_t n = batch_for_class(c);
  Block* head = bin.head;
  Block* tail = head;
  for (std::uint32_t i = 1; i < n; ++i) tail = tail->next;
  bin.head = tail->next;
  tail->next = nullptr;
  bin.room += static_cast<std::int32_t>(n);
  small_return_chain(tc->heap, c, head, tail, n);
}

std::size_t small_trim(Heap* h) noexcept {
  std::size_t released = 0;
  LockGuard g(h->span_lock);
  while (Span* s = h->free_spans) {
    h->free_spans = s->next;
    h->free_span_count--;
    if (s->all_prev) s->all_prev->all_next = s->all_next; else h->all_spans = s->all_next;
    if (s->all_next) s->all_next->all_prev = s->all_prev;
    h->span_count--;
    heap_unmap(h, s, kSpanSize);
    released += kSpanSize;
  }
  return released;
}

void small_release_all(Heap* h) noexcept {
  Span* s = h->all_spans;
  while (s) {
    Span* next = s->all_next;
    heap_unmap(h, s, kSpanSize);
    s = next;
  }
  h->all_spans = h->free_spans = nullptr;
  h->span_count = h->free_span_count = 0;
}

}  // namespace strata::detail
