// The plugin of plugin_unload_host.cpp: uses its own, private copy of strata.
#include <strata/strata.h>
#include <cstring>
extern "C" __attribute__((visibility("default"))) int plugin_work(int n) {
  void* keep[64];
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < 64; ++j) { keep[j] = strata_malloc(16 + (j * 37) % 3000); std::memset(keep[j], j, 16); }
    for (int j = 0; j < 64; j += 2) strata_free(keep[j]);
    for (int j = 1; j < 64; j += 2) { sum += ((unsigned char*)keep[j])[0]; strata_free(keep[j]); }
  }
  return sum;
}
