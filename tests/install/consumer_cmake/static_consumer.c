/* C consumer of the static library (strata::strata / pkg-config strata):
 * the strata_* API works and plain malloc is NOT replaced. */
#include "consumer_check.h"

#include <stdint.h>

int main(void) {
  strata_set_error_handler(consumer_error_handler, NULL);
  CONSUMER_CHECK(STRATA_VERSION_MAJOR == 0 || STRATA_VERSION_MAJOR > 0);

  strata_heap_summary_t before = consumer_summary();
  CONSUMER_CHECK(before.version >= 1);

  char* p = (char*)strata_malloc(100);
  CONSUMER_CHECK(p != NULL);
  CONSUMER_CHECK(((uintptr_t)p & 15) == 0);
  CONSUMER_CHECK(strata_usable_size(p) >= 100);
  memset(p, 0xab, 100);
  CONSUMER_CHECK(strata_pool_of(p) == NULL);

  strata_heap_summary_t mid = consumer_summary();
  CONSUMER_CHECK(mid.small_blocks >= before.small_blocks + 1);

  int* z = (int*)strata_calloc(64, sizeof(int));
  CONSUMER_CHECK(z != NULL);
  for (int i = 0; z && i < 64; ++i) CONSUMER_CHECK(z[i] == 0);
  p = (char*)strata_realloc(p, 100000);
  CONSUMER_CHECK(p != NULL);
  CONSUMER_CHECK(p && (unsigned char)p[99] == 0xab);
  CONSUMER_CHECK(strata_usable_size(p) >= 100000);
  void* a = strata_aligned_alloc(4096, 10);
  CONSUMER_CHECK(a != NULL && ((uintptr_t)a & 4095) == 0);
  strata_free(a);
  strata_free(z);
  strata_free(p);
  strata_free(NULL);

  strata_pool_t* pool = strata_pool_create();
  CONSUMER_CHECK(pool != NULL);
  void* q = strata_pool_malloc(pool, 48);
  CONSUMER_CHECK(q != NULL && strata_pool_of(q) == pool);
  strata_pool_destroy(pool);

  /* The static library must leave the C library's malloc alone. */
  void* m = malloc(100);
  strata_heap_summary_t s1 = consumer_summary();
  void* m2 = malloc(100);
  strata_heap_summary_t s2 = consumer_summary();
  CONSUMER_CHECK(s2.small_blocks == s1.small_blocks);
  CONSUMER_CHECK(strstr(consumer_symbol_owner("malloc"), "libstrata") == NULL);
  free(m2);
  free(m);

  CONSUMER_CHECK(consumer_errors == 0);
  return consumer_finish("static_consumer (C)");
}
