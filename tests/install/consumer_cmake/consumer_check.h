/* Shared helpers of the install-test consumers (C and C++).  Only the
 * installed headers are used: <strata/strata.h>. */
#ifndef STRATA_CONSUMER_CHECK_H
#define STRATA_CONSUMER_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

static int consumer_failures = 0;

#define CONSUMER_CHECK(cond)                                                       \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
      ++consumer_failures;                                                         \
    }                                                                              \
  } while (0)

/* Error handler that records instead of aborting, so that a misrouted
 * pointer is reported as a test failure with a message. */
static int consumer_errors = 0;
static strata_error_kind consumer_last_error = STRATA_ERROR_NONE;

static inline void consumer_error_handler(const strata_error_t* e, void* user) {
  (void)user;
  ++consumer_errors;
  consumer_last_error = e->kind;
  fprintf(stderr, "strata error handler: %s (%s) at %p in %s\n", e->message ? e->message : "?",
          strata_error_kind_name(e->kind), e->address, e->operation ? e->operation : "?");
}

static inline strata_heap_summary_t consumer_summary(void) {
  strata_heap_summary_t s;
  memset(&s, 0, sizeof s);
  s.size = sizeof s;
  if (strata_heap_summary(NULL, &s) != 0) {
    fprintf(stderr, "strata_heap_summary(NULL) failed\n");
    ++consumer_failures;
  }
  return s;
}

/* The file (shared object or executable) that defines the global symbol
 * `name` in the process's lookup scope, or "" if unknown. */
static inline const char* consumer_symbol_owner(const char* name) {
  Dl_info info;
  void* sym = dlsym(RTLD_DEFAULT, name);
  if (!sym || !dladdr(sym, &info) || !info.dli_fname) return "";
  return info.dli_fname;
}

/* Non-zero if `path` names a file inside directory `dir` (after resolving
 * symlinks of both). */
static inline int consumer_path_under(const char* path, const char* dir) {
  char rp[PATH_MAX], rd[PATH_MAX];
  if (!realpath(path, rp) || !realpath(dir, rd)) return 0;
  size_t n = strlen(rd);
  return strncmp(rp, rd, n) == 0 && rp[n] == '/';
}

static inline int consumer_finish(const char* name) {
  if (consumer_failures) {
    fprintf(stderr, "%s: %d check(s) FAILED\n", name, consumer_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

#endif
