// bench/share/share_cost.sh's host: share_cost PLUGIN SIZE N DIRECT [REPEAT]
// loads PLUGIN (RTLD_LOCAL) and runs its loop of N pairs of SIZE bytes,
// REPEAT times (default 1), printing the best time per pair in ns.  Built
// with strata::simple_share: the host shares its heap at load unless
// STRATA_SHARE=0, and a simple_share plugin then uses it.
#include <dlfcn.h>
#include <strata/share.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "share_cost: %s\n", dlerror());
    return 2;
  }
  auto loop = reinterpret_cast<void (*)(size_t, size_t, int)>(dlsym(h, "cost_loop"));
  auto status = reinterpret_cast<int (*)(strata_mm_status_t*)>(dlsym(h, "strata_memory_manager_status"));
  (void)status;
  size_t size = std::strtoull(argv[2], nullptr, 10), n = std::strtoull(argv[3], nullptr, 10);
  int direct = std::atoi(argv[4]);
  int repeat = argc > 5 ? std::atoi(argv[5]) : 1;
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    loop(n, size, direct);
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n;
    if (ns < best) best = ns;
  }
  std::printf("%.2f\n", best);
  return 0;
}
