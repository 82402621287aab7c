/* Is strata really in charge of malloc in this process?  Built without
 * strata; run with LD_PRELOAD=libstrata.so.  Checks that strata's API is
 * visible, that malloc, free, calloc, realloc and operator-new-free C entry
 * points resolve into libstrata, and that blocks from malloc/calloc/realloc/
 * aligned_alloc/posix_memalign are strata blocks.
 *   ov_probe             exits 0 when strata is in charge, 1 otherwise
 *   ov_probe --absent    the reverse (for the run without LD_PRELOAD) */
#define OV_DEFINE_GLOBALS
#include "ov_check.h"

#include <malloc.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  int want_absent = argc > 1 && strcmp(argv[1], "--absent") == 0;
  const ov_strata_api_t* s = ov_strata();
  const char* where = ov_defining_object("malloc");
  if (want_absent) {
    if (s || strstr(where, "libstrata")) {
      fprintf(stderr, "ov_probe --absent: strata is in this process (malloc from %s)\n", where);
      return 1;
    }
    printf("ov_probe --absent: malloc from %s, strata absent as expected\n", where);
    return 0;
  }
  s = ov_require_strata("ov_probe");
  static const char* const syms[] = {"malloc", "free", "calloc", "realloc", "aligned_alloc", "posix_memalign",
                                     "memalign", "valloc", "pvalloc", "malloc_usable_size", "reallocarray"};
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    const char* obj = ov_defining_object(syms[i]);
    OV_CHECK(strstr(obj, "libstrata") != NULL, "%s resolves into %s, not libstrata", syms[i], obj);
  }
  void* a = malloc(100);
  void* b = calloc(10, 300);
  void* c = realloc(NULL, 70000);
  void* d = aligned_alloc(256, 5000);
  void* e = NULL;
  int rc = posix_memalign(&e, 64, 3000000);
  OV_CHECK(a && b && c && d && rc == 0 && e, "allocation failed");
  if (a && b && c && d && e) {
    OV_CHECK_STRATA_BLOCK(s, a, 100);
    OV_CHECK_STRATA_BLOCK(s, b, 3000);
    OV_CHECK_STRATA_BLOCK(s, c, 70000);
    OV_CHECK_STRATA_BLOCK(s, d, 5000);
    OV_CHECK_STRATA_BLOCK(s, e, 3000000);
    OV_CHECK(malloc_usable_size(a) == s->usable_size(a), "malloc_usable_size disagrees with strata_usable_size");
  }
  free(a);
  free(b);
  free(c);
  free(d);
  free(e);
  printf("ov_probe: malloc from %s\n", where);
  return ov_finish("ov_probe");
}
