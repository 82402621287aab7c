// The cost of seeing inside a heap (issue 20's closing figures): a state
// snapshot, a walk of every block, the heap's regions, the memory map and
// each report format, for a process heap holding a million live blocks
// (default; argv[1] another count) of mixed small, medium and large sizes.
// Links libstrata.a (strata_* only); prints one line per operation with the
// best and the median of 7 runs.
//
//   build/release/bench/strata_inspect_cost [live_blocks]
#include <fcntl.h>
#include <strata/state.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

namespace {

double seconds(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void report(const char* what, const std::function<void()>& f) {
  std::vector<double> t;
  for (int i = 0; i < 7; ++i) t.push_back(seconds(f));
  std::sort(t.begin(), t.end());
  std::printf("%-28s best %9.3f ms   median %9.3f ms\n", what, t[0] * 1e3, t[3] * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  std::vector<void*> blocks(n);
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::size_t size = i % 100000 == 0 ? (1 << 20) : i % 1000 == 0 ? 3000 + x % 200000 : 8 + x % 500;
    blocks[i] = strata_malloc(size);
  }
  strata_heap_state_t s{};
  s.size = sizeof s;
  strata_heap_state(nullptr, &s, STRATA_WAIT_FOREVER);
  std::printf("process heap: %zu small, %zu medium, %zu large live blocks; %.1f MiB allocated, %.1f MiB reserved\n",
              s.small.blocks_in_use, s.medium.blocks_in_use, s.large.blocks_in_use,
              s.summary.allocated_bytes / 1048576.0, s.summary.reserved_bytes / 1048576.0);
  report("strata_heap_state", [&] { strata_heap_state(nullptr, &s, STRATA_WAIT_FOREVER); });
  std::size_t seen = 0;
  auto count = [](const strata_block_info_t*, void* c) -> int { return ++*static_cast<std::size_t*>(c) != 0; };
  report("strata_heap_walk (live)", [&] { seen = 0; strata_heap_walk(nullptr, 0, count, &seen, STRATA_WAIT_FOREVER); });
  std::printf("  (the walk saw %zu blocks)\n", seen);
  report("strata_heap_walk (+free)", [&] { strata_heap_walk(nullptr, STRATA_WALK_FREE, count, &seen, STRATA_WAIT_FOREVER); });
  auto none = [](const strata_region_t*, void*) -> int { return 1; };
  report("strata_heap_regions (all)", [&] { strata_heap_regions(nullptr, STRATA_REGIONS_ALL_HEAPS, none, nullptr, STRATA_WAIT_FOREVER); });
  auto runs = [](const strata_map_run_t*, void*) -> int { return 1; };
  report("strata_memory_map", [&] { strata_memory_map(nullptr, runs, nullptr, STRATA_WAIT_FOREVER); });
  const int devnull = open("/dev/null", O_WRONLY);
  report("report, text", [&] { strata_write_report(nullptr, devnull, STRATA_REPORT_TEXT, STRATA_WAIT_FOREVER); });
  report("report, JSON", [&] { strata_write_report(nullptr, devnull, STRATA_REPORT_JSON, STRATA_WAIT_FOREVER); });
  report("report, SVG", [&] { strata_write_report(nullptr, devnull, STRATA_REPORT_SVG, STRATA_WAIT_FOREVER); });
  close(devnull);
  for (void* p : blocks) strata_free(p);
  return 0;
}
