// The plugin of bench/share/share_cost.sh: a bare loop of n malloc+free pairs
// (or, with `direct`, strata_malloc+strata_free) in the plugin's own code,
// built three times: strata::module_heap (a private heap, no dispatch),
// strata::simple_share (through dispatch.cpp: its own heap with
// STRATA_SHARE=0, the host's when the host shares).
#include <strata/strata.h>

#include <cstdlib>

extern "C" __attribute__((visibility("default"))) void cost_loop(size_t n, size_t size, int direct) {
  if (direct) {
    for (size_t i = 0; i < n; ++i) {
      void* p = strata_malloc(size);
      __asm__ volatile("" : : "r"(p) : "memory");
      strata_free(p);
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    void* p = std::malloc(size);
    __asm__ volatile("" : : "r"(p) : "memory");
    std::free(p);
  }
}
