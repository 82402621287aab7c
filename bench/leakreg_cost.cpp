// The leak layer's costs (docs/leaks.md): a million registrations and
// unregistrations of expected leaks (FastMM's list holds about 1,364), the
// leak report of a process heap of a million live blocks, and what call
// stacks cost an allocation (malloc+free pairs with stacks off, then on).
// Best of 5.
#include <strata/leaks.h>
#include <strata/strata.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
template <class F>
double best_of(int runs, F f) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    double t0 = now_ms();
    f();
    best = std::min(best, now_ms() - t0);
  }
  return best;
}
__attribute__((noinline)) void pairs(int n, std::size_t size) {
  for (int i = 0; i < n; ++i) {
    void* p = strata_malloc(size);
    asm volatile("" : : "r"(p) : "memory");
    strata_free(p);
  }
}

}  // namespace

int main() {
  constexpr int kN = 1000000;
  std::vector<void*> blocks;
  blocks.reserve(kN);
  for (int i = 0; i < kN; ++i) blocks.push_back(strata_malloc(16 + 16 * static_cast<std::size_t>(i % 8)));
  double reg = best_of(5, [&] {
    for (void* p : blocks) strata_register_expected_leak(p);
    for (void* p : blocks) strata_unregister_expected_leak(p);
  });
  std::printf("register + unregister 1,000,000 expected leaks  best %9.1f ms  (%.0f ns a pair)\n", reg, reg * 1e6 / kN);
  for (int i = 0; i < kN; i += 2) strata_register_expected_leak(blocks[static_cast<std::size_t>(i)]);
  long found = 0;
  double count = best_of(5, [&] { found = strata_count_leaks(nullptr, nullptr); });
  std::printf("strata_count_leaks, 1,000,000 live (half expected)  best %9.1f ms  (%ld leaks)\n", count, found);
  for (void* p : blocks) strata_free(p);
  const int kPairs = 200000;
  double off = best_of(5, [&] { pairs(kPairs, 64); });
  if (strata_leak_stacks(1) != 1) {
    std::printf("call stacks: libunwind could not be loaded\n");
    return 0;
  }
  double on = best_of(5, [&] { pairs(kPairs, 64); });
  strata_leak_stacks(0);
  std::printf("malloc+free of 64 bytes, stacks off  %7.1f ns a pair\n", off * 1e6 / kPairs);
  std::printf("malloc+free of 64 bytes, stacks on   %7.1f ns a pair (the capture of %s)\n", on * 1e6 / kPairs,
              "a 32-frame stack by unw_backtrace, interned");
  return 0;
}
