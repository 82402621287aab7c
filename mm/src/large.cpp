// strata — the large tier: one mapping per block, 64 KiB granular, grown and
// shrunk in place with mremap, moved without copying when it must move.
// The header (LargeBlock) sits just below the user pointer, inside the mapping.
#include "heap.hpp"
#include "os.hpp"

namespace strata::detail {

namespace {

void link_locked(LargeTier& t, LargeBlock* lb) noexcept {
  lb->prev = nullptr;
  lb->next = t.blocks;
  if (t.blocks) t.blocks->prev = lb;
  t.blocks = lb;
  t.count++;
  t.bytes += lb->map_size;
}
void unlink_locked(LargeTier& t, LargeBlock* lb) noexcept {
  if (lb->prev) lb->prev->next = lb->next; else t.blocks = lb->next;
  if (lb->next) lb->next->prev = lb->prev;
  t.count--;
  t.bytes -= lb->map_size;
}

void cache_push_locked(LargeTier& t, LargeBlock* lb) noexcept {
  lb->magic = kLargeCachedMagic;
  lb->prev = nullptr;
  lb->next = t.cached;
  if (t.cached) t.cached->prev = lb;
  t.cached = lb;
  t.cached_count++;
  t.cached_bytes += lb->map_size;
}
void cache_remove_locked(LargeTier& t, LargeBlock* lb) noexcept {
  if (lb->prev) lb->prev->next = lb->next; else t.cached = lb->next;
  if (lb->next) lb->next->prev = lb->prev;
  t.cached_count--;
  t.cached_bytes -= lb->map_size;
}

// Best fit among the kept mappings: at least map_size, at most 25% more.
LargeBlock* cache_take_locked(LargeTier& t, std::size_t map_size) noexcept {
  LargeBlock* best = nullptr;
  for (LargeBlock* lb = t.cached; lb; lb = lb->next)
    if (lb->map_size >= map_size && lb->map_size <= map_size + map_size / 4 && (!best || lb->map_size < best->map_size))
      best = lb;
  if (best) cache_remove_locked(t, best);
  return best;
}

}  // namespace

void* large_alloc(Heap* h, std::size_t size, std::size_t align, bool use_cache) noexcept {
  if (use_cache && align <= kLargeHeaderSize && size <= kLargeCacheMaxBlock) {
    std::size_t map_size = align_up(size + kLargeHeaderSize, kChunkSize);
    LargeBlock* lb;
    {
      LockGuard g(h->large.lock);
      lb = cache_take_locked(h->large, map_size);
      if (lb) {
        lb->magic = kLargeMagic;
        link_locked(h->large, lb);
      }
    }
    if (lb) {
      heap_account_central(h, static_cast<std::ptrdiff_t>(lb->map_size));
      return lb->user;
    }
  }
  if (align < kLargeHeaderSize) align = kLargeHeaderSize;
  std::size_t extra = align + kLargeHeaderSize;  // room for the header below an aligned user pointer
  if (size > (std::size_t{1} << 62) || align > (std::size_t{1} << 40)) return nullptr;
  std::size_t map_size = align_up(size + extra, kChunkSize);
  char* base = static_cast<char*>(os::map_aligned(map_size, kChunkSize));
  if (!base) return nullptr;
  auto user = reinterpret_cast<char*>(align_up(reinterpret_cast<std::uintptr_t>(base) + kLargeHeaderSize, align));
  auto* lb = reinterpret_cast<LargeBlock*>(user - kLargeHeaderSize);
  if (!chunk_map::set_range(base, map_size, chunk_map::make(lb, ChunkKind::kLarge))) {
    os::unmap(base, map_size);
    return nullptr;
  }
  os::name_region(base, map_size, "strata:large");
  lb->magic = kLargeMagic;
  lb->heap = h;
  lb->base = base;
  lb->map_size = map_size;
  lb->user = user;
  h->map_calls.fetch_add(1, std::memory_order_relaxed);
  std::size_t now = h->os_bytes.fetch_add(map_size, std::memory_order_relaxed) + map_size;
  std::size_t peak = h->peak_os_bytes.load(std::memory_order_relaxed);
  while (now > peak && !h->peak_os_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  {
    LockGuard g(h->large.lock);
    link_locked(h->large, lb);
  }
  heap_account_central(h, static_cast<std::ptrdiff_t>(map_size));
  return user;
}

void large_free(Heap* h, LargeBlock* lb) noexcept {
  std::size_t size = lb->map_size;
  {
    LockGuard g(h->large.lock);
    unlink_locked(h->large, lb);
    LargeTier& t = h->large;
    if (size <= kLargeCacheMaxBlock && lb->user == lb->base + kLargeHeaderSize &&
        t.cached_count < kLargeCacheMaxBlocks && t.cached_bytes + size <= kLargeCacheMaxBytes) {
      cache_push_locked(t, lb);
      heap_account_central(h, -static_cast<std::ptrdiff_t>(size));
      return;
    }
  }
  lb->magic = 0;
  heap_account_central(h, -static_cast<std::ptrdiff_t>(size));
  heap_unmap(h, lb->base, size);
}

bool large_resize_in_place(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept {
  std::size_t head = static_cast<std::size_t>(static_cast<char*>(lb->user) - lb->base);
  if (new_size > (std::size_t{1} << 62)) return false;
  std::size_t new_map = align_up(head + new_size, kChunkSize);
  std::size_t old_map = lb->map_size;
  if (new_map == old_map) return true;
  if (new_map < old_map) {
    heap_unmap(h, lb->base + new_map, old_map - new_map);
  } else {
    if (!os::remap_in_place(lb->base, old_map, new_map)) return false;
    if (!chunk_map::set_range(lb->base + old_map, new_map - old_map, chunk_map::make(lb, ChunkKind::kLarge))) {
      os::remap_in_place(lb->base, new_map, old_map);
      return false;
    }
    std::size_t now = h->os_bytes.fetch_add(new_map - old_map, std::memory_order_relaxed) + new_map - old_map;
    std::size_t peak = h->peak_os_bytes.load(std::memory_order_relaxed);
    while (now > peak && !h->peak_os_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }
  {
    LockGuard g(h->large.lock);
    h->large.bytes += new_map - old_map;
    lb->map_size = new_map;
  }
  heap_account_central(h, static_cast<std::ptrdiff_t>(new_map) - static_cast<std::ptrdiff_t>(old_map));
  return true;
}

void* large_move(Heap* h, LargeBlock* lb, std::size_t new_size) noexcept {
  std::size_t head = static_cast<std::size_t>(static_cast<char*>(lb->user) - lb->base);
  if (new_size > (std::size_t{1} << 62)) return nullptr;
  std::size_t new_map = align_up(head + new_size, kChunkSize);
  std::size_t old_map = lb->map_size;
  char* old_base = lb->base;
  LockGuard g(h->large.lock);
  unlink_locked(h->large, lb);
  auto* nb = static_cast<char*>(os::remap_move_aligned(old_base, old_map, new_map, kChunkSize));
  if (!nb) {
    link_locked(h->large, lb);
    return nullptr;
  }
  auto* nlb = reinterpret_cast<LargeBlock*>(nb + (reinterpret_cast<char*>(lb) - old_base));
  if (!chunk_map::set_range(nb, new_map, chunk_map::make(nlb, ChunkKind::kLarge))) {
    // Cannot index the new place: move back (the old range is still indexed).
    void* back = os::remap_move_aligned(nb, new_map, old_map, kChunkSize);
    STRATA_CHECK(back, "large block lost while moving back");
    return nullptr;
  }
  chunk_map::clear_range(old_base, old_map);
  // The old range may overlap the new one only if mremap reused it; it cannot
  // (the destination was a fresh reservation), so the tombstones are safe.
  nlb->base = nb;
  nlb->map_size = new_map;
  nlb->user = nb + head;
  link_locked(h->large, nlb);
  h->map_calls.fetch_add(1, std::memory_order_relaxed);
  h->os_bytes.fetch_add(new_map - old_map, std::memory_order_relaxed);
  std::size_t now = h->os_bytes.load(std::memory_order_relaxed);
  std::size_t peak = h->peak_os_bytes.load(std::memory_order_relaxed);
  while (now > peak && !h->peak_os_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  heap_account_central(h, static_cast<std::ptrdiff_t>(new_map) - static_cast<std::ptrdiff_t>(old_map));
  return nlb->user;
}

std::size_t large_trim(Heap* h) noexcept {
  std::size_t released = 0;
  for (;;) {
    LargeBlock* lb;
    {
      LockGuard g(h->large.lock);
      lb = h->large.cached;
      if (!lb) break;
      cache_remove_locked(h->large, lb);
    }
    lb->magic = 0;
    released += lb->map_size;
    heap_unmap(h, lb->base, lb->map_size);
  }
  return released;
}

void large_release_all(Heap* h) noexcept {
  for (LargeBlock* lb = h->large.cached; lb;) {
    LargeBlock* next = lb->next;
    heap_unmap(h, lb->base, lb->map_size);
    lb = next;
  }
  h->large.cached = nullptr;
  h->large.cached_count = h->large.cached_bytes = 0;
  LargeBlock* lb = h->large.blocks;
  while (lb) {
    LargeBlock* next = lb->next;
    heap_unmap(h, lb->base, lb->map_size);
    lb = next;
  }
  h->large.blocks = nullptr;
  h->large.count = h->large.bytes = 0;
}

}  // namespace strata::detail
