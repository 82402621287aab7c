/* Helpers for the override tests: programs that do not link strata (they run
 * with LD_PRELOAD=libstrata.so) or link strata::override.  strata's API is
 * looked up at run time with dlsym(RTLD_DEFAULT), so the same source can also
 * run on glibc alone (ov_strata() == NULL) where a test wants a reference.
 *
 * OV_CHECK(cond, fmt, ...) records a failure with file:line and goes on;
 * ov_finish() prints the count and returns the exit status. */
#ifndef STRATA_OV_CHECK_H
#define STRATA_OV_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef __cplusplus
#include <atomic>
#define OV_ATOMIC_INT std::atomic<int>
#define OV_INLINE inline
extern "C" {
#else
#include <stdatomic.h>
#define OV_ATOMIC_INT _Atomic int
#define OV_INLINE static inline
#endif

/* The subset of <strata/strata.h> the tests use (kept in step by hand: these
 * programs must not see strata at build time). */
typedef struct ov_strata_error {
  int kind;
  const void* address;
  const char* operation;
  const char* message;
} ov_strata_error_t;
typedef void (*ov_error_handler_t)(const ov_strata_error_t*, void*);

typedef struct ov_strata_api {
  size_t (*usable_size)(const void*);
  void* (*pool_of)(const void*);
  ov_error_handler_t (*set_error_handler)(ov_error_handler_t, void*);
} ov_strata_api_t;

extern OV_ATOMIC_INT ov_failures;
extern OV_ATOMIC_INT ov_strata_errors;
extern OV_ATOMIC_INT ov_last_error_kind;

OV_INLINE void ov_fail(const char* file, int line, const char* fmt, ...) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "%s:%d: FAILED: ", file, line);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && n < (int)sizeof buf) n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof buf - 1) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  /* write(2): no stdio buffering, safe from threads and forked children */
  if (write(2, buf, (size_t)n) < 0) {
  }
  ov_failures++;
}

#define OV_CHECK(cond, ...)                                 \
  do {                                                      \
    if (!(cond)) ov_fail(__FILE__, __LINE__, __VA_ARGS__);  \
  } while (0)

/* Records strata's error reports instead of aborting, so a test can say
 * which call went wrong. */
OV_INLINE void ov_error_handler(const ov_strata_error_t* e, void* user) {
  (void)user;
  char buf[400];
  int n = snprintf(buf, sizeof buf, "strata reported error kind %d at %p in %s: %s\n", e->kind, e->address,
                   e->operation ? e->operation : "?", e->message ? e->message : "?");
  if (n > 0 && write(2, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1)) < 0) {
  }
  ov_last_error_kind = e->kind;
  ov_strata_errors++;
}

/* strata's API if strata is in the process (preloaded or linked), else NULL. */
OV_INLINE const ov_strata_api_t* ov_strata(void) {
  static ov_strata_api_t api;
  static int state; /* 0 unknown, 1 present, 2 absent */
  if (state == 0) {
    api.usable_size = (size_t(*)(const void*))dlsym(RTLD_DEFAULT, "strata_usable_size");
    api.pool_of = (void* (*)(const void*))dlsym(RTLD_DEFAULT, "strata_pool_of");
    api.set_error_handler =
        (ov_error_handler_t(*)(ov_error_handler_t, void*))dlsym(RTLD_DEFAULT, "strata_set_error_handler");
    state = api.usable_size && api.pool_of && api.set_error_handler ? 1 : 2;
  }
  return state == 1 ? &api : NULL;
}

/* Requires strata (exits 1 with a message otherwise) and installs the
 * recording error handler. */
OV_INLINE const ov_strata_api_t* ov_require_strata(const char* prog) {
  const ov_strata_api_t* s = ov_strata();
  if (!s) {
    fprintf(stderr,
            "%s: strata is not in this process (run it with LD_PRELOAD=libstrata.so or link strata::override)\n",
            prog);
    _exit(1);
  }
  s->set_error_handler(ov_error_handler, NULL);
  return s;
}

/* The file name of the object that defines the function `sym` resolves to. */
OV_INLINE const char* ov_defining_object(const char* sym) {
  void* f = dlsym(RTLD_DEFAULT, sym);
  Dl_info info;
  if (!f || !dladdr(f, &info) || !info.dli_fname) return "(none)";
  return info.dli_fname;
}

/* p is a live block of strata's process heap with at least n usable bytes. */
#define OV_CHECK_STRATA_BLOCK(s, p, n)                                                                       \
  do {                                                                                                      \
    int errs_before_ = ov_strata_errors;                                                                    \
    size_t u_ = (s)->usable_size(p);                                                                        \
    OV_CHECK(ov_strata_errors == errs_before_ && u_ >= (size_t)(n),                                         \
             "%p (%zu bytes) is not a strata block: strata_usable_size = %zu", (void*)(p), (size_t)(n), u_); \
    OV_CHECK((s)->pool_of(p) == NULL, "%p belongs to a pool, not the process heap", (void*)(p));            \
  } while (0)

#define OV_CHECK_ALIGNED(p, a) \
  OV_CHECK(((uintptr_t)(p) & ((uintptr_t)(a)-1)) == 0, "%p is not aligned to %zu", (void*)(p), (size_t)(a))

OV_INLINE int ov_finish(const char* prog) {
  int f = ov_failures, e = ov_strata_errors;
  if (f || e) {
    fprintf(stderr, "%s: %d check(s) failed, %d strata error report(s)\n", prog, f, e);
    return 1;
  }
  printf("%s: all checks passed\n", prog);
  return 0;
}

/* One definition per program: include with OV_DEFINE_GLOBALS in one file. */
#ifdef OV_DEFINE_GLOBALS
OV_ATOMIC_INT ov_failures;
OV_ATOMIC_INT ov_strata_errors;
OV_ATOMIC_INT ov_last_error_kind;
#endif

#ifdef __cplusplus
}
#endif
#endif
