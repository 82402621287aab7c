/* C consumer of the shared, malloc-replacing library (strata::override /
 * pkg-config strata-override): plain malloc/calloc/realloc/free and the
 * aligned variants go through strata.
 *
 *   override_consumer [LIBDIR]   LIBDIR: libstrata.so must be loaded from there
 *
 * Built with -DSTRATA_CONSUMER_SANITIZED under ASan/TSan, whose runtimes
 * interpose malloc themselves: then only the strata_* API is checked. */
#include "consumer_check.h"

#include <malloc.h>
#include <stdint.h>

#define N 64

static inline void check_owner(const char* sym, const char* libdir, int required) {
  const char* owner = consumer_symbol_owner(sym);
  int ok = strstr(owner, "libstrata.so") != NULL && (!libdir || consumer_path_under(owner, libdir));
  if (!ok) {
    fprintf(stderr, "%s: %s is defined by '%s', not by %s/libstrata.so\n", required ? "error" : "warning",
            sym, owner, libdir ? libdir : "<any dir>");
    if (required) ++consumer_failures;
  }
}

/* p must be a live block of strata's process heap. */
static inline void check_strata_block(const void* p, size_t size, const char* what) {
  int errors = consumer_errors;
  size_t u = strata_usable_size(p);
  if (consumer_errors != errors || u < size || strata_pool_of(p) != NULL) {
    fprintf(stderr, "%s: %p is not a strata block of >= %zu bytes (usable %zu)\n", what, p, size, u);
    ++consumer_failures;
  }
}

int main(int argc, char** argv) {
  const char* libdir = argc > 1 ? argv[1] : NULL;
  strata_set_error_handler(consumer_error_handler, NULL);

  /* The strata_* API itself (exported by libstrata.so). */
  void* sp = strata_malloc(100);
  CONSUMER_CHECK(sp != NULL && strata_usable_size(sp) >= 100);
  strata_free(sp);
  check_owner("strata_malloc", libdir, 1);

#ifndef STRATA_CONSUMER_SANITIZED
  check_owner("malloc", libdir, 1);
  check_owner("free", libdir, 1);
  check_owner("calloc", libdir, 1);
  check_owner("realloc", libdir, 1);
  check_owner("posix_memalign", libdir, 1);
  check_owner("aligned_alloc", libdir, 1);
  check_owner("malloc_usable_size", libdir, 1);
  check_owner("memalign", libdir, 0);
  check_owner("valloc", libdir, 0);
  check_owner("pvalloc", libdir, 0);
  check_owner("reallocarray", libdir, 0);

  /* malloc(100) x N: strata's small-block count of the process heap rises by N. */
  void* blocks[N];
  strata_heap_summary_t before = consumer_summary();
  for (int i = 0; i < N; ++i) blocks[i] = malloc(100);
  strata_heap_summary_t after = consumer_summary();
  if (after.small_blocks < before.small_blocks + N) {
    fprintf(stderr, "malloc(100) x %d: strata small_blocks %zu -> %zu\n", N, before.small_blocks,
            after.small_blocks);
    ++consumer_failures;
  }
  for (int i = 0; i < N; ++i) {
    CONSUMER_CHECK(blocks[i] != NULL);
    check_strata_block(blocks[i], 100, "malloc(100)");
  }
  for (int i = 0; i < N; ++i) free(blocks[i]);
  strata_heap_summary_t freed = consumer_summary();
  if (freed.small_blocks + N > after.small_blocks) {
    fprintf(stderr, "free x %d: strata small_blocks %zu -> %zu\n", N, after.small_blocks, freed.small_blocks);
    ++consumer_failures;
  }

  /* The rest of the family. */
  int* z = (int*)calloc(100, sizeof(int));
  CONSUMER_CHECK(z != NULL);
  check_strata_block(z, 100 * sizeof(int), "calloc");
  for (int i = 0; z && i < 100; ++i) CONSUMER_CHECK(z[i] == 0);
  z = (int*)realloc(z, 50000 * sizeof(int));
  CONSUMER_CHECK(z != NULL && z[99] == 0);
  check_strata_block(z, 50000 * sizeof(int), "realloc");
  free(z);

  void* pm = NULL;
  CONSUMER_CHECK(posix_memalign(&pm, 256, 1000) == 0 && pm && ((uintptr_t)pm & 255) == 0);
  check_strata_block(pm, 1000, "posix_memalign");
  CONSUMER_CHECK(malloc_usable_size(pm) == strata_usable_size(pm));
  free(pm);

  void* al = aligned_alloc(64, 640);
  CONSUMER_CHECK(al && ((uintptr_t)al & 63) == 0);
  check_strata_block(al, 640, "aligned_alloc");
  free(al);

  strata_heap_summary_t lb = consumer_summary();
  char* big = (char*)malloc(16u << 20);
  CONSUMER_CHECK(big != NULL);
  strata_heap_summary_t la = consumer_summary();
  CONSUMER_CHECK(la.large_blocks >= lb.large_blocks + 1);
  check_strata_block(big, 16u << 20, "malloc(16 MiB)");
  if (big) big[(16u << 20) - 1] = 1;
  free(big);

  /* Memory the C library allocates internally for us goes through strata too. */
  char* dup = strdup("strata");
  CONSUMER_CHECK(dup != NULL);
  check_strata_block(dup, 7, "strdup");
  free(dup);
#else
  puts("sanitizer build: malloc is interposed by the sanitizer runtime; routing checks skipped");
#endif

  CONSUMER_CHECK(consumer_errors == 0);
  return consumer_finish("override_consumer (C)");
}
