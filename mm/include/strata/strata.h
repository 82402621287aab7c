/* strata — a FastMM-style memory manager for Linux.  C API.
 *
 * Every function here is thread-safe, never throws, and may be called before
 * main(), after fork() and during thread or process exit.  Blocks are aligned
 * to at least 16 bytes.  Any thread may free any block.
 *
 * Pointer errors (double free, a pointer that strata did not hand out, a
 * pointer into the inside of a block, a block of another pool) are reported
 * through the error handler (see strata_set_error_handler); the default
 * handler writes the diagnosis with the address to stderr and aborts.
 */
#ifndef STRATA_STRATA_H
#define STRATA_STRATA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#define STRATA_NOEXCEPT noexcept
#else
#define STRATA_NOEXCEPT
#endif

#if defined(__GNUC__)
#define STRATA_API __attribute__((visibility("default")))
#define STRATA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define STRATA_API
#define STRATA_MALLOC_ATTR
#endif

#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 1
#define STRATA_VERSION_PATCH 0

/* ---- Core allocation ---------------------------------------------------- */

/* Returns a block of at least `size` bytes (a unique block for size 0), or
 * NULL with errno = ENOMEM when the OS refuses memory. */
STRATA_API STRATA_MALLOC_ATTR void* strata_malloc(size_t size) STRATA_NOEXCEPT;

/* Zeroed block of count*size bytes; NULL (errno = ENOMEM) on overflow. */
STRATA_API STRATA_MALLOC_ATTR void* strata_calloc(size_t count, size_t size) STRATA_NOEXCEPT;

/* FastMM-style realloc: in place whenever possible; a move over-allocates
 * for further growth.  realloc(NULL, n) == malloc(n).  realloc(p, 0) frees p
 * and returns NULL (glibc's behaviour).  On failure returns NULL with
 * errno = ENOMEM and leaves p untouched. */
STRATA_API void* strata_realloc(void* p, size_t size) STRATA_NOEXCEPT;

/* Frees a block of any pool.  free(NULL) does nothing. */
STRATA_API void strata_free(void* p) STRATA_NOEXCEPT;

/* Frees p, a block the caller knows to be at least `size` bytes (C23
 * free_sized, sized operator delete).  A size larger than the block's usable
 * size is reported as STRATA_ERROR_WRONG_SIZE; the block is freed all the
 * same if the handler returns.  A smaller size (e.g. after a realloc that
 * over-allocated) is correct. */
STRATA_API void strata_free_sized(void* p, size_t size) STRATA_NOEXCEPT;

/* Block aligned to `alignment`, which must be a power of two (any size up to
 * 1 GiB of alignment is honoured).  Returns NULL with errno = EINVAL for a
 * bad alignment, ENOMEM when out of memory. */
STRATA_API STRATA_MALLOC_ATTR void* strata_aligned_alloc(size_t alignment, size_t size) STRATA_NOEXCEPT;

/* Bytes usable in the block at p (>= the size requested).  0 for NULL. */
STRATA_API size_t strata_usable_size(const void* p) STRATA_NOEXCEPT;

/* ---- Errors ------------------------------------------------------------- */

typedef enum strata_error_kind {
  STRATA_ERROR_NONE = 0,
  STRATA_ERROR_FOREIGN_POINTER = 1,  /* not memory of this strata: stack, global, another allocator, wild */
  STRATA_ERROR_INTERIOR_POINTER = 2, /* inside a strata block or its metadata, not at a block start */
  STRATA_ERROR_DOUBLE_FREE = 3,      /* the block is already free */
  STRATA_ERROR_FREED_MEMORY = 4,     /* memory strata already returned to the OS (a late double free) */
  STRATA_ERROR_WRONG_POOL = 5,       /* strata_pool_free/realloc given a block of another pool */
  STRATA_ERROR_CORRUPTION = 6,       /* strata's metadata next to the block was overwritten */
  STRATA_ERROR_WRONG_SIZE = 7        /* a sized free/delete named more bytes than the block has */
} strata_error_kind;

typedef struct strata_error {
  strata_error_kind kind;
  const void* address;   /* the pointer that was passed in */
  const char* operation; /* "strata_free", "strata_realloc", "free", ... */
  const char* message;   /* the diagnosis in words (static storage) */
} strata_error_t;

/* Called with the diagnosis; if it returns, the offending operation does
 * nothing (free) or returns NULL (realloc, usable_size returns 0). */
typedef void (*strata_error_handler_t)(const strata_error_t* error, void* user);

/* Installs `handler` (NULL: the default, which prints and aborts) and
 * returns the previous one.  Process-wide for this copy of strata. */
STRATA_API strata_error_handler_t strata_set_error_handler(strata_error_handler_t handler,
                                                           void* user) STRATA_NOEXCEPT;

/* Short constant name of an error kind, e.g. "double free". */
STRATA_API const char* strata_error_kind_name(strata_error_kind kind) STRATA_NOEXCEPT;

/* ---- Pools -------------------------------------------------------------- */

/* A pool is a heap of its own: every byte it takes from the OS (blocks of all
 * tiers, per-thread caches, its bookkeeping) belongs to it, and
 * strata_pool_destroy returns all of it to the OS at once, whatever blocks are
 * still live.  Any thread may use a pool; strata_free() also frees pool
 * blocks.  The process heap used by strata_malloc is not a strata_pool_t. */
typedef struct strata_pool strata_pool_t;

STRATA_API strata_pool_t* strata_pool_create(void) STRATA_NOEXCEPT;
STRATA_API STRATA_MALLOC_ATTR void* strata_pool_malloc(strata_pool_t* pool, size_t size) STRATA_NOEXCEPT;
STRATA_API STRATA_MALLOC_ATTR void* strata_pool_calloc(strata_pool_t* pool, size_t count, size_t size) STRATA_NOEXCEPT;
STRATA_API STRATA_MALLOC_ATTR void* strata_pool_aligned_alloc(strata_pool_t* pool, size_t alignment,
                                                               size_t size) STRATA_NOEXCEPT;
/* Reallocates within `pool`; p must be NULL or a block of `pool`. */
STRATA_API void* strata_pool_realloc(strata_pool_t* pool, void* p, size_t size) STRATA_NOEXCEPT;
/* Frees a block of `pool` (a block of another pool is reported as WRONG_POOL). */
STRATA_API void strata_pool_free(strata_pool_t* pool, void* p) STRATA_NOEXCEPT;
/* Releases every mapping the pool took from the OS, its children's first.
 * No thread may use the pool or any of its blocks afterwards.  Costs
 * O(mappings), not O(blocks).  NULL does nothing.  A pool destroyed already
 * (FREED_MEMORY) or a pointer that is no pool (FOREIGN_POINTER) is reported
 * through the error handler and nothing happens; so for strata_pool_reset
 * and strata_pool_create_child (which then returns NULL).  A new pool that
 * got the destroyed one's address is, of course, live. */
STRATA_API void strata_pool_destroy(strata_pool_t* pool) STRATA_NOEXCEPT;
/* A pool nested in `parent` (an arena of an arena): destroying or resetting
 * the parent destroys or resets its children first.  NULL when out of
 * memory or when parent is NULL. */
STRATA_API strata_pool_t* strata_pool_create_child(strata_pool_t* parent) STRATA_NOEXCEPT;
/* Drops every block of the pool, and of its children, in one call: the
 * memory stays mapped for reuse (free spans decay, medium pools are trimmed
 * after the trim delay, large mappings are kept within the usual budget),
 * every thread's cache of the pool is emptied.  No thread may use the pool or
 * any of its blocks meanwhile; afterwards it is used like a new pool.  Costs
 * O(mappings), not O(blocks).  NULL does nothing (the process heap cannot be
 * reset). */
STRATA_API void strata_pool_reset(strata_pool_t* pool) STRATA_NOEXCEPT;
/* The pool that owns block p, NULL for a block of the process heap or for a
 * pointer that is not a live strata block. */
STRATA_API strata_pool_t* strata_pool_of(const void* p) STRATA_NOEXCEPT;

/* ---- Summary ------------------------------------------------------------ */

/* A short summary of one heap.  Versioned: set `size` to sizeof before the
 * call; strata fills only what fits.  Counters of blocks in per-thread
 * caches are read without stopping those threads, so while other threads
 * run the figures are a consistent-enough snapshot, not an atomic one. */
typedef struct strata_heap_summary {
  size_t size;                /* in: sizeof(strata_heap_summary_t) */
  unsigned version;           /* out: 2 (1: without chunk_map_bytes) */
  size_t small_blocks;        /* small blocks in use by the program */
  size_t small_bytes;         /* their bytes (block sizes) */
  size_t medium_blocks, medium_bytes;
  size_t large_blocks, large_bytes;
  size_t cached_blocks;       /* free small blocks held in per-thread caches */
  size_t cached_bytes;
  size_t in_use_bytes;        /* small + medium + large bytes */
  size_t peak_in_use_bytes;   /* high-water mark of in_use_bytes + cached (sampled on slow paths,
                                 within 64 KiB per thread) */
  size_t os_reserved_bytes;   /* bytes currently mapped from the OS for this heap */
  size_t peak_os_reserved_bytes;
  size_t os_map_calls;        /* mmap calls made for this heap so far */
  size_t thread_caches;       /* per-thread caches currently attached */
  /* Version 2.  Process-wide, the same for every heap: bytes mapped for
   * strata's address map (one 512 KiB leaf per 4 GiB window of the address
   * space any heap has used), kept for the life of the process. */
  size_t chunk_map_bytes;
} strata_heap_summary_t;

/* Fills `out` for `pool` (NULL: the process heap).  Returns 0, or -1 if
 * out is NULL or out->size is too small for version 1's first fields. */
STRATA_API int strata_heap_summary(strata_pool_t* pool, strata_heap_summary_t* out) STRATA_NOEXCEPT;

/* Writes a few human-readable lines summarising `pool` (NULL: process heap)
 * to file descriptor fd, without allocating. */
STRATA_API void strata_print_summary(strata_pool_t* pool, int fd) STRATA_NOEXCEPT;

/* Returns free memory to the OS: the calling thread's cache of the heap is
 * flushed, empty spans, empty medium pools and kept large mappings are
 * unmapped, and the whole pages inside the free runs of the other medium
 * pools are given back (madvise MADV_DONTNEED; they read as zero when next
 * used).  Returns the number of bytes unmapped or given back (free pages
 * given back before count again).  pool NULL: the process heap. */
STRATA_API size_t strata_heap_trim(strata_pool_t* pool) STRATA_NOEXCEPT;

/* Returns the free memory held by the calling thread's cache of the process
 * heap to the shared heap (useful before a thread goes idle for long). */
STRATA_API void strata_thread_flush(void) STRATA_NOEXCEPT;

/* ---- Thread-local blocks ---------------------------------------------- */

/* Per-thread state that leaves nothing behind: strata_thread_local_get
 * returns the calling thread's zero-filled block of `size` bytes, made on
 * its first call and the same for the rest of the thread's life.  The block
 * is freed when its thread exits, when the handle is destroyed, or when the
 * heap is released (strata_release_all, the unload of the module that
 * carries this copy of strata), whichever comes first; no pthread key, TLS
 * destructor or hook of the caller's is involved.  Blocks belong to the
 * process heap of this copy of strata.  At most 4,096 handles exist at once. */
typedef struct strata_thread_local strata_thread_local_t;
/* NULL when out of memory or out of handles. */
STRATA_API strata_thread_local_t* strata_thread_local_create(size_t size) STRATA_NOEXCEPT;
/* The same with callbacks: init(block, ctx) after a thread's block is made
 * and zero-filled, fini(block, ctx) before it is freed (at thread exit in the
 * exiting thread; at destroy or release in the caller's).  Either may be NULL. */
STRATA_API strata_thread_local_t* strata_thread_local_create_ex(size_t size, void (*init)(void* block, void* ctx),
                                                                void (*fini)(void* block, void* ctx),
                                                                void* ctx) STRATA_NOEXCEPT;
/* The calling thread's block; NULL only when out of memory (or when called
 * from a thread that strata has already seen exit). */
STRATA_API void* strata_thread_local_get(strata_thread_local_t* handle) STRATA_NOEXCEPT;
/* Frees every thread's block of the handle (running fini for each) and the
 * handle.  No thread may use the handle or its blocks meanwhile.  NULL does
 * nothing. */
STRATA_API void strata_thread_local_destroy(strata_thread_local_t* handle) STRATA_NOEXCEPT;

/* ---- Release ------------------------------------------------------------ */

/* Releases everything this copy of strata holds: every pool is destroyed,
 * the process heap gives back every mapping (blocks of all tiers, the
 * memory behind every thread's cache, its bookkeeping) and is empty and
 * usable again, and the address map's leaves are unmapped.  The caller
 * promises that no thread uses a block, a pool or a cache of this copy
 * meanwhile or afterwards (live blocks become invalid).
 * A copy of strata linked into a shared library does this by itself when
 * the library is unloaded (docs/unloading.md; STRATA_RELEASE_ON_UNLOAD=0
 * turns that off).  Returns the number of blocks that were still live, or
 * SIZE_MAX without releasing anything in libstrata.so, whose heap is the
 * whole process's malloc. */
STRATA_API size_t strata_release_all(void) STRATA_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* STRATA_STRATA_H */
