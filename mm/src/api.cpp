// strata — the exported C API: the malloc family, pools, trim and thread
// flush, each a thin wrapper over the fast paths (fast_path.hpp) and the
// slow paths behind them.  Compiled twice: into libstrata.a as is, and into
// libstrata.so with STRATA_MALLOC_ALIASES, where malloc, free, calloc and
// realloc are aliases of their strata_* counterparts.  Errors, the summary
// and the rest of the malloc family live in error.cpp, summary.cpp and
// override_malloc.cpp.
#include <errno.h>

#include <stdint.h>

#include <cstddef>
#include <cstring>

#include "error.hpp"
#include "fast_path.hpp"
#include "process.hpp"
#include "realloc.hpp"
#include "thread_local.hpp"
#include "../report/report.hpp"
#include "leakreg.hpp"

using namespace strata::detail;

namespace {
// The exit report (STRATA_SHOW_STATS, STRATA_REPORT) and the leak report
// (STRATA_REPORT_LEAKS), read at this copy's finalisation: the API's calls
// up into the report and leak layers.
__attribute__((constructor)) void register_reports() {
  strata::report::register_exit_report();
#ifdef STRATA_MALLOC_ALIASES
  strata::leakreg::register_leak_report(true);
#else
  strata::leakreg::register_leak_report(false);
#endif
}
}  // namespace

namespace {
// Whether `pool` is a live pool of this copy of strata.  The chunk map is
// read first: a destroyed pool's memory is unmapped (its entry a kFreed
// tombstone), so its header is never read then.  STRATA_ERROR_NONE, or why not.
strata_error_kind pool_check(strata_pool_t* pool) noexcept {
  std::uintptr_t e = chunk_map::lookup(reinterpret_cast<std::uintptr_t>(pool));
  if (e != chunk_map::make(pool, ChunkKind::kMeta))
    return chunk_map::kind_of(e) == ChunkKind::kFreed ? STRATA_ERROR_FREED_MEMORY : STRATA_ERROR_FOREIGN_POINTER;
  Heap* h = heap_or_default(pool);
  return h->magic == kHeapMagic && h->is_pool ? STRATA_ERROR_NONE : STRATA_ERROR_FOREIGN_POINTER;
}
constexpr const char* kNotAPool = "not a live pool: destroyed already, or never a pool of this strata";
}  // namespace

extern "C" {

STRATA_API void* strata_malloc(size_t n) noexcept { return process_malloc(n); }

STRATA_API void strata_free(void* p) noexcept { heap_free(p, t_cache, nullptr, "strata_free"); }

STRATA_API void strata_free_sized(void* p, size_t size) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  Span* s;
  if (STRATA_LIKELY(small_block_start(a, chunk_map::lookup_unchecked(a), &s) && size <= s->block_size))
    return heap_free(p, t_cache, nullptr, "free_sized");
  if (!p) return;
  Info in = classify(p);
  if (in.err != STRATA_ERROR_NONE) return report(in.err, p, "free_sized", in.msg);
  std::size_t usable = usable_of(in, p);
  if (size > usable)
    report(STRATA_ERROR_WRONG_SIZE, p, "free_sized",
           "the size given to a sized free or delete is larger than the block: the caller's size is wrong");
  free_valid(in, p, "free_sized");
}

STRATA_API size_t strata_heap_trim(strata_pool_t* pool) noexcept { return heap_trim(heap_or_default(pool)); }

STRATA_API void* strata_calloc(size_t count, size_t size) noexcept {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (n > kMaxMediumSize) {  // a fresh mapping is already zero
    void* p = large_alloc(&g_default_heap, n, kMinAlign, /*use_cache=*/false);
    if (!p && n <= kMaxRequest) {
      release_free_memory(&g_default_heap);
      p = large_alloc(&g_default_heap, n, kMinAlign, /*use_cache=*/false);
    }
    if (!p) errno = ENOMEM;
    return p;
  }
  void* p = strata_malloc(n);
  if (p) std::memset(p, 0, n);
  return p;
}

// The common case of a realloc that stays in place, decided with the same
// checks as the free fast path and without a stack frame; everything else
// goes through heap_realloc (a large block through large_realloc).
STRATA_API void* strata_realloc(void* p, size_t n) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t e = chunk_map::lookup_unchecked(a);
  Span* s;
  if (small_block_start(a, e, &s)) {
    std::size_t bs = s->block_size;
    if (static_cast<Block*>(p)->cookie != (a ^ s->secret) && small_keeps_in_place(n, bs)) return p;
  } else if (chunk_map::kind_of(e) == ChunkKind::kMedium) {
    if (medium_realloc_untouched(chunk_map::owner_of<MediumPool>(e), p, n)) return p;
  } else if (chunk_map::kind_of(e) == ChunkKind::kLarge) {
    return large_realloc(chunk_map::owner_of<LargeBlock>(e), p, n);
  }
  return heap_realloc(nullptr, p, n, "strata_realloc");
}

STRATA_API void* strata_aligned_alloc(size_t alignment, size_t size) noexcept {
  return heap_aligned_alloc(&g_default_heap, alignment, size);
}

STRATA_API size_t strata_usable_size(const void* p) noexcept {
  if (!p) return 0;
  Info in = classify(p);
  if (in.err != STRATA_ERROR_NONE) {
    report(in.err, p, "strata_usable_size", in.msg);
    return 0;
  }
  return usable_of(in, p);
}

STRATA_API strata_error_handler_t strata_set_error_handler(strata_error_handler_t handler, void* user) noexcept {
  return set_error_handler(handler, user);
}

STRATA_API const char* strata_error_kind_name(strata_error_kind kind) noexcept { return error_kind_name(kind); }

// ---- pools ----
STRATA_API strata_pool_t* strata_pool_create(void) noexcept {
  return reinterpret_cast<strata_pool_t*>(heap_create());
}

STRATA_API strata_pool_t* strata_pool_create_child(strata_pool_t* parent) noexcept {
  if (!parent) return nullptr;
  if (strata_error_kind k = pool_check(parent)) {
    report(k, parent, "strata_pool_create_child", kNotAPool);
    return nullptr;
  }
  return reinterpret_cast<strata_pool_t*>(heap_create(heap_or_default(parent)));
}

STRATA_API void strata_pool_reset(strata_pool_t* pool) noexcept {
  if (!pool) return;
  if (strata_error_kind k = pool_check(pool)) return report(k, pool, "strata_pool_reset", kNotAPool);
  heap_reset(heap_or_default(pool));
}

STRATA_API void* strata_pool_malloc(strata_pool_t* pool, size_t n) noexcept {
  if (!pool) return strata_malloc(n);
  return heap_alloc(heap_or_default(pool), n);
}

STRATA_API void* strata_pool_calloc(strata_pool_t* pool, size_t count, size_t size) noexcept {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = strata_pool_malloc(pool, n);
  if (p) std::memset(p, 0, n);
  return p;
}

STRATA_API void* strata_pool_aligned_alloc(strata_pool_t* pool, size_t alignment, size_t size) noexcept {
  return heap_aligned_alloc(heap_or_default(pool), alignment, size);
}

STRATA_API void* strata_pool_realloc(strata_pool_t* pool, void* p, size_t n) noexcept {
  return heap_realloc(heap_or_default(pool), p, n, "strata_pool_realloc");
}

STRATA_API void strata_pool_free(strata_pool_t* pool, void* p) noexcept {
  if (!pool) return strata_free(p);
  Heap* h = heap_or_default(pool);
  ThreadCache* tc = cache_lookup(h);
  heap_free(p, tc ? tc : &g_empty_cache, h, "strata_pool_free");
}

STRATA_API void strata_pool_destroy(strata_pool_t* pool) noexcept {
  if (!pool) return;
  if (strata_error_kind k = pool_check(pool)) return report(k, pool, "strata_pool_destroy", kNotAPool);
  heap_destroy(heap_or_default(pool));
}

STRATA_API strata_pool_t* strata_pool_of(const void* p) noexcept {
  if (!p) return nullptr;
  Info in = classify(p);
  if (in.err != STRATA_ERROR_NONE || !in.heap || !in.heap->is_pool) return nullptr;
  return reinterpret_cast<strata_pool_t*>(in.heap);
}

// ---- thread-local blocks ----
STRATA_API strata_thread_local_t* strata_thread_local_create_ex(size_t size, void (*init)(void*, void*),
                                                                void (*fini)(void*, void*), void* ctx) noexcept {
  ensure_process_init();
  return reinterpret_cast<strata_thread_local_t*>(thread_local_create(&g_default_heap, size, init, fini, ctx));
}

STRATA_API strata_thread_local_t* strata_thread_local_create(size_t size) noexcept {
  return strata_thread_local_create_ex(size, nullptr, nullptr, nullptr);
}

STRATA_API void* strata_thread_local_get(strata_thread_local_t* handle) noexcept {
  return thread_local_get(reinterpret_cast<ThreadLocalSlot*>(handle));
}

STRATA_API void strata_thread_local_destroy(strata_thread_local_t* handle) noexcept {
  if (handle) thread_local_destroy(reinterpret_cast<ThreadLocalSlot*>(handle));
}

STRATA_API size_t strata_release_all(void) noexcept {
  if (!process_unloadable()) return SIZE_MAX;
  return process_release_all().live_blocks;
}

STRATA_API void strata_thread_flush(void) noexcept {
  if (ThreadCache* tc = cache_lookup(&g_default_heap)) cache_flush_all(tc);
}

// ---- summary ----

#ifdef STRATA_MALLOC_ALIASES
// libstrata.so: malloc, free, calloc and realloc are the same functions as
// their strata_* counterparts (aliases, one address), so a program's call
// reaches the fast path without a wrapper's jump and a PLT call.  The rest of the family is in
// override_malloc.cpp.
__attribute__((visibility("default"), alias("strata_malloc"))) void* malloc(size_t n) noexcept;
__attribute__((visibility("default"), alias("strata_free"))) void free(void* p) noexcept;
__attribute__((visibility("default"), alias("strata_calloc"))) void* calloc(size_t count, size_t size) noexcept;
__attribute__((visibility("default"), alias("strata_realloc"))) void* realloc(void* p, size_t n) noexcept;
#endif

}  // extern "C"
