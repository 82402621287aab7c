// strata — the heap summary (strata_heap_summary, strata_print_summary):
// blocks and bytes in use per tier, what the thread caches hold, and what the
// heap has from the OS, read from the tiers' counters and the caches' bins.
// Layer: report (above the heap).
#include <cstring>

#include "heap.hpp"
#include "log.hpp"

using namespace strata::detail;

extern "C" {

STRATA_API int strata_heap_summary(strata_pool_t* pool, strata_heap_summary_t* out) noexcept {
  if (!out || out->size < offsetof(strata_heap_summary_t, thread_caches) + sizeof(size_t)) return -1;
  Heap* h = heap_or_default(pool);
  strata_heap_summary_t s{};
  s.size = sizeof s;
  s.version = 2;
  std::size_t out_blocks = 0, out_bytes = 0;  // small blocks out of their spans
  std::size_t medium_cached_blocks = 0, medium_cached_bytes = 0;
  std::size_t large_parked_blocks = 0, large_parked_bytes = 0;
  {
    LockGuard g(h->spans.lock);
    for (Span* sp = h->spans.all; sp; sp = sp->all_next) {
      if (!sp->assigned) continue;
      std::size_t u = sp->used.get();
      out_blocks += u;
      out_bytes += u * sp->block_size;
    }
  }
  for (unsigned c = 0; c < kNumClasses; ++c) {
    LockGuard g(h->classes[c].lock);
    std::size_t n = small_pending_count_locked(h, c);
    s.cached_blocks += n;
    s.cached_bytes += n * kClassSize[c];
  }
  {
    LockGuard g(h->meta_lock);
    for (ThreadCache* tc = h->caches; tc; tc = tc->next) {
      s.thread_caches++;
      for (unsigned c = 0; c < kNumClasses; ++c) {
        std::size_t n = bin_count(tc->bins[c]) + bin_count(tc->foreign[c]);
        s.cached_blocks += n;
        s.cached_bytes += n * kClassSize[c];
      }
      for (unsigned c = 0; c < kNumMediumClasses; ++c) medium_cached_blocks += bin_count(tc->medium_bins[c]);
      // The exact sum: a block grown in place is filed under a class smaller than it.
      medium_cached_bytes += cache_bytes_racy(tc->medium_cached_bytes);
      // Its size only: the owner may unpark the block, and it may be unmapped, meanwhile.
      if (std::size_t b = cache_bytes_racy(tc->parked_large_bytes)) {
        large_parked_blocks++;
        large_parked_bytes += b;
      }
    }
  }
  s.small_blocks = out_blocks > s.cached_blocks ? out_blocks - s.cached_blocks : 0;
  s.small_bytes = out_bytes > s.cached_bytes ? out_bytes - s.cached_bytes : 0;
  std::size_t medium_blocks = 0, medium_bytes = 0;
  for (MediumTier& m : h->medium) {
    LockGuard g(medium_lock(h, m));
    medium_blocks += m.blocks;
    medium_bytes += m.bytes;
  }
  s.medium_blocks = medium_blocks > medium_cached_blocks ? medium_blocks - medium_cached_blocks : 0;
  s.medium_bytes = medium_bytes > medium_cached_bytes ? medium_bytes - medium_cached_bytes : 0;
  s.cached_blocks += medium_cached_blocks;
  s.cached_bytes += medium_cached_bytes;
  {
    LockGuard g(h->large.lock);
    s.large_blocks = h->large.count;
    s.large_bytes = h->large.bytes;
  }
  // Parked blocks are in the tier's live list: to the program they are free.
  s.large_blocks = s.large_blocks > large_parked_blocks ? s.large_blocks - large_parked_blocks : 0;
  s.large_bytes = s.large_bytes > large_parked_bytes ? s.large_bytes - large_parked_bytes : 0;
  s.cached_blocks += large_parked_blocks;
  s.cached_bytes += large_parked_bytes;
  s.in_use_bytes = s.small_bytes + s.medium_bytes + s.large_bytes;
  // The peak counter lags by up to kCentralAccountSlack per thread; what a
  // summary sees is a peak too, and is kept.
  s.peak_in_use_bytes = h->peak_central_bytes.load(std::memory_order_relaxed);
  if (s.peak_in_use_bytes < s.in_use_bytes + s.cached_bytes) {
    s.peak_in_use_bytes = s.in_use_bytes + s.cached_bytes;
    h->peak_central_bytes.store(s.peak_in_use_bytes, std::memory_order_relaxed);
  }
  s.os_reserved_bytes = h->os_bytes.load(std::memory_order_relaxed);
  s.peak_os_reserved_bytes = h->peak_os_bytes.load(std::memory_order_relaxed);
  s.os_map_calls = h->map_calls.load(std::memory_order_relaxed);
  s.chunk_map_bytes = chunk_map::leaf_bytes();
  std::size_t n = out->size < sizeof s ? out->size : sizeof s;
  std::memcpy(out, &s, n);
  out->size = n;
  return 0;
}

STRATA_API void strata_print_summary(strata_pool_t* pool, int fd) noexcept {
  strata_heap_summary_t s{};
  s.size = sizeof s;
  if (strata_heap_summary(pool, &s) != 0) return;
  MessageBuilder m;
  m.str(pool ? "strata pool " : "strata process heap").str(pool ? "" : "");
  if (pool) m.ptr(pool);
  m.str(" summary\n");
  m.str("  in use:        ").bytes(s.in_use_bytes).str(" (peak handed out ").bytes(s.peak_in_use_bytes).str(")\n");
  m.str("  small blocks:  ").dec(s.small_blocks).str(", ").bytes(s.small_bytes).str("\n");
  m.str("  medium blocks: ").dec(s.medium_blocks).str(", ").bytes(s.medium_bytes).str("\n");
  m.str("  large blocks:  ").dec(s.large_blocks).str(", ").bytes(s.large_bytes).str("\n");
  m.str("  thread caches: ").dec(s.thread_caches).str(" holding ").dec(s.cached_blocks).str(" free blocks, ")
      .bytes(s.cached_bytes).str("\n");
  m.str("  from the OS:   ").bytes(s.os_reserved_bytes).str(" mapped now, peak ").bytes(s.peak_os_reserved_bytes)
      .str(", ").dec(s.os_map_calls).str(" mmap calls\n");
  m.write(fd);
}

}  // extern "C"
