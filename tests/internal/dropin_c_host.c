/* A C program run with LD_PRELOAD=libstrata.so (issue #3, drop-in
 * replacement).  Not linked to strata, nor to any C++ runtime.
 *
 *   dropin_c_host maps          strata is in charge, and no C++ runtime (nor
 *                               libgcc_s, libm) was loaded with it
 *   dropin_c_host mallopt       mallopt's answers (docs/usage.md)
 *   dropin_c_host module <so>   dlopen()s a C++ module RTLD_LOCAL, as Python
 *                               loads extension modules, and runs its operator
 *                               new checks (dropin_new_checks.cpp): libstdc++
 *                               is then only in that module's local scope
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond, ...)                                       \
  do {                                                         \
    if (!(cond)) {                                             \
      fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);  \
      fprintf(stderr, __VA_ARGS__);                            \
      fputc('\n', stderr);                                     \
      ++failures;                                              \
    }                                                          \
  } while (0)

/* malloc must be libstrata.so's. */
static int strata_in_charge(void) {
  Dl_info info;
  void* m = dlsym(RTLD_DEFAULT, "malloc");
  if (!m || !dladdr(m, &info) || !info.dli_fname || !strstr(info.dli_fname, "libstrata")) {
    fprintf(stderr, "malloc comes from %s, not libstrata.so (run with LD_PRELOAD=libstrata.so)\n",
            m && dladdr(m, &info) && info.dli_fname ? info.dli_fname : "?");
    return 0;
  }
  return 1;
}

/* Lines of /proc/self/maps naming a library whose file name starts with one of
 * the given prefixes (printed if verbose).  -1 if maps cannot be read. */
static int mapped(const char* const* prefixes, int n, int verbose) {
  FILE* f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  char line[4096];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    const char* path = strchr(line, '/');
    if (!path) continue;
    const char* base = strrchr(path, '/') + 1;
    for (int i = 0; i < n; ++i) {
      if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0) {
        if (verbose) fprintf(stderr, "mapped: %s", path);
        ++found;
      }
    }
  }
  fclose(f);
  return found;
}

static const char* const kCxxRuntime[] = {"libstdc++.so", "libc++.so", "libc++abi.so", "libgcc_s.so", "libm.so"};

static void check_maps(void) {
  static const char* const strata[] = {"libstrata.so"};
  CHECK(mapped(strata, 1, 0) > 0, "libstrata.so is not mapped");
  int n = mapped(kCxxRuntime, sizeof kCxxRuntime / sizeof kCxxRuntime[0], 1);
  CHECK(n == 0, "a C program preloaded with libstrata.so has %d mapping(s) of a C++ runtime, libgcc_s or libm "
                "(listed above): libstrata.so must not depend on them",
        n);
}

static void check_mallopt(void) {
  struct {
    int option, value, expected;
    const char* name;
  } cases[] = {
      {M_MXFAST, 0, 1, "M_MXFAST 0"},
      {M_MXFAST, 64, 1, "M_MXFAST 64"},
      {M_MXFAST, 160, 1, "M_MXFAST 160 (glibc's maximum)"},
      {M_MXFAST, 161, 0, "M_MXFAST 161 (above glibc's maximum)"},
      {M_MXFAST, -1, 0, "M_MXFAST -1"},
      {M_TRIM_THRESHOLD, 128 * 1024, 1, "M_TRIM_THRESHOLD"},
      {M_TOP_PAD, 0, 1, "M_TOP_PAD"},
      {M_MMAP_THRESHOLD, 1 << 20, 1, "M_MMAP_THRESHOLD 1 MiB"},
      {M_MMAP_THRESHOLD, 64 << 20, 1, "M_MMAP_THRESHOLD 64 MiB (glibc 2.36: 1)"},
      {M_MMAP_THRESHOLD, -1, 1, "M_MMAP_THRESHOLD -1 (glibc 2.36: 1)"},
      {M_TRIM_THRESHOLD, -1, 1, "M_TRIM_THRESHOLD -1 (glibc: 1)"},
      {M_MMAP_MAX, 0, 1, "M_MMAP_MAX"},
      {M_CHECK_ACTION, 3, 1, "M_CHECK_ACTION"},
      {M_ARENA_TEST, 8, 1, "M_ARENA_TEST"},
      {M_ARENA_MAX, 1, 1, "M_ARENA_MAX 1"},
      {M_ARENA_MAX, 0, 1, "M_ARENA_MAX 0 (glibc: ignored, 1)"},
      {M_PERTURB, 0, 1, "M_PERTURB 0 (off, as strata is)"},
      {M_PERTURB, 0xa5, 0, "M_PERTURB 0xa5 (not implemented: refused)"},
      {0, 0, 0, "option 0 (unknown)"},
      {M_NLBLKS, 1, 0, "M_NLBLKS (unused)"},
      {M_KEEP, 1, 0, "M_KEEP (unused)"},
      {12345, 1, 0, "option 12345 (unknown)"},
      {-100, 1, 0, "option -100 (unknown)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    int r = mallopt(cases[i].option, cases[i].value);
    CHECK(r == cases[i].expected, "mallopt(%s) = %d, expected %d", cases[i].name, r, cases[i].expected);
  }
  /* Still a working heap afterwards. */
  char* p = malloc(100000);
  CHECK(p != NULL, "malloc after mallopt");
  free(p);
}

static void check_module(const char* path) {
  /* Before: no C++ runtime anywhere. */
  CHECK(mapped(kCxxRuntime, 2, 1) == 0, "a C++ runtime is mapped before the module is loaded");
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    CHECK(0, "dlopen(%s): %s", path, dlerror());
    return;
  }
  /* The point of the test: libstdc++ is loaded, but not in the global scope. */
  CHECK(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv") == NULL,
        "std::get_new_handler is in the global scope: the module was not loaded RTLD_LOCAL");
  int (*checks)(void) = (int (*)(void))dlsym(h, "dropin_new_checks");
  if (!checks) {
    CHECK(0, "dropin_new_checks not found in %s", path);
    return;
  }
  int n = checks();
  CHECK(n == 0, "the module's operator new checks failed %d time(s)", n);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s maps | mallopt | module <so>\n", argv[0]);
    return 2;
  }
  if (!strata_in_charge()) return 1;
  if (strcmp(argv[1], "maps") == 0) {
    check_maps();
  } else if (strcmp(argv[1], "mallopt") == 0) {
    check_mallopt();
  } else if (strcmp(argv[1], "module") == 0 && argc > 2) {
    check_module(argv[2]);
  } else {
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
  }
  fprintf(stderr, "dropin_c_host %s: %d failure(s)\n", argv[1], failures);
  return failures ? 1 : 0;
}
