// server_rss: a server-like program whose resident set is sampled over time
// (issue 24).  It calls malloc/free, so the allocator under test is whatever
// the process resolves them to (LD_PRELOAD; bench/rss/run).
//
//   server_rss [scale]      (scale multiplies the memory: 1 = a 240 MiB peak)
//
// Four workers live for the whole run.  Phases, each followed by an idle
// period of kIdleMs in which no thread calls the allocator (the main thread
// sleeps, the workers wait on a condition variable):
//   burst    4 workers each build a long-lived set of mixed sizes (32 B ..
//            64 KiB, and a few 1 MiB buffers), then a burst nine times as
//            big on top of it, which they free
//   threads  8 short-lived threads each allocate and free 24 MiB of small
//            blocks and exit (a thread pool shrinking)
//   grow     the workers grow the live set again to about half the peak,
//            with churn (every block freed and replaced once)
//   flush    everything is freed (a cache flush, redis's FLUSHALL)
// A sampler thread reads /proc/self/statm every kSampleMs into a static
// array (no allocation).  At the end the program prints one line per
// sample, "sample t_ms=<ms> rss_kib=<kib> live_kib=<kib> phase=<name>",
// and one line per idle period's end,
// "idle phase=<name> rss_kib=<kib> live_kib=<kib>".
// Under strata (its strata_heap_regions found in the process), each idle
// period's end also gets where strata's resident pages are, by use of its
// regions (every heap of the copy, mincore over each region):
// "strata phase=<name> small_kib=.. medium_kib=.. large_kib=..
// bookkeeping_kib=.. free_kib=..": "small" are spans holding small blocks
// (live or free in the span or in a thread's cache), "free" are regions
// holding none (empty spans kept, free medium chunks, kept large mappings).
#include <dlfcn.h>
#include <fcntl.h>
#include <strata/state.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace {

constexpr int kWorkers = 4;
constexpr int kIdleMs = 3000;
constexpr int kSampleMs = 50;
constexpr int kMaxSamples = 4096;

struct Sample {
  long t_ms;
  long rss_kib;
  long live_kib;
  int phase;
};
Sample g_samples[kMaxSamples];
std::atomic<int> g_nsamples{0};
std::atomic<bool> g_done{false};
std::atomic<long> g_live_bytes{0};
std::atomic<int> g_phase{0};
const char* const kPhases[] = {"burst", "burst-idle", "threads", "threads-idle", "grow", "grow-idle", "flush",
                               "flush-idle"};

// ---- where strata's resident pages are (found at run time: the program
// calls only malloc/free, and runs under every allocator) ----
constexpr int kUses = 8;  // strata_map_use values
struct Resident {
  bool found = false;
  long kib[kUses] = {};
};
Resident g_resident[4];
int resident_visit(const strata_region_t* r, void* ctx) {
  auto* out = static_cast<Resident*>(ctx);
  static unsigned char vec[4096];  // one byte per page, 16 MiB of region at a time
  for (std::uintptr_t a = r->start; a < r->end;) {
    std::size_t len = r->end - a < sizeof vec * 4096 ? r->end - a : sizeof vec * 4096;
    if (mincore(reinterpret_cast<void*>(a), len, vec) == 0)
      for (std::size_t i = 0; i < (len + 4095) / 4096; ++i) out->kib[r->use % kUses] += (vec[i] & 1) * 4;
    a += len;
  }
  return 1;
}
void sample_resident(Resident* out) {
  using Regions = int (*)(strata_pool_t*, unsigned, strata_region_visitor_t, void*, unsigned);
  auto regions = reinterpret_cast<Regions>(dlsym(RTLD_DEFAULT, "strata_heap_regions"));
  if (!regions) return;
  out->found = regions(nullptr, STRATA_REGIONS_ALL_HEAPS, resident_visit, out, STRATA_WAIT_FOREVER) >= 0;
}

long rss_kib() {
  static int fd = -1;
  if (fd < 0) fd = open("/proc/self/statm", O_RDONLY);
  char buf[128];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = 0;
  long size = 0, resident = 0;
  std::sscanf(buf, "%ld %ld", &size, &resident);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long now_ms(std::chrono::steady_clock::time_point t0) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
}

std::uint64_t rng(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// A size of the mix: mostly small, some medium, a few 1 MiB buffers.
std::size_t pick_size(std::uint64_t& s) {
  std::uint64_t r = rng(s) % 1000;
  if (r < 700) return 32 + rng(s) % 480;        // small
  if (r < 950) return 512 + rng(s) % 3584;      // up to 4 KiB
  if (r < 999) return 4096 + rng(s) % 61440;    // up to 64 KiB
  return 1 << 20;                               // a buffer
}

struct Block {
  void* p;
  std::size_t n;
};

void* take(std::size_t n) {
  void* p = std::malloc(n);
  if (!p) std::abort();
  std::memset(p, 0x5a, n);  // written whole: the live set is resident
  g_live_bytes.fetch_add(static_cast<long>(n), std::memory_order_relaxed);
  return p;
}
void give(Block& b) {
  std::free(b.p);
  g_live_bytes.fetch_sub(static_cast<long>(b.n), std::memory_order_relaxed);
  b.p = nullptr;
}

// Fills v with blocks up to `bytes` of live memory.
void fill(std::vector<Block>& v, std::uint64_t& s, std::size_t bytes) {
  std::size_t have = 0;
  for (const Block& b : v) have += b.p ? b.n : 0;
  while (have < bytes) {
    std::size_t n = pick_size(s);
    v.push_back({take(n), n});
    have += n;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const double scale = argc > 1 ? std::atof(argv[1]) : 1.0;
  if (!(scale > 0)) return 2;
  const std::size_t peak_per_worker = static_cast<std::size_t>(60.0 * scale * (1 << 20));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<Block>> sets(kWorkers);
  for (auto& v : sets) v.reserve(1 << 20);
  std::thread sampler([t0] {
    while (!g_done.load()) {
      int i = g_nsamples.load();
      if (i < kMaxSamples) {
        g_samples[i] = {now_ms(t0), rss_kib(), g_live_bytes.load() / 1024, g_phase.load()};
        g_nsamples.store(i + 1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kSampleMs));
    }
  });
  struct Idle {
    long rss_kib, live_kib;
  } idle_end[4];
  // The workers live for the whole run (a server's): between phases they
  // wait on a condition variable, calling nothing of the allocator's.
  std::mutex mu;
  std::condition_variable cv;
  int gen = 0, done = 0;
  bool quit = false;
  std::function<void(int)> task;
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w)
    workers.emplace_back([&, w] {
      int seen = 0;
      for (;;) {
        std::unique_lock<std::mutex> g(mu);
        cv.wait(g, [&] { return quit || gen != seen; });
        if (quit) return;
        seen = gen;
        g.unlock();
        task(w);
        g.lock();
        if (++done == kWorkers) cv.notify_all();
      }
    });
  auto run_workers = [&](std::function<void(int)> fn) {
    std::unique_lock<std::mutex> g(mu);
    task = std::move(fn);
    done = 0;
    ++gen;
    cv.notify_all();
    cv.wait(g, [&] { return done == kWorkers; });
  };
  auto idle = [&](int k) {
    g_phase.store(2 * k + 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(kIdleMs));
    idle_end[k] = {rss_kib(), g_live_bytes.load() / 1024};
    sample_resident(&g_resident[k]);
  };
  // burst:
  g_phase.store(0);
  run_workers([&](int w) {
    std::uint64_t s = 0x9e3779b97f4a7c15ull * static_cast<unsigned>(w + 1);
    fill(sets[w], s, peak_per_worker / 10);  // the long-lived part
    std::vector<Block> temp;                 // the burst on top of it
    temp.reserve(1 << 20);
    fill(temp, s, peak_per_worker - peak_per_worker / 10);
    for (Block& b : temp) give(b);
  });
  idle(0);
  // threads:
  g_phase.store(2);
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
      ts.emplace_back([&, t] {
        std::uint64_t s = 0x1234567ull * static_cast<unsigned>(t + 1);
        std::vector<Block> v;
        v.reserve(1 << 19);
        const std::size_t bytes = static_cast<std::size_t>(24.0 * scale * (1 << 20));
        for (std::size_t have = 0; have < bytes;) {
          std::size_t n = 16 + rng(s) % 240;
          v.push_back({take(n), n});
          have += n;
        }
        for (Block& b : v) give(b);
      });
    for (auto& t : ts) t.join();
  }
  idle(1);
  // grow:
  g_phase.store(4);
  run_workers([&](int w) {
    std::uint64_t s = 0xabcdefull * static_cast<unsigned>(w + 1);
    fill(sets[w], s, peak_per_worker / 2);
    for (Block& b : sets[w])  // churn: every block replaced once
      if (b.p) {
        std::size_t n = pick_size(s);
        give(b);
        b = {take(n), n};
      }
  });
  idle(2);
  // flush:
  g_phase.store(6);
  run_workers([&](int w) {
    for (Block& b : sets[w])
      if (b.p) give(b);
    std::vector<Block>().swap(sets[w]);
  });
  idle(3);
  {
    std::lock_guard<std::mutex> g(mu);
    quit = true;
  }
  cv.notify_all();
  for (auto& t : workers) t.join();
  g_done.store(true);
  sampler.join();
  const int n = g_nsamples.load();
  for (int i = 0; i < n; ++i)
    std::printf("sample t_ms=%ld rss_kib=%ld live_kib=%ld phase=%s\n", g_samples[i].t_ms, g_samples[i].rss_kib,
                g_samples[i].live_kib, kPhases[g_samples[i].phase]);
  for (int k = 0; k < 4; ++k)
    std::printf("idle phase=%s rss_kib=%ld live_kib=%ld\n", kPhases[2 * k], idle_end[k].rss_kib, idle_end[k].live_kib);
  for (int k = 0; k < 4; ++k) {
    const Resident& r = g_resident[k];
    if (r.found)
      std::printf("strata phase=%s small_kib=%ld medium_kib=%ld large_kib=%ld bookkeeping_kib=%ld free_kib=%ld\n",
                  kPhases[2 * k], r.kib[STRATA_MAP_SMALL], r.kib[STRATA_MAP_MEDIUM], r.kib[STRATA_MAP_LARGE],
                  r.kib[STRATA_MAP_BOOKKEEPING], r.kib[STRATA_MAP_FREE]);
  }
  return 0;
}
