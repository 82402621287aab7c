// A malloc/free workload for the leak layer's cost (bench/leak_cost.sh,
// docs/leaks.md): a live set of 20,000 blocks of 16 B to 4 KiB, each
// operation freeing a random one and allocating a new one of a random size,
// through plain malloc and free so that the same binary runs under
// LD_PRELOAD=libstrata.so (tracking off, leak report on, stacks on), under
// heaptrack and under valgrind.  Prints operations per second.
//
//   strata_leak_workload [operations]      (default 2,000,000)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  const long ops = argc > 1 ? std::atol(argv[1]) : 2000000;
  std::vector<void*> live(20000, nullptr);
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < ops; ++i) {
    std::size_t k = next() % live.size();
    std::free(live[k]);
    std::size_t n = 16 + next() % (next() % 8 == 0 ? 4096 : 256);
    live[k] = std::malloc(n);
    static_cast<char*>(live[k])[0] = 1;
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (void* p : live) std::free(p);
  std::printf("%ld operations in %.3f s: %.2f M ops/s\n", ops, s, static_cast<double>(ops) / s / 1e6);
  return 0;
}
