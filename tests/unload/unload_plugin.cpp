// The plugin of the unload tests: a shared library that carries its own,
// private copy of strata (libstrata.a linked in, its symbols hidden, only the
// archive members it references: no whole-archive), as a plugin author would
// ship it.  It leaves everything behind on purpose: 1 MiB of tables built by
// its constructor, per-thread state of every thread that called it, a pool
// it never destroys, live medium and large blocks.  All of it must be gone
// once the host has unloaded it.
//
// Built twice: calling strata_malloc and friends (strata_unload_plugin), and
// calling plain malloc, calloc, free, new and delete captured by
// strata::module_heap (strata_unload_plugin_malloc, UNLOAD_PLUGIN_MALLOC),
// which also keeps C++ containers and frees blocks of the process's malloc.
#include <malloc.h>
#include <strata/strata.h>

#ifndef UNLOAD_PLUGIN_PEER
#define UNLOAD_PLUGIN_PEER 0
#endif

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#if UNLOAD_PLUGIN_PEER == 2
// The same plugin on a peer, for docs/unloading.md: mimalloc as a shared
// library (UNLOAD_PLUGIN_PEER 2) or the process's malloc, glibc's (1).
#include <mimalloc.h>
#define ALLOC(n) mi_malloc(n)
#define CALLOC(c, n) mi_calloc(c, n)
#define FREE(p) mi_free(p)
#elif defined(UNLOAD_PLUGIN_MALLOC) || UNLOAD_PLUGIN_PEER == 1
#define ALLOC(n) std::malloc(n)
#define CALLOC(c, n) std::calloc(c, n)
#define FREE(p) std::free(p)
#else
#define ALLOC(n) strata_malloc(n)
#define CALLOC(c, n) strata_calloc(c, n)
#define FREE(p) strata_free(p)
#endif

namespace {

constexpr std::size_t kStateBytes = 4096;  // per-thread state of a call

// Scenario c: tables of 16,384 blocks of 16-112 bytes (1 MiB), built when
// the plugin is loaded and never freed.
void* g_tables[16384];
strata_pool_t* g_pool;
void* g_pool_blocks[100];
void* g_medium;
void* g_large;
strata_thread_local_t* g_state;  // the per-thread state as a strata thread-local block

__thread void* t_state;  // the per-thread state as a __thread pointer to a strata block

__attribute__((constructor)) void build_tables() {
  for (std::size_t i = 0; i < sizeof g_tables / sizeof g_tables[0]; ++i) {
    std::size_t n = 16 + (i * 16) % 112;
    g_tables[i] = ALLOC(n);
    if (g_tables[i]) std::memset(g_tables[i], static_cast<int>(i), n);
  }
#if UNLOAD_PLUGIN_PEER
  for (int i = 0; i < 100; ++i) g_pool_blocks[i] = ALLOC(64 + static_cast<std::size_t>(i) * 700);
#else
  g_pool = strata_pool_create();
  for (int i = 0; i < 100; ++i) g_pool_blocks[i] = strata_pool_malloc(g_pool, 64 + static_cast<std::size_t>(i) * 700);
#endif
  g_medium = ALLOC(100000);
  g_large = ALLOC(std::size_t{3} << 20);
#ifdef UNLOAD_PLUGIN_MALLOC
  // C++ objects through the module's operator new, never destroyed before
  // the unload (a leaked singleton, as plugins have).
  // Keys short enough for std::string's inline buffer: a longer one is
  // allocated by libstdc++'s out-of-line string code (always in a Debug
  // build), i.e. by the process's operator new, which module_heap does not
  // capture (docs/usage.md), and this singleton leaks on purpose.
  auto* names = new std::map<std::string, std::vector<int>>();
  for (int i = 0; i < 500; ++i) (*names)[std::to_string(i)] = std::vector<int>(20, i);
#endif
#if !UNLOAD_PLUGIN_PEER
  g_state = strata_thread_local_create(kStateBytes);
#endif
}

// A few hundred small blocks touched and freed, as a call's work would.
int touch_blocks(unsigned seed) {
  void* keep[300];
  int sum = 0;
  for (int j = 0; j < 300; ++j) {
    keep[j] = ALLOC(16 + (seed + static_cast<unsigned>(j) * 37u) % 1000u);
    if (!keep[j]) return -1;
    std::memset(keep[j], j, 16);
  }
  for (int j = 0; j < 300; ++j) {
    sum += static_cast<unsigned char*>(keep[j])[0];
    FREE(keep[j]);
  }
#ifdef UNLOAD_PLUGIN_MALLOC
  // A block of the process's malloc (libc's strdup calls it), freed and
  // reallocated by the module: handed to the process's functions.
  char* s = strdup("made by the process's malloc");
  if (!s || malloc_usable_size(s) < 29) return -1;
  s = static_cast<char*>(realloc(s, 100));
  if (!s || std::strcmp(s, "made by the process's malloc") != 0) return -1;
  free(s);
  std::vector<std::string> words(50, std::string(40, 'w'));  // the module's new and delete
  sum += static_cast<int>(words.size());
#endif
  return sum;
}

}  // namespace

// mode 0: per-thread state behind a __thread pointer (made on the thread's
// first call, never freed by the plugin); mode 1: in a strata thread-local
// block; mode 2: none.  Returns a checksum, or -1 on failure.
extern "C" __attribute__((visibility("default"))) int plugin_call(int mode) {
  auto* state = static_cast<unsigned char*>(nullptr);
  if (mode == 0) {
    if (!t_state) t_state = CALLOC(1, kStateBytes);
    state = static_cast<unsigned char*>(t_state);
  } else if (mode == 1) {
#if !UNLOAD_PLUGIN_PEER
    state = static_cast<unsigned char*>(strata_thread_local_get(g_state));
#endif
  }
  if (mode != 2) {
    if (!state) return -1;
    state[0]++;
    state[kStateBytes - 1]++;
  }
  int sum = touch_blocks(reinterpret_cast<std::uintptr_t>(&mode) >> 4);
  return sum < 0 ? -1 : sum + (state ? state[0] : 0);
}

// The tables are intact (the constructor's blocks were not disturbed).
extern "C" __attribute__((visibility("default"))) int plugin_check() {
  for (std::size_t i = 0; i < sizeof g_tables / sizeof g_tables[0]; ++i)
    if (!g_tables[i] || static_cast<unsigned char*>(g_tables[i])[0] != static_cast<unsigned char>(i)) return -1;
#if UNLOAD_PLUGIN_PEER
  return g_medium && g_large && g_pool_blocks[99] ? 0 : -1;
#else
  if (!(g_medium && g_large && g_pool && g_state && g_pool_blocks[99])) return -1;
  // Every table block is this module's strata's (so is malloc's, captured).
  for (std::size_t i = 0; i < sizeof g_tables / sizeof g_tables[0]; i += 1000)
    if (strata_usable_size(g_tables[i]) < 16) return -1;
  return 0;
#endif
}

// Gives the plugin heap's free memory back (so that a measurement after it
// sees what is held, not what is cached for reuse).
extern "C" __attribute__((visibility("default"))) void plugin_trim() {
#if UNLOAD_PLUGIN_PEER == 1
  malloc_trim(0);
#elif UNLOAD_PLUGIN_PEER == 2
  mi_collect(true);
#else
  (void)strata_heap_trim(nullptr);
#endif
}
