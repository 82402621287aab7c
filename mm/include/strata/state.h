/* strata — seeing inside a heap: its state per size class and tier, the
 * usage summary, a walk of its blocks, the regions it holds and the memory
 * map of the whole address space; and the report written from them (text,
 * JSON, SVG).  docs/introspection.md has the guide and the JSON schema.
 *
 * Every call here works on any heap: the process heap (pool NULL), a pool, a
 * module's private heap (the process heap of the copy of strata linked into
 * that module).  Every call is safe while other threads allocate and free:
 * it takes the heap's locks one at a time, for a short while each, reads
 * the per-thread caches without stopping their threads, and never allocates
 * from the heap it inspects (its scratch memory is mapped from the OS).  The
 * answers are exact when no other thread uses the heap meanwhile, a
 * consistent-enough snapshot otherwise.
 *
 * wait_ms bounds how long a call waits for each busy lock (FastMM5's lock
 * timeout): a part of the heap whose lock stays busy that long is skipped,
 * and the answer says it is incomplete.  STRATA_WAIT_FOREVER waits. */
#ifndef STRATA_STATE_H
#define STRATA_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "strata.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_WAIT_FOREVER 0xffffffffu

/* ---- State ---------------------------------------------------------------- */

#define STRATA_STATE_MAX_CLASSES 64

/* One small size class. */
typedef struct strata_class_state {
  size_t block_size;              /* bytes per block (the usable size of each) */
  size_t blocks_in_use;           /* blocks the program holds */
  size_t bytes_in_use;            /* blocks_in_use * block_size */
  size_t blocks_free_in_spans;    /* free blocks in the class's spans (never handed out included) */
  size_t blocks_in_thread_caches; /* free blocks held by thread caches (and the class's pending list) */
  size_t spans;                   /* 64 KiB spans assigned to the class */
  size_t bytes_reserved;          /* spans * 64 KiB */
} strata_class_state_t;

typedef struct strata_small_state {
  size_t blocks_in_use, bytes_in_use; /* the classes' sums */
  size_t bytes_reserved;              /* every span (assigned or empty) and the unused rest of the last span region */
  size_t free_bytes;                  /* free blocks (spans, caches), empty spans, the unused rest */
  size_t empty_spans;                 /* spans kept mapped with no class */
} strata_small_state_t;

typedef struct strata_medium_state {
  size_t pools;                       /* 1.25 MiB pools */
  size_t bytes_reserved;              /* pools * 1.25 MiB */
  size_t blocks_in_use, bytes_in_use; /* live blocks and their usable bytes (boundary tags excluded) */
  size_t blocks_in_thread_caches;     /* freed blocks held by thread caches */
  size_t bytes_in_thread_caches;      /* their bytes (tags included) */
  size_t free_bytes;                  /* free runs in the pools (tags included) + the caches' bytes */
  size_t largest_free_block;          /* the largest free run's usable bytes */
  size_t free_runs;                   /* free runs in the bins */
  size_t bins_in_use;                 /* bins (of 1,024 per arena, all arenas) holding a free run */
} strata_medium_state_t;

typedef struct strata_large_state {
  size_t blocks_in_use;   /* live large blocks */
  size_t bytes_requested; /* what the program (or realloc's growth policy) asked for */
  size_t bytes_in_use;    /* their usable bytes (to the end of each mapping) */
  size_t bytes_mapped;    /* their mappings */
  size_t kept_mappings;   /* freed blocks kept mapped for reuse */
  size_t kept_bytes;
  size_t parked_mappings; /* freed blocks parked in thread caches */
  size_t parked_bytes;
} strata_large_state_t;

/* FastMM's usage summary.  allocated + free + overhead == reserved, which
 * equals os_reserved_bytes (what the heap holds from the OS) when no other
 * thread uses the heap meanwhile. */
typedef struct strata_usage_summary {
  size_t allocated_bytes;    /* usable bytes of the live blocks: what the program holds */
  size_t free_bytes;         /* reserved, free for reuse: free blocks, caches, empty spans, kept mappings */
  size_t overhead_bytes;     /* block management: headers, tags, span headers and tails, bookkeeping */
  size_t reserved_bytes;     /* the sum of the three, counted from the heap's structures */
  size_t os_reserved_bytes;  /* the heap's own count of the bytes it has mapped */
  double efficiency_percent; /* 100 * allocated / reserved (FastMM: Allocated / (Allocated + Overhead)) */
} strata_usage_summary_t;

typedef struct strata_heap_state {
  size_t size;            /* in: sizeof(strata_heap_state_t); strata fills what fits */
  unsigned version;       /* out: 1 */
  int complete;           /* 1 if every lock was taken; 0 if a busy part was skipped */
  unsigned skipped_locks; /* locks not taken within wait_ms */
  unsigned class_count;   /* entries of classes[] used */
  size_t thread_caches;   /* per-thread caches attached to the heap */
  strata_class_state_t classes[STRATA_STATE_MAX_CLASSES];
  strata_small_state_t small;
  strata_medium_state_t medium;
  strata_large_state_t large;
  size_t bookkeeping_bytes; /* thread caches, directories, a pool's heap object */
  strata_usage_summary_t summary;
  size_t chunk_map_bytes;   /* process-wide: strata's address map (not in reserved_bytes) */
  size_t peak_os_reserved_bytes; /* the most the heap has held from the OS at once */
  size_t os_map_calls;           /* mmap calls made for the heap so far */
} strata_heap_state_t;

/* Fills `out` for `pool` (NULL: the process heap).  0 on success, -1 if out
 * is NULL or out->size is too small for the fields up to `classes`. */
STRATA_API int strata_heap_state(strata_pool_t* pool, strata_heap_state_t* out, unsigned wait_ms) STRATA_NOEXCEPT;

/* The usage summary alone (computed from the state).  0, or -1 if out is NULL. */
STRATA_API int strata_usage_summary(strata_pool_t* pool, strata_usage_summary_t* out, unsigned wait_ms) STRATA_NOEXCEPT;

/* ---- Block walk ----------------------------------------------------------- */

typedef enum strata_tier { STRATA_TIER_SMALL = 0, STRATA_TIER_MEDIUM = 1, STRATA_TIER_LARGE = 2 } strata_tier;

typedef struct strata_block_info {
  void* address;       /* the block's pointer (a free medium run: where its block would start) */
  size_t usable_size;  /* what strata_usable_size returns for it */
  strata_pool_t* pool; /* its pool, NULL for the process heap */
  strata_tier tier;
  unsigned size_class; /* small: the class index (block_size in the state); otherwise 0 */
  int live;            /* 1: held by the program; 0: free (in a span, a cache, a bin, kept or parked) */
} strata_block_info_t;

/* Return nonzero to go on, 0 to stop the walk. */
typedef int (*strata_block_visitor_t)(const strata_block_info_t* block, void* ctx);

#define STRATA_WALK_FREE 1u /* report free blocks too */

/* Calls visit for every live block of the heap (and every free one with
 * STRATA_WALK_FREE), tier by tier.  The blocks are gathered a batch at a
 * time under the heap's locks and the visitor is called with no lock held:
 * it may allocate and free, even in the walked heap (what it does then may
 * or may not be seen by the rest of the walk).  Returns 1 if the walk went
 * over the whole heap, 0 if the visitor stopped it, -1 if a busy lock was
 * skipped or the heap changed under it so that a part was not seen. */
STRATA_API int strata_heap_walk(strata_pool_t* pool, unsigned flags, strata_block_visitor_t visit, void* ctx,
                                unsigned wait_ms) STRATA_NOEXCEPT;

/* ---- Regions and the memory map -------------------------------------------- */

typedef enum strata_map_use {
  STRATA_MAP_UNMAPPED = 0,    /* nothing mapped */
  STRATA_MAP_SMALL = 1,       /* strata: spans with small blocks */
  STRATA_MAP_MEDIUM = 2,      /* strata: medium pools (chunks holding a live or cached block) */
  STRATA_MAP_LARGE = 3,       /* strata: large blocks */
  STRATA_MAP_BOOKKEEPING = 4, /* strata: thread caches, directories, heap objects, the address map */
  STRATA_MAP_FREE = 5,        /* strata: reserved but free (empty spans, free medium chunks, kept mappings) */
  STRATA_MAP_OTHER_HEAP = 6,  /* strata: memory of another heap of this copy (a pool) */
  STRATA_MAP_OTHER = 7        /* mapped by someone else: the program, a library, a stack, another allocator */
} strata_map_use;

/* Short constant name of a use: "unmapped", "small", "medium", "large",
 * "bookkeeping", "free", "other-heap", "other". */
STRATA_API const char* strata_map_use_name(strata_map_use use) STRATA_NOEXCEPT;

/* One region strata holds for a heap: 64 KiB aligned, 64 KiB granular. */
typedef struct strata_region {
  uintptr_t start, end;
  strata_map_use use;  /* SMALL .. FREE */
  strata_pool_t* pool; /* the heap holding it (NULL: the process heap) */
} strata_region_t;
typedef int (*strata_region_visitor_t)(const strata_region_t* region, void* ctx);

#define STRATA_REGIONS_ALL_HEAPS 1u /* every heap of this copy, and the address map's own leaves */

/* Calls visit for every region of the heap (pool; with
 * STRATA_REGIONS_ALL_HEAPS, of every heap of this copy), in address order,
 * adjacent regions of the same use and heap merged.  Gathered under the
 * heaps' locks into mapped scratch memory, delivered with no lock held.
 * Returns 1, 0 if the visitor stopped, -1 if a busy lock was skipped or the
 * scratch memory could not be mapped. */
STRATA_API int strata_heap_regions(strata_pool_t* pool, unsigned flags, strata_region_visitor_t visit, void* ctx,
                                   unsigned wait_ms) STRATA_NOEXCEPT;

/* One run of equal 64 KiB chunks of the address space. */
typedef struct strata_map_run {
  uintptr_t start, end; /* [start, end), multiples of 64 KiB */
  strata_map_use use;
  const char* name;     /* OTHER: the mapping's name from /proc/self/maps ("/usr/lib/.../libc.so.6",
                           "[stack]", "[heap]", "" for anonymous memory); strata's: "strata:<use>" */
} strata_map_run_t;
typedef int (*strata_map_visitor_t)(const strata_map_run_t* run, void* ctx);

/* The memory map: the whole 47-bit user address space in 64 KiB chunks, as
 * runs in address order from 0 to 2^47 (unmapped gaps included).  A chunk
 * belongs to strata when the heap (pool) holds it; to another heap of this
 * copy as OTHER_HEAP; otherwise to the first mapping of /proc/self/maps
 * that touches it.  Returns 1, 0 if the visitor stopped, -1 if the answer is
 * incomplete (a skipped lock, /proc unreadable, no scratch memory). */
STRATA_API int strata_memory_map(strata_pool_t* pool, strata_map_visitor_t visit, void* ctx,
                                 unsigned wait_ms) STRATA_NOEXCEPT;

/* ---- Reports ------------------------------------------------------------------ */

typedef enum strata_report_format {
  STRATA_REPORT_TEXT = 0, /* aligned text: a row per size class, the tiers, the summary, the map's totals */
  STRATA_REPORT_JSON = 1, /* the documented, versioned JSON (docs/introspection.md) */
  STRATA_REPORT_SVG = 2   /* the memory map as a grid of chunks, the figures, a bar chart per size class */
} strata_report_format;

/* Writes the report of `pool` (NULL: the process heap) to file descriptor
 * fd, without allocating from any heap of strata.  0 on success, -1 if the
 * report could not be made or written. */
STRATA_API int strata_write_report(strata_pool_t* pool, int fd, strata_report_format format,
                                   unsigned wait_ms) STRATA_NOEXCEPT;

/* The same to a file (created or truncated, mode 0644).  The format is the
 * one given, or with STRATA_REPORT_BY_NAME, chosen by the name: ".json",
 * ".svg", anything else text. */
#define STRATA_REPORT_BY_NAME ((strata_report_format)-1)
STRATA_API int strata_write_report_file(strata_pool_t* pool, const char* path, strata_report_format format,
                                        unsigned wait_ms) STRATA_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* STRATA_STATE_H */
