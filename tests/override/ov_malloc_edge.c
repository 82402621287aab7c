/* The malloc family's edge cases, glibc-compatibly.  Built without strata.
 *   ov_malloc_edge            under LD_PRELOAD=libstrata.so: glibc's
 *                             behaviour, and every block is a strata block
 *   ov_malloc_edge --glibc    without preload: the same checks against glibc
 *                             itself, proving they encode glibc's behaviour
 *   ov_malloc_edge --quirks [--glibc]
 *                             glibc behaviours beyond the documented
 *                             contract that real programs nevertheless rely on
 * Compiled with -fno-builtin so that the compiler cannot drop a malloc/free
 * pair or fold a result it believes it knows.
 */
#define OV_DEFINE_GLOBALS
#include "ov_check.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ov_strata_api_t* S; /* NULL in --glibc mode */
static long page;

#define BLOCK(p, n)                                  \
  do {                                               \
    if (S && (p)) OV_CHECK_STRATA_BLOCK(S, (p), (n)); \
  } while (0)

/* glibc 2.36 has no C23 free_sized / free_aligned_sized; strata exports them. */
typedef void (*free_sized_fn)(void*, size_t);
typedef void (*free_aligned_sized_fn)(void*, size_t, size_t);

static void malloc_zero(void) {
  enum { N = 200 };
  void* p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(0);
    OV_CHECK(p[i] != NULL, "malloc(0) returned NULL");
    BLOCK(p[i], 0);
    for (int j = 0; j < i; j++) OV_CHECK(p[i] != p[j], "malloc(0) returned %p twice", p[i]);
  }
  for (int i = 0; i < N; i++) free(p[i]);
  void* q = calloc(0, 0);
  OV_CHECK(q != NULL, "calloc(0, 0) returned NULL");
  free(q);
  free(NULL);
}

static void realloc_cases(void) {
  /* realloc(NULL, n) == malloc(n) */
  char* p = realloc(NULL, 100);
  OV_CHECK(p != NULL, "realloc(NULL, 100) returned NULL");
  BLOCK(p, 100);
  memset(p, 'a', 100);
  /* growth across tiers keeps the content */
  size_t sizes[] = {3000, 70000, 400000, 3000000, 50, 0};
  size_t prev = 100;
  for (int i = 0; sizes[i]; i++) {
    char* q = realloc(p, sizes[i]);
    OV_CHECK(q != NULL, "realloc(%zu) returned NULL", sizes[i]);
    if (!q) break;
    size_t keep = prev < sizes[i] ? prev : sizes[i];
    for (size_t k = 0; k < keep && k < 100; k++) OV_CHECK(q[k] == 'a', "realloc lost byte %zu", k);
    BLOCK(q, sizes[i]);
    OV_CHECK(malloc_usable_size(q) >= sizes[i], "malloc_usable_size %zu < %zu", malloc_usable_size(q), sizes[i]);
    if (sizes[i] > prev) memset(q + prev, 'a', sizes[i] - prev);
    prev = sizes[i];
    p = q;
  }
  /* realloc(p, 0) frees p and returns NULL (glibc) */
  errno = 4321;
  void* r = realloc(p, 0);
  OV_CHECK(r == NULL, "realloc(p, 0) returned %p, glibc returns NULL", r);
  OV_CHECK(errno == 4321, "realloc(p, 0) changed errno to %d", errno);
  if (r) free(r);
  /* realloc(NULL, 0) behaves as malloc(0): a unique block */
  void* z = realloc(NULL, 0);
  OV_CHECK(z != NULL, "realloc(NULL, 0) returned NULL");
  free(z);
  /* failure leaves the block alone */
  char* k = malloc(64);
  memset(k, 'k', 64);
  errno = 0;
  void* f = realloc(k, SIZE_MAX - 4096);
  OV_CHECK(f == NULL && errno == ENOMEM, "realloc(p, huge) = %p, errno %d", f, errno);
  OV_CHECK(k[0] == 'k' && k[63] == 'k', "failed realloc touched the block");
  BLOCK(k, 64);
  free(k);
}

static void overflow_cases(void) {
  errno = 0;
  void* p = calloc(SIZE_MAX / 2, 4);
  OV_CHECK(p == NULL && errno == ENOMEM, "calloc overflow = %p, errno %d", p, errno);
  errno = 0;
  p = calloc((size_t)1 << 33, (size_t)1 << 33);
  OV_CHECK(p == NULL && errno == ENOMEM, "calloc(2^33, 2^33) = %p, errno %d", p, errno);
  errno = 0;
  p = reallocarray(NULL, SIZE_MAX / 2, 4);
  OV_CHECK(p == NULL && errno == ENOMEM, "reallocarray overflow = %p, errno %d", p, errno);
  char* q = reallocarray(NULL, 10, 30);
  OV_CHECK(q != NULL, "reallocarray(NULL, 10, 30) failed");
  BLOCK(q, 300);
  memset(q, 'q', 300);
  errno = 0;
  void* r = reallocarray(q, (size_t)1 << 40, (size_t)1 << 40);
  OV_CHECK(r == NULL && errno == ENOMEM, "reallocarray(p, overflow) = %p, errno %d", r, errno);
  OV_CHECK(q[299] == 'q', "failed reallocarray touched the block");
  q = reallocarray(q, 1000, 30);
  OV_CHECK(q && q[299] == 'q', "reallocarray growth lost content");
  BLOCK(q, 30000);
  free(q);
  errno = 0;
  p = malloc(SIZE_MAX);
  OV_CHECK(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX) = %p, errno %d", p, errno);
  errno = 0;
  p = malloc(SIZE_MAX / 2 + 1);
  OV_CHECK(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX/2+1) = %p, errno %d", p, errno);
  /* calloc really zeroes, also memory that was used and freed before */
  for (int round = 0; round < 50; round++) {
    size_t n = (size_t)(round * 977) % 300000 + 1;
    unsigned char* d = malloc(n);
    memset(d, 0xee, n);
    free(d);
    unsigned char* c = calloc(1, n);
    OV_CHECK(c != NULL, "calloc(1, %zu) failed", n);
    for (size_t i = 0; c && i < n; i++)
      if (c[i]) {
        OV_CHECK(0, "calloc(1, %zu) byte %zu is %d", n, i, c[i]);
        break;
      }
    free(c);
  }
}

static void posix_memalign_cases(void) {
  size_t bad[] = {0, 1, 3, sizeof(void*) / 2, sizeof(void*) + 1, 24, 48, 4095};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void* p = (void*)0x1234;
    errno = 777;
    int rc = posix_memalign(&p, bad[i], 64);
    OV_CHECK(rc == EINVAL, "posix_memalign(alignment %zu) returned %d, expected EINVAL", bad[i], rc);
    OV_CHECK(errno == 777, "posix_memalign(alignment %zu) changed errno to %d", bad[i], errno);
    OV_CHECK(p == (void*)0x1234, "posix_memalign(alignment %zu) wrote the result", bad[i]);
  }
  for (size_t a = sizeof(void*); a <= ((size_t)1 << 22); a <<= 1) {
    size_t ns[] = {0, 1, 100, 3000, 100000, 1 << 20};
    for (int k = 0; k < 6; k++) {
      void* p = NULL;
      errno = 555;
      int rc = posix_memalign(&p, a, ns[k]);
      OV_CHECK(rc == 0 && p, "posix_memalign(%zu, %zu) = %d", a, ns[k], rc);
      OV_CHECK(errno == 555, "posix_memalign(%zu, %zu) changed errno", a, ns[k]);
      if (!p) continue;
      OV_CHECK_ALIGNED(p, a);
      BLOCK(p, ns[k]);
      memset(p, 1, ns[k]);
      free(p);
    }
  }
  void* p = (void*)0x1234;
  errno = 999;
  int rc = posix_memalign(&p, 64, SIZE_MAX - 100000);
  OV_CHECK(rc == ENOMEM, "posix_memalign(64, huge) returned %d, expected ENOMEM", rc);
  /* errno: glibc sets ENOMEM here although POSIX says it is left alone; either is accepted */
  OV_CHECK(errno == 999 || errno == ENOMEM, "posix_memalign(64, huge) set errno to %d", errno);
  OV_CHECK(p == (void*)0x1234, "posix_memalign(64, huge) wrote the result");
}

static void aligned_cases(void) {
  for (size_t a = 1; a <= 65536; a <<= 1) {
    size_t ns[] = {1, 24, 100, 2600, 5000, 270000, 1 << 21};
    for (int k = 0; k < 7; k++) {
      size_t n = ns[k];
      void* p = aligned_alloc(a, n);
      void* q = memalign(a, n);
      OV_CHECK(p && q, "aligned_alloc/memalign(%zu, %zu) failed", a, n);
      if (p) {
        OV_CHECK_ALIGNED(p, a);
        BLOCK(p, n);
        memset(p, 2, n);
      }
      if (q) {
        OV_CHECK_ALIGNED(q, a);
        BLOCK(q, n);
        memset(q, 3, n);
      }
      free(p);
      free(q);
    }
  }
  /* valloc: page aligned */
  size_t vs[] = {0, 1, 4096, 4097, 100000, 3000000};
  for (int k = 0; k < 6; k++) {
    void* v = valloc(vs[k]);
    OV_CHECK(v != NULL, "valloc(%zu) failed", vs[k]);
    OV_CHECK_ALIGNED(v, (size_t)page);
    BLOCK(v, vs[k]);
    OV_CHECK(malloc_usable_size(v) >= vs[k], "valloc(%zu) usable %zu", vs[k], malloc_usable_size(v));
    free(v);
    /* pvalloc: page aligned, size rounded up to whole pages */
    size_t want = (vs[k] + (size_t)page - 1) / (size_t)page * (size_t)page;
    unsigned char* pv = pvalloc(vs[k]);
    OV_CHECK(pv != NULL, "pvalloc(%zu) failed", vs[k]);
    if (!pv) continue;
    OV_CHECK_ALIGNED(pv, (size_t)page);
    OV_CHECK(malloc_usable_size(pv) >= want, "pvalloc(%zu): usable %zu < %zu", vs[k], malloc_usable_size(pv), want);
    BLOCK(pv, want);
    memset(pv, 4, want); /* the whole rounded size is usable */
    free(pv);
  }
  errno = 0;
  void* p = pvalloc(SIZE_MAX - 10);
  OV_CHECK(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX-10) = %p, errno %d", p, errno);
}

static void usable_size_cases(void) {
  OV_CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) != 0");
  for (size_t n = 0; n < 300000; n = n * 3 / 2 + 1) {
    unsigned char* p = malloc(n);
    size_t u = malloc_usable_size(p);
    OV_CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
    memset(p, 9, u); /* all of it is usable */
    if (S) OV_CHECK(u == S->usable_size(p), "malloc_usable_size != strata_usable_size");
    free(p);
  }
}

/* C23 free_sized / free_aligned_sized with the size the caller asked for,
 * also after a realloc that over-allocated (usable > requested). */
static void free_sized_cases(void) {
  free_sized_fn fs = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
  free_aligned_sized_fn fas = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
  if (!S) {
    printf("free_sized: %s, free_aligned_sized: %s in this libc\n", fs ? "present" : "absent",
           fas ? "present" : "absent");
    if (!fs || !fas) return;
  } else {
    OV_CHECK(fs != NULL && strstr(ov_defining_object("free_sized"), "libstrata"),
             "free_sized is not strata's (%s)", ov_defining_object("free_sized"));
    OV_CHECK(fas != NULL && strstr(ov_defining_object("free_aligned_sized"), "libstrata"),
             "free_aligned_sized is not strata's (%s)", ov_defining_object("free_aligned_sized"));
    if (!fs || !fas) return;
  }
  int errs = ov_strata_errors;
  size_t ns[] = {0, 1, 16, 100, 2624, 2625, 9000, 266224, 266225, 1 << 20, 5 << 20};
  for (int k = 0; k < 11; k++) {
    void* p = malloc(ns[k]);
    fs(p, ns[k]);
    void* a = aligned_alloc(512, ns[k] ? ns[k] : 1);
    fas(a, 512, ns[k] ? ns[k] : 1);
    void* c = calloc(1, ns[k]);
    fs(c, ns[k]);
  }
  fs(NULL, 0);
  fas(NULL, 64, 0);
  /* grown byte by byte: realloc over-allocates on every move */
  unsigned char* g = NULL;
  size_t n;
  for (n = 1; n <= 300000; n += (n < 5000 ? 1 : 97)) {
    g = realloc(g, n);
    g[n - 1] = (unsigned char)n;
    if (n == 3000 || n == 40000) {
      unsigned char* h = malloc(n);
      memcpy(h, g, n);
      h = realloc(h, n + 1); /* one more byte: over-allocated move */
      fs(h, n + 1);
    }
  }
  fs(g, n - (n < 5000 ? 1 : 97));
  /* shrunk in place: the block is bigger than the size now asked for */
  void* s = malloc(200000);
  s = realloc(s, 150000);
  fs(s, 150000);
  void* t = malloc(2000);
  t = realloc(t, 1000);
  fs(t, 1000);
  OV_CHECK(ov_strata_errors == errs, "free_sized/free_aligned_sized: strata reported %d error(s)",
           ov_strata_errors - errs);
}

/* glibc's introspection calls answer (from strata's state under preload). */
static void introspection(void) {
  if (S) {
    static const char* const syms[] = {"mallinfo2", "malloc_trim", "malloc_stats", "mallopt", "malloc_info"};
    for (int i = 0; i < 5; i++)
      OV_CHECK(strstr(ov_defining_object(syms[i]), "libstrata") != NULL,
               "%s resolves into %s: glibc's would describe glibc's empty heap", syms[i],
               ov_defining_object(syms[i]));
  }
  struct mallinfo2 before = mallinfo2();
  void* big = malloc(16 << 20);
  void* small[1000];
  for (int i = 0; i < 1000; i++) small[i] = malloc(100);
  struct mallinfo2 during = mallinfo2();
  OV_CHECK(during.hblkhd >= before.hblkhd + (16 << 20), "mallinfo2: hblkhd %zu -> %zu after a 16 MiB block",
           before.hblkhd, during.hblkhd);
  OV_CHECK(during.uordblks >= before.uordblks + 1000 * 100 || during.arena > before.arena,
           "mallinfo2: uordblks %zu -> %zu after 1000 small blocks", before.uordblks, during.uordblks);
  free(big);
  for (int i = 0; i < 1000; i++) free(small[i]);
  struct mallinfo2 after = mallinfo2();
  OV_CHECK(after.hblkhd <= during.hblkhd - (16 << 20), "mallinfo2: hblkhd %zu -> %zu after freeing it",
           during.hblkhd, after.hblkhd);
  int t = malloc_trim(0);
  OV_CHECK(t == 0 || t == 1, "malloc_trim returned %d", t);
  (void)mallopt(M_MMAP_THRESHOLD, 1 << 20); /* glibc: 1; strata: 0 (no such knob); must not crash */
  char* buf = NULL;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  int rc = malloc_info(0, f);
  fclose(f);
  OV_CHECK(rc == 0 && buf && strncmp(buf, "<malloc", 7) == 0, "malloc_info: rc %d, text %.40s", rc,
           buf ? buf : "(null)");
  free(buf);
}

/* glibc behaviours outside the documented contract. */
static void quirks(void) {
  /* memalign with alignment 0 or below 16 behaves as malloc; a non-power of
   * two alignment is rounded up to the next power of two (glibc's
   * _mid_memalign).  Old code (e.g. through valloc emulations) passes these. */
  size_t as[] = {0, 1, 2, 24, 48, 100, 3000};
  for (int i = 0; i < 7; i++) {
    errno = 0;
    void* p = memalign(as[i], 100);
    OV_CHECK(p != NULL, "memalign(%zu, 100) = NULL (errno %d); glibc returns a block", as[i], errno);
    if (!p) continue;
    size_t pow2 = 1;
    while (pow2 < as[i]) pow2 <<= 1;
    OV_CHECK_ALIGNED(p, pow2);
    BLOCK(p, 100);
    free(p);
  }
  /* glibc 2.36's aligned_alloc is memalign: a non-power-of-two alignment works
   * (glibc 2.38 made it EINVAL, as C17 allows). */
  errno = 0;
  void* q = aligned_alloc(24, 100);
  printf("aligned_alloc(24, 100): %s (errno %d)\n", q ? "a block" : "NULL", errno);
  free(q);
}

int main(int argc, char** argv) {
  int glibc = 0, want_quirks = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--glibc")) glibc = 1;
    if (!strcmp(argv[i], "--quirks")) want_quirks = 1;
  }
  page = sysconf(_SC_PAGESIZE);
  if (glibc) {
    if (ov_strata()) {
      fprintf(stderr, "ov_malloc_edge --glibc: strata is in this process; run without LD_PRELOAD\n");
      return 1;
    }
  } else {
    S = ov_require_strata("ov_malloc_edge");
  }
  if (want_quirks) {
    quirks();
    return ov_finish(glibc ? "ov_malloc_edge --quirks --glibc" : "ov_malloc_edge --quirks");
  }
  malloc_zero();
  realloc_cases();
  overflow_cases();
  posix_memalign_cases();
  aligned_cases();
  usable_size_cases();
  free_sized_cases();
  introspection();
  return ov_finish(glibc ? "ov_malloc_edge --glibc" : "ov_malloc_edge");
}
