// strata — the small tier: size classes of equal-size blocks in 64 KiB spans,
// one lock per class (FastMM), refilling and draining per-thread caches in
// batches.  A free that finds its class locked never waits: it pushes its
// blocks onto the class's lock-free pending list, which the next lock holder
// takes over (FastMM5).
#include "error.hpp"
#include "heap.hpp"
#include "track.hpp"
#include "list.hpp"
#include "options.hpp"
#include "os.hpp"

namespace strata::detail {

namespace {

inline std::uintptr_t cookie_of(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p) ^ secret(); }

// Whether a lies in the 64 KiB chunk of `near` (a span, or a block of it)
// and is 16-byte aligned: one masked compare (a ^ near has no bit above the
// chunk and none below the alignment).
inline bool on_span_grid(std::uintptr_t a, std::uintptr_t near) noexcept {
  constexpr std::uintptr_t kOffGrid = ~(kChunkSize - 1) | (kMinAlign - 1);
  return ((a ^ near) & kOffGrid) == 0;
}
// A block of a span already proven (so the address may be read): aligned
// and carrying its free cookie (which no word of the span header or of a
// live block has, but by a guess of the secret).
inline bool link_in_chunk(std::uintptr_t a, std::uintptr_t secret) noexcept {
  return (a & (kMinAlign - 1)) == 0 && reinterpret_cast<const Block*>(a)->cookie == (a ^ secret);
}
// A link decoded from a list of class c of heap h, checked before it is
// followed: plausible, a chunk the chunk map gives to a span of that class
// and heap (so the span header and the block may be read), and a block that
// carries its free cookie (a block start, free: a program without the secret
// cannot make one).  An overflow that reaches a free block's link has
// overwritten its cookie first.
inline bool link_valid(const Heap* h, unsigned c, std::uintptr_t a) noexcept {
  if (!link_plausible(a)) return false;
  std::uintptr_t chunk = a & ~(kChunkSize - 1);
  if (chunk_map::lookup_unchecked(a) != (chunk | static_cast<std::uintptr_t>(ChunkKind::kSmall))) return false;
  auto* s = reinterpret_cast<const Span*>(chunk);
  return s->heap == h && s->size_class == c && link_in_chunk(a, s->secret);
}
// A link of `prev`, a block of the list already proven, to a free block of
// prev's own span: on its grid and carrying its free cookie, no chunk-map
// look-up (the common case: lists are freed and refilled span by span).
inline bool link_in_run(const Block* prev, std::uintptr_t a, std::uintptr_t secret) noexcept {
  return on_span_grid(a, reinterpret_cast<std::uintptr_t>(prev)) && reinterpret_cast<const Block*>(a)->cookie == (a ^ secret);
}
// link_valid for the link of `prev`: a link into prev's own span needs no
// chunk-map look-up (anything else that fails link_in_run is decided by it).
inline bool link_valid_after(const Heap* h, unsigned c, const Block* prev, std::uintptr_t a,
                             std::uintptr_t secret) noexcept {
  return link_in_run(prev, a, secret) || link_valid(h, c, a);
}
}  // namespace

bool small_link_valid(const Heap* h, unsigned c, std::uintptr_t a) noexcept { return link_valid(h, c, a); }

std::size_t small_pending_count_locked(const Heap* h, unsigned c) noexcept {
  std::size_t n = 0;
  for (const Block* b = h->classes[c].pending.load(std::memory_order_acquire); b; ++n) {
    std::uintptr_t next = link_of(b);
    if (next && !link_valid_after(h, c, b, next, secret())) return n + 1;
    b = reinterpret_cast<const Block*>(next);
  }
  return n;
}

namespace {

// A list found forged after block `at` (whose link was overwritten), or a
// bin whose head is not a block (at: the value found): reported once no lock
// is held.  The rest of the list is dropped (its blocks stay counted as in
// use, never handed out again).
void report_forged(const void* at, const char* op) noexcept {
  report(STRATA_ERROR_CORRUPTION, at, op,
         "a free small block's link was overwritten (a use after free or an overflow): the rest of its free list "
         "is dropped, its blocks are never handed out");
}

using FreeSpans = IntrusiveList<&Span::next, &Span::prev>;     // SpanStore::free (with its tail)
using AllSpans = IntrusiveList<&Span::all_next, &Span::all_prev>;  // SpanStore::all
using PartialSpans = IntrusiveList<&Span::next, &Span::prev>;   // a class's or an owner's partial list
using OwnedSpans = IntrusiveList<&Span::own_next, &Span::own_prev>;  // ThreadCache::owned[c]

// [S1]-[S4] for one span (its class lock held).  O(span + its lists).
void validate_span_locked(Heap* h, SizeClass& sc, Span* s) noexcept;
inline void maybe_validate_span(Heap* h, SizeClass& sc, Span* s) noexcept {
  if constexpr (kDebugLevel >= 3) validate_span_locked(h, sc, s);
  else (void)h, (void)sc, (void)s;
}

// The free-span list (spans.lock held): newest first, doubly linked, so the
// newest (most likely still in cache) is reused and the oldest decays.
// (free_count is also read without the lock, as a hint: small_purge_hint.)
void free_push_locked(Heap* h, Span* s) noexcept {
  FreeSpans::push_front(h->spans.free, h->spans.free_tail, s);
  __atomic_store_n(&h->spans.free_count, h->spans.free_count + 1, __ATOMIC_RELAXED);
}
void free_remove_locked(Heap* h, Span* s) noexcept {
  FreeSpans::remove(h->spans.free, h->spans.free_tail, s);
  __atomic_store_n(&h->spans.free_count, h->spans.free_count - 1, __ATOMIC_RELAXED);
}
// Takes a span that is on no list but SpanStore::all off the heap's books
// (spans.lock held); the caller unmaps it.
void span_forget_locked(Heap* h, Span* s) noexcept {
  AllSpans::remove(h->spans.all, s);
  __atomic_store_n(&h->spans.count, h->spans.count - 1, __ATOMIC_RELAXED);  // (read as a hint)
}
// Unmaps the never-used rest of the last span region (spans.lock held):
// untouched, so it is address space, not memory.
void fresh_spans_release_locked(Heap* h) noexcept {
  if (h->spans.fresh != h->spans.fresh_end)
    heap_unmap(h, h->spans.fresh, static_cast<std::size_t>(h->spans.fresh_end - h->spans.fresh));
  h->spans.fresh = h->spans.fresh_end = nullptr;
}

// A span for class c: the newest free span, else the next fresh span of the
// last region mapped for spans, else the first of a new region.  Regions grow
// (4, 8, 16, 32, then 64 spans: 4 MiB) so a big heap maps its spans in few
// system calls; a fresh span is written (and faulted in) only when it is
// first used, so an unused rest costs address space, not memory.
Span* span_acquire(Heap* h, unsigned c) noexcept {
  Span* s;
  {
    LockGuard g(h->spans.lock);
    s = h->spans.free;
    if (s) {
      free_remove_locked(h, s);
    } else {
      if (h->spans.fresh == h->spans.fresh_end) {
        unsigned shift = h->spans.regions < 4 ? h->spans.regions : 4;
        std::size_t n = std::size_t{kSpansPerMap} << shift;
        char* mem = static_cast<char*>(heap_map(h, n * kSpanSize, ChunkKind::kNone, nullptr, "strata:small"));
        if (!mem && n > 1) {  // short of address space or memory: one span will do
          n = 1;
          mem = static_cast<char*>(heap_map(h, kSpanSize, ChunkKind::kNone, nullptr, "strata:small"));
        }
        if (!mem) return nullptr;
        h->spans.regions++;
        h->spans.fresh = mem;
        h->spans.fresh_end = mem + n * kSpanSize;
      }
      s = reinterpret_cast<Span*>(h->spans.fresh);
      h->spans.fresh += kSpanSize;
      chunk_map::set_range(s, kSpanSize, chunk_map::make(s, ChunkKind::kSmall));
      s->heap = h;
      AllSpans::push_front(h->spans.all, s);
      __atomic_store_n(&h->spans.count, h->spans.count + 1, __ATOMIC_RELAXED);
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

// Unmaps the oldest free spans beyond kFreeSpansKept that went empty at
// least min_age ms ago (spans.lock held); the bytes unmapped.
std::size_t purge_locked(Heap* h, std::uint64_t now, std::uint64_t min_age) noexcept {
  __atomic_store_n(&h->spans.purge_ms, now, __ATOMIC_RELAXED);  // read as a hint by small_purge_due
  std::size_t released = 0;
  const std::size_t limit = kFreeSpansKept;
  // Unmapped in address order, adjacent spans (common: regions are carved
  // in order) in one system call.
  constexpr unsigned kBatch = 64;
  Span* batch[kBatch];
  bool more = true;
  while (more) {
    unsigned n = 0;
    while (n < kBatch && h->spans.free_count > limit) {
      Span* old = h->spans.free_tail;
      if (old->freed_ms + min_age > now) break;
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
      released += (j - i) * kSpanSize;
      i = j;
    }
  }
  return released;
}

// Gives an empty span back to the heap's free spans.  At most once per purge
// delay (STRATA_PURGE_DELAY_MS), a purge unmaps the free spans beyond the
// limit that have been free for the delay.  (Purging at most that often
// keeps a program that frees everything on its way out, as CPython does,
// from unmapping its spans one system call at a time just before exit.)
void span_release(Heap* h, Span* s) noexcept {
  s->carved.store(0, std::memory_order_release);  // any later free into it is "never allocated"
  s->assigned = false;
  std::uint64_t now = os::now_ms();
  s->freed_ms = now;
  LockGuard g(h->spans.lock);
  free_push_locked(h, s);
  const std::uint64_t delay = purge_delay_ms();
  if (delay == kPurgeNever || now < h->spans.purge_ms + delay) return;
  purge_locked(h, now, delay);
}

// The partial list a span belongs on: its owner's, or its class's ([S2]).
inline Span*& partial_head(SizeClass& sc, Span* s) noexcept {
  ThreadCache* o = s->owner.load(std::memory_order_relaxed);
  return o ? o->own_partial[s->size_class] : sc.partial;
}
void partial_push(SizeClass& sc, Span* s) noexcept {
  s->in_partial = true;
  PartialSpans::push_front(partial_head(sc, s), s);
}
void partial_remove(SizeClass& sc, Span* s) noexcept {
  PartialSpans::remove(partial_head(sc, s), s);
  s->in_partial = false;
}

// Ownership changes (class lock held).  A span changes owner off its partial
// list: the caller takes it off first and puts it back after.
void claim_locked(ThreadCache* tc, Span* s) noexcept {
  STRATA_ASSERT_INTERNAL(!s->in_partial && s->owner.load(std::memory_order_relaxed) == nullptr);
  OwnedSpans::push_front(tc->owned[s->size_class], s);
  s->owner.store(tc, std::memory_order_relaxed);
}
void unclaim_locked(Span* s) noexcept {
  ThreadCache* o = s->owner.load(std::memory_order_relaxed);
  if (!o) return;
  STRATA_ASSERT_INTERNAL(!s->in_partial);
  OwnedSpans::remove(o->owned[s->size_class], s);
  s->owner.store(nullptr, std::memory_order_relaxed);
}

// Returns a run of k free blocks of span s to it (class lock held): first to
// last, already linked in that order and carrying their free cookies; last's
// link is rewritten to the span's list.
void return_run_locked(Heap* h, SizeClass& sc, Span* s, Block* first, Block* last, std::uint32_t k) noexcept {
  STRATA_ASSERT_INTERNAL(s->assigned && s->heap == h);
  set_next(last, s->free_list);
  if (!s->free_list) s->free_tail = last;
  s->free_list = first;
  STRATA_ASSERT_INTERNAL(s->used.get() >= k);
  std::uint32_t used = s->used.get() - k;
  s->used.set(used);
  if (!s->in_partial) partial_push(sc, s);
  // An empty span goes back to the heap unless it is the last on its list
  // (hysteresis: the class's, or its owner's working span).
  if (used == 0 && (s->prev || s->next)) {
    partial_remove(sc, s);
    unclaim_locked(s);
    sc.span_count--;
    span_release(h, s);
    return;
  }
  maybe_validate_span(h, sc, s);
}
// Returns one free block to its span (class lock held).
void return_block_locked(Heap* h, SizeClass& sc, Block* b) noexcept {
  b->cookie = cookie_of(b);
  return_run_locked(h, sc, span_of(b), b, b, 1);
}

// Returns the blocks of the class's pending list to their spans; the block
// after which the list was found forged, or null.  (The list is most often
// empty: one load, inline.)
__attribute__((noinline)) const Block* drain_pending_list_locked(Heap* h, unsigned c) noexcept {
  SizeClass& sc = h->classes[c];
  Block* b = sc.pending.exchange(nullptr, std::memory_order_acquire);
  while (b) {
    // Checked while b still holds its span (its return may release it).
    std::uintptr_t next = link_of(b);
    bool forged = next && !link_valid_after(h, c, b, next, secret());
    return_block_locked(h, sc, b);
    if (STRATA_UNLIKELY(forged)) return b;
    b = reinterpret_cast<Block*>(next);
  }
  return nullptr;
}
inline const Block* drain_pending_locked(Heap* h, unsigned c) noexcept {
  if (STRATA_LIKELY(h->classes[c].pending.load(std::memory_order_relaxed) == nullptr)) return nullptr;
  return drain_pending_list_locked(h, c);
}

// Takes up to `want` free blocks of class c into a chain (class lock held)
// for thread cache tc (null: the caller has none).  A cache takes blocks from
// the spans it owns first, then claims an ownerless span with free blocks,
// then a new span.  Blocks keep their free cookie; the caller clears it when
// handing one out.
std::uint32_t take_locked(Heap* h, ThreadCache* tc, unsigned c, std::uint32_t want, std::uint32_t cap,
                          Block** head_out, Block** tail_out, const Block** forged) noexcept {
  SizeClass& sc = h->classes[c];
  Block* head = nullptr;
  Block* tail = nullptr;
  std::uint32_t got = 0;
  // Blocks freed while the lock was busy are still counted as used by their
  // spans: those of the caller's own spans are handed straight on, the others
  // go back to their spans.
  Block* pend = sc.pending.exchange(nullptr, std::memory_order_acquire);
  while (pend) {
    std::uintptr_t next = link_of(pend);
    const bool bad = next && !link_valid_after(h, c, pend, next, secret());  // before pend's span may go
    if (got < want && span_of(pend)->owner.load(std::memory_order_relaxed) == tc) {
      set_next(pend, head);
      if (!head) tail = pend;
      head = pend;
      ++got;
    } else {
      return_block_locked(h, sc, pend);
    }
    if (STRATA_UNLIKELY(bad)) {
      *forged = pend;
      break;
    }
    pend = reinterpret_cast<Block*>(next);
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
      set_next(s->free_tail, head);
      if (!head) tail = s->free_tail;
      head = s->free_list;
      s->free_list = s->free_tail = nullptr;
      got += n;
      used += n;
    }
    if (got < want && s->free_list) {
      // A prefix of the span's free list, taken as it is linked (the first
      // want - got blocks).  A span's free list holds blocks of the span
      // only: a link is followed only inside it, 16-byte aligned (so it
      // cannot crash).  The cookie is not checked here (the whole-list take
      // above does not walk at all); a bin's spill checks it.
      Block* first = s->free_list;
      Block* last = first;
      std::uint32_t k = 1;
      std::uintptr_t next = link_of(last);
      const std::uintptr_t span_bits = reinterpret_cast<std::uintptr_t>(s);
      for (; next && k < want - got; ++k) {
        if (STRATA_UNLIKELY(!on_span_grid(next, span_bits))) break;
        last = reinterpret_cast<Block*>(next);
        next = link_of(last);
      }
      if (STRATA_UNLIKELY(next && !on_span_grid(next, span_bits))) {  // the last link taken, too
        // The rest of the span's free list is dropped: counted as in use.
        *forged = last;
        next = 0;
        used = carved - k;
      }
      s->free_list = reinterpret_cast<Block*>(next);
      if (!next) s->free_tail = nullptr;
      set_next(last, head);
      if (!head) tail = last;
      head = first;
      got += k;
      used += k;
    }
    if (got < want && carved < s->capacity) {
      std::uint32_t n = s->capacity - carved;
      if (n > want - got) n = want - got;
      char* base = reinterpret_cast<char*>(s) + kSpanHeaderSize;
      for (std::uint32_t i = 0; i < n; ++i) {
        auto* b = reinterpret_cast<Block*>(base + std::size_t{carved + i} * s->block_size);
        set_next(b, head);
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
    maybe_validate_span(h, sc, s);
  }
  *head_out = head;
  *tail_out = tail;
  return got;
}

// Returns the first n blocks of a bin to their spans (class c's lock held),
// every link checked before it is followed, the bin's head already checked:
// the blocks go back in runs of one span (a run is spliced onto its span's
// list as it is linked, so a block costs its check and no write); a link out
// of the run's chunk is checked against the chunk map.  The blocks returned;
// at a forged link, *forged is the block that holds it and the blocks after
// it stay out of every list.
std::uint32_t spill_locked(Heap* h, SizeClass& sc, unsigned c, CacheBin& bin, std::uint32_t n,
                           const Block** forged) noexcept {
  auto* b = reinterpret_cast<Block*>(bin.head);
  const std::uintptr_t sec = secret();
  std::uint32_t left = n;
  for (;;) {
    Block* first = b;
    std::uint32_t k = 1;
    std::uintptr_t next = link_of(b);
    // The run: links to free blocks of b's span.
    while (k < left && link_in_run(b, next, sec)) {
      b = reinterpret_cast<Block*>(next);
      ++k;
      next = link_of(b);
    }
    left -= k;
    // next is read: the run's last link may be rewritten, its span released.
    return_run_locked(h, sc, span_of(first), first, b, k);
    if (left == 0) {
      bin.head = next;  // checked when it is taken
      bin.room += static_cast<std::int32_t>(n);
      return n;
    }
    if (STRATA_UNLIKELY(!link_valid(h, c, next))) {
      *forged = b;
      bin_clear(bin);
      return n - left;
    }
    b = reinterpret_cast<Block*>(next);
  }
}

// Takes n blocks off the front of a bin and gives them back to their spans,
// every link checked before it is followed: at a forged one the bin keeps
// nothing (the blocks after it are dropped) and it is reported.  With the
// class lock busy, the checked chain goes on the class's pending list.
void bin_spill(ThreadCache* tc, CacheBin& bin, unsigned c, std::uint32_t n) noexcept {
  Heap* h = tc->heap;
  if (STRATA_UNLIKELY(!link_valid(h, c, bin.head))) {  // a forged link a pop took as the head
    const void* at = reinterpret_cast<const void*>(bin.head);
    bin_clear(bin);
    return report_forged(at, "free");
  }
  SizeClass& sc = h->classes[c];
  const Block* forged = nullptr;
  if (STRATA_LIKELY(sc.lock.try_lock())) {
    const Block* forged_pending = drain_pending_locked(h, c);
    std::uint32_t returned = spill_locked(h, sc, c, bin, n, &forged);
    sc.lock.unlock();
    heap_account_central(h, -static_cast<std::ptrdiff_t>(std::size_t{returned} * kClassSize[c]));
    if (STRATA_UNLIKELY(forged_pending)) report_forged(forged_pending, "free");
    if (STRATA_UNLIKELY(forged)) report_forged(forged, "free");
    if (STRATA_UNLIKELY(small_purge_hint(h->spans))) small_purge_due(h);
    return;
  }
  // Never wait in a free: the chain is checked whole, then left for the next
  // lock holder.
  auto* head = reinterpret_cast<Block*>(bin.head);
  Block* tail = head;
  const std::uintptr_t sec = secret();
  std::uint32_t i = 1;
  for (; i < n; ++i) {
    std::uintptr_t next = link_of(tail);
    if (STRATA_UNLIKELY(!link_valid_after(h, c, tail, next, sec))) {
      forged = tail;
      break;
    }
    tail = reinterpret_cast<Block*>(next);
  }
  if (STRATA_LIKELY(!forged)) {
    bin.head = link_of(tail);  // checked when it is taken
    bin.room += static_cast<std::int32_t>(n);
  } else {
    bin_clear(bin);
  }
  set_next(tail, nullptr);
  small_return_chain(h, c, head, tail, i);
  if (forged) report_forged(forged, "free");
}

}  // namespace

void small_return_chain(Heap* h, unsigned c, Block* head, Block* tail, std::uint32_t n) noexcept {
  SizeClass& sc = h->classes[c];
  heap_account_central(h, -static_cast<std::ptrdiff_t>(std::size_t{n} * kClassSize[c]));
  if (!sc.lock.try_lock()) {
    // Never wait in a free: leave the blocks for the next lock holder.
    Block* top = sc.pending.load(std::memory_order_relaxed);
    do {
      set_next(tail, top);
    } while (!sc.pending.compare_exchange_weak(top, head, std::memory_order_release, std::memory_order_relaxed));
    return;
  }
  const Block* forged = drain_pending_locked(h, c);
  for (Block* b = head; b;) {  // a chain the caller checked
    Block* next = next_of(b);
    return_block_locked(h, sc, b);
    b = next;
  }
  sc.lock.unlock();
  if (STRATA_UNLIKELY(forged)) report_forged(forged, "free");
  if (STRATA_UNLIKELY(small_purge_hint(h->spans))) small_purge_due(h);
}

void* small_alloc_slow(Heap* h, ThreadCache* tc, unsigned c) noexcept {
  SizeClass& sc = h->classes[c];
  if (STRATA_UNLIKELY(small_purge_hint(h->spans))) small_purge_due(h);
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
  if (tc && STRATA_UNLIKELY(tc->bins[c].head != kBinEnd && !link_plausible(tc->bins[c].head))) {
    // The fast path found a forged link at the head of the bin: dropped.
    CacheBin& bin = tc->bins[c];
    const void* at = reinterpret_cast<const void*>(bin.head);
    bin_clear(bin);
    report_forged(at, "malloc");
  }
  std::uint32_t got;
  const Block* forged = nullptr;
  {
    LockGuard g(sc.lock);
    got = take_locked(h, tc, c, want, tc ? 2 * want : 1, &head, &tail, &forged);
  }
  if (STRATA_UNLIKELY(forged)) report_forged(forged, "malloc");
  if (!got) return nullptr;
  heap_account_central(h, static_cast<std::ptrdiff_t>(std::size_t{got} * kClassSize[c]));
  Block* b = head;
  if (tc) {
    CacheBin& bin = tc->bins[c];
    set_link(tail, bin.head);
    bin.head = link_of(b);
    bin.room -= static_cast<std::int32_t>(got - 1);
  }
  b->cookie = 0;
  if (!tc) track_alloc(h, b);  // (tracking creates no caches)
  return b;
}

void small_free_central(Heap* h, Block* b, unsigned c) noexcept {
  set_next(b, nullptr);
  b->cookie = cookie_of(b);
  small_return_chain(h, c, b, b, 1);
}

void cache_overflow(ThreadCache* tc, unsigned c) noexcept { bin_spill(tc, tc->bins[c], c, batch_for_class(c)); }

void small_free_foreign(ThreadCache* tc, unsigned c, Block* b, std::uintptr_t cookie) noexcept {
  CacheBin& bin = tc->foreign[c];
  set_link(b, bin.head);
  b->cookie = cookie;
  bin.head = reinterpret_cast<std::uintptr_t>(b);
  if (--bin.room <= 0) bin_spill(tc, bin, c, static_cast<std::uint32_t>(bin.max - bin.room));  // all of them
}

void small_flush_cache(ThreadCache* tc) noexcept {
  Heap* h = tc->heap;
  for (unsigned c = 0; c < kNumClasses; ++c) {
    for (CacheBin* bin : {&tc->bins[c], &tc->foreign[c]})
      if (bin->room != bin->max) bin_spill(tc, *bin, c, static_cast<std::uint32_t>(bin->max - bin->room));
    if (!tc->owned[c]) continue;
    SizeClass& sc = h->classes[c];
    sc.lock.lock();
    const Block* forged = drain_pending_locked(h, c);
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
    sc.lock.unlock();
    if (STRATA_UNLIKELY(forged)) report_forged(forged, "free");
  }
}

std::size_t small_purge(Heap* h, std::uint64_t min_age_ms) noexcept {
  if (purge_delay_ms() == kPurgeNever) return 0;
  LockGuard g(h->spans.lock);
  return purge_locked(h, os::now_ms(), min_age_ms);
}

void small_purge_due(Heap* h) noexcept {
  const std::uint64_t delay = purge_delay_ms();
  if (delay == kPurgeNever) return;
  std::uint64_t now = os::now_ms();
  if (now < __atomic_load_n(&h->spans.purge_ms, __ATOMIC_RELAXED) + delay) return;
  if (!h->spans.lock.try_lock()) return;  // another thread is at it, or soon will be
  if (now >= h->spans.purge_ms + delay) purge_locked(h, now, delay);
  h->spans.lock.unlock();
}

std::size_t small_trim(Heap* h) noexcept {
  std::size_t released = 0;
  LockGuard g(h->spans.lock);
  while (Span* s = h->spans.free) {
    free_remove_locked(h, s);
    span_forget_locked(h, s);
    heap_unmap(h, s, kSpanSize);
    released += kSpanSize;
  }
  fresh_spans_release_locked(h);
  return released;
}

void small_release_all(Heap* h) noexcept {
  LockGuard g(h->spans.lock);
  // Spans of one region sit next to each other (carved in address order,
  // listed newest first): each run of neighbours goes in one munmap.
  char* lo = nullptr;
  char* hi = nullptr;
  for (Span* s = h->spans.all; s;) {
    Span* next = s->all_next;
    auto* p = reinterpret_cast<char*>(s);
    if (lo && p == lo - kSpanSize) {
      lo = p;
    } else if (lo && p == hi) {
      hi += kSpanSize;
    } else {
      if (lo) heap_unmap(h, lo, static_cast<std::size_t>(hi - lo));
      lo = p;
      hi = p + kSpanSize;
    }
    s = next;
  }
  if (lo) heap_unmap(h, lo, static_cast<std::size_t>(hi - lo));
  fresh_spans_release_locked(h);
  // As freshly constructed (the locks are left alone: nobody holds them).
  SpanStore& st = h->spans;
  st.all = st.free = st.free_tail = nullptr;
  st.purge_ms = 0;
  st.regions = 0;
  st.count = st.free_count = 0;
  for (SizeClass& sc : h->classes) {
    sc.partial = nullptr;
    sc.pending.store(nullptr, std::memory_order_relaxed);
    sc.span_count = 0;
  }
}

void small_reset_all(Heap* h) noexcept {
  LockGuard g(h->spans.lock);
  const std::uint64_t now = os::now_ms();
  for (Span* s = h->spans.all; s; s = s->all_next) {
    if (!s->assigned) continue;
    s->carved.store(0, std::memory_order_release);
    s->assigned = false;
    s->owner.store(nullptr, std::memory_order_relaxed);
    s->in_partial = false;
    s->free_list = s->free_tail = nullptr;
    s->used.set(0);
    s->freed_ms = now;
    free_push_locked(h, s);
  }
  for (SizeClass& sc : h->classes) {
    sc.partial = nullptr;
    sc.pending.store(nullptr, std::memory_order_relaxed);
    sc.span_count = 0;
  }
}


bool small_walk(Heap* h, bool with_free, BlockVisitor visit, void* ctx) noexcept {
  const std::uintptr_t sec = secret();
  for (unsigned c = 0; c < kNumClasses; ++c) {
    // The class lock keeps its spans' carved counts and free lists still,
    // the store's lock keeps spans from being unmapped or reassigned.
    LockGuard g(h->classes[c].lock);
    LockGuard st(h->spans.lock);
    for (Span* s = h->spans.all; s; s = s->all_next) {
      if (!s->assigned || s->size_class != c) continue;
      const std::uint32_t carved = s->carved.load(std::memory_order_acquire);
      char* base = reinterpret_cast<char*>(s) + kSpanHeaderSize;
      for (std::uint32_t i = 0; i < carved; ++i) {
        auto* b = reinterpret_cast<Block*>(base + std::size_t{i} * s->block_size);
        // Every free small block carries its cookie (on a span's free list,
        // in a thread cache, on the pending list); a live one does not.
        const bool live = !carries_free_cookie(b, sec);
        if (!live && !with_free) continue;
        const BlockInfo info{b, s->block_size, h, Tier::kSmall, static_cast<std::uint8_t>(c), live};
        if (!visit(info, ctx)) return false;
      }
    }
  }
  return true;
}

namespace {
void validate_span_locked(Heap* h, SizeClass& sc, Span* s) noexcept {
  STRATA_CHECK(s->heap == h && s->assigned, "[S0] a span of another heap, or a free span, on a class's books");
  const unsigned c = s->size_class;
  const std::uint32_t carved = s->carved.load(std::memory_order_relaxed);
  STRATA_CHECK(s->block_size == kClassSize[c] && s->capacity == blocks_per_span(c), "[S0] span header overwritten");
  STRATA_CHECK(carved <= s->capacity, "[S3] a span carved more blocks than it holds");
  char* base = reinterpret_cast<char*>(s) + kSpanHeaderSize;
  std::uint32_t n = 0;
  for (Block* b = s->free_list; b; b = next_of(b)) {
    STRATA_CHECK(n < carved, "[S1] a span's free list is longer than its carved blocks (a loop?)");
    STRATA_CHECK(span_of(b) == s, "[S1] a block of another span on a span's free list");
    auto off = static_cast<std::size_t>(reinterpret_cast<char*>(b) - base);
    STRATA_CHECK(off % s->block_size == 0 && off / s->block_size < carved, "[S1] a free-list entry is not a carved block");
    STRATA_CHECK(carries_free_cookie(b, secret()), "[S1] a block on a span's free list has no free cookie");
    if (!next_of(b)) STRATA_CHECK(s->free_tail == b, "[S1] a span's free_tail is not its free list's last block");
    ++n;
  }
  if (!s->free_list) STRATA_CHECK(!s->free_tail, "[S1] an empty free list with a tail");
  STRATA_CHECK(s->used.get() == carved - n, "[S1] used != carved - |free_list|");
  ThreadCache* o = s->owner.load(std::memory_order_relaxed);
  STRATA_CHECK(s->in_partial == (s->free_list != nullptr || carved < s->capacity),
               "[S2] in_partial does not say whether the span has a free or uncarved block");
  if (s->in_partial)
    STRATA_CHECK(PartialSpans::contains(o ? o->own_partial[c] : sc.partial, s), "[S2] a partial span missing from its list");
  if (o) STRATA_CHECK(OwnedSpans::contains(o->owned[c], s), "[S4] an owned span missing from its owner's list");
}
}  // namespace

void small_validate(Heap* h) noexcept {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    SizeClass& sc = h->classes[c];
    LockGuard g(sc.lock);
    LockGuard st(h->spans.lock);
    std::uint32_t spans = 0;
    for (Span* s = h->spans.all; s; s = s->all_next) {
      if (!s->assigned || s->size_class != c) continue;
      validate_span_locked(h, sc, s);
      ++spans;
    }
    STRATA_CHECK(spans == sc.span_count, "[S5] a class's span count is not the number of its spans");
    for (Span* s = sc.partial; s; s = s->next)
      STRATA_CHECK(s->assigned && s->size_class == c && !s->owner.load(std::memory_order_relaxed) && s->in_partial,
                   "[S2] a span on a class's partial list that does not belong there");
  }
  LockGuard st(h->spans.lock);
  std::size_t all = 0, free = 0;
  for (Span* s = h->spans.all; s; s = s->all_next) ++all;
  for (Span* s = h->spans.free; s; s = s->next) {
    STRATA_CHECK(!s->assigned && s->heap == h, "[S6] an assigned span on the free-span list");
    if (!s->next) STRATA_CHECK(h->spans.free_tail == s, "[S6] the free-span list's tail is wrong");
    ++free;
  }
  STRATA_CHECK(all == h->spans.count && free == h->spans.free_count, "[S6] the span store's counts are wrong");
}

}  // namespace strata::detail
