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
#include <string>

#include <strata/strata.h>

namespace {
// PLUGIN "host": the same loop in the host (its malloc is the executable
// variant's, exported: the process's).
void host_loop(size_t n, size_t size, int direct) {
  for (size_t i = 0; i < n; ++i) {
    void* p = direct ? strata_malloc(size) : std::malloc(size);
    __asm__ volatile("" : : "r"(p) : "memory");
    direct ? strata_free(p) : std::free(p);
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  bool host = std::string(argv[1]) == "host";
  void* h = host ? nullptr : dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!host && !h) {
    std::fprintf(stderr, "share_cost: %s\n", dlerror());
    return 2;
  }
  auto loop = host ? &host_loop : reinterpret_cast<void (*)(size_t, size_t, int)>(dlsym(h, "cost_loop"));
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
