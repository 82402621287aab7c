// The plugin of the unload tests: a shared library that carries its own,
// private copy of strata (libstrata.a linked in, its symbols hidden, only the
// archive members it references: no whole-archive), as a plugin author would
// ship it.  It leaves everything behind on purpose: 1 MiB of tables built by
// its constructor, per-thread state of every thread that called it, a pool
// it never destroys, live medium and large blocks.  All of it must be gone
// once the host has unloaded it.
#include <strata/strata.h>

#include <cstdint>
#include <cstring>

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
    g_tables[i] = strata_malloc(n);
    if (g_tables[i]) std::memset(g_tables[i], static_cast<int>(i), n);
  }
  g_pool = strata_pool_create();
  for (int i = 0; i < 100; ++i) g_pool_blocks[i] = strata_pool_malloc(g_pool, 64 + static_cast<std::size_t>(i) * 700);
  g_medium = strata_malloc(100000);
  g_large = strata_malloc(std::size_t{3} << 20);
  g_state = strata_thread_local_create(kStateBytes);
}

// A few hundred small blocks touched and freed, as a call's work would.
int touch_blocks(unsigned seed) {
  void* keep[300];
  int sum = 0;
  for (int j = 0; j < 300; ++j) {
    keep[j] = strata_malloc(16 + (seed + static_cast<unsigned>(j) * 37u) % 1000u);
    if (!keep[j]) return -1;
    std::memset(keep[j], j, 16);
  }
  for (int j = 0; j < 300; ++j) {
    sum += static_cast<unsigned char*>(keep[j])[0];
    strata_free(keep[j]);
  }
  return sum;
}

}  // namespace

// mode 0: per-thread state behind a __thread pointer (made on the thread's
// first call, never freed by the plugin); mode 1: in a strata thread-local
// block; mode 2: none.  Returns a checksum, or -1 on failure.
extern "C" __attribute__((visibility("default"))) int plugin_call(int mode) {
  auto* state = static_cast<unsigned char*>(nullptr);
  if (mode == 0) {
    if (!t_state) t_state = strata_calloc(1, kStateBytes);
    state = static_cast<unsigned char*>(t_state);
  } else if (mode == 1) {
    state = static_cast<unsigned char*>(strata_thread_local_get(g_state));
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
  return g_medium && g_large && g_pool && g_state && g_pool_blocks[99] ? 0 : -1;
}

// Gives the plugin heap's free memory back (so that a measurement after it
// sees what is held, not what is cached for reuse).
extern "C" __attribute__((visibility("default"))) void plugin_trim() { (void)strata_heap_trim(nullptr); }
