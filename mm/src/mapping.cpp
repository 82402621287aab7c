// strata — a heap's memory from the OS: mapping and unmapping with the chunk
// map kept in step, the byte counts (mapped, handed out, and their peaks),
// the metadata bump allocator, and the free-cookie secret that must exist
// before the first mapping.
// Layer: below the tiers (calls chunk_map and os only).
#include "heap.hpp"
#include "os.hpp"

namespace strata::detail {

std::atomic<std::uintptr_t> g_secret{0};
std::uintptr_t g_link_key = 0;

// The link key: bit 0 set (an all-zero link never decodes to a plausible
// block), and each of its two top bytes — the bits no block address has —
// neither 0x00 nor 0xff, so that a link overwritten with a small or a small
// negative number (top bytes 0x0000 or 0xffff: most data) always decodes to
// an implausible address; any other value passes with probability 1/64,516
// times 1/16 (the alignment).
static std::uintptr_t link_key_from(std::uint64_t r) noexcept {
  auto byte_ok = [](std::uint64_t b) { return 1 + b % 254; };  // 0x01 .. 0xfe
  std::uint64_t hi = byte_ok((r >> 56) & 0xff) << 56 | byte_ok((r >> 48) & 0xff) << 48;
  return static_cast<std::uintptr_t>((r & 0x0000ffffffffffffull) | hi | 1);
}

// The thread that sets g_secret sets the link key from its own second random
// word (bit 0 set: an all-zero link never decodes to a plausible block); a
// thread that lost the race waits for it, so that no block is linked with a
// key of 0.  The fast paths read the key plainly: it never changes again.
void secret_init() noexcept {
  if (__atomic_load_n(&g_link_key, __ATOMIC_ACQUIRE)) return;
  std::uintptr_t expected = 0;
  if (g_secret.compare_exchange_strong(expected, static_cast<std::uintptr_t>(os::random_u64() | 1),
                                       std::memory_order_acq_rel))
    __atomic_store_n(&g_link_key, link_key_from(os::random_u64()), __ATOMIC_RELEASE);
  else
    while (!__atomic_load_n(&g_link_key, __ATOMIC_ACQUIRE)) {
    }
}

void heap_count_central(Heap* h, std::ptrdiff_t delta) noexcept {
  std::size_t now = h->central_bytes.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed) +
                    static_cast<std::size_t>(delta);
  // The peak is a sample: a racing update may lower it by one step; it is a
  // report, not an invariant.  The count itself may dip below zero for a
  // moment (a thread counts the frees of blocks whose handing out another
  // thread has not counted yet): no peak then.
  if (delta > 0 && static_cast<std::ptrdiff_t>(now) > 0 && now > h->peak_central_bytes.load(std::memory_order_relaxed))
    h->peak_central_bytes.store(now, std::memory_order_relaxed);
}

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
  heap_count_central(h, delta);
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

}  // namespace strata::detail
