// The unload scenarios of issue 19, run against a plugin (unload_plugin.cpp)
// that carries its own strata.  Each run prints one line of figures and
// fails (exit 1) when memory, mappings or the plugin itself stay behind.
//
//   unload_host <plugin.so> cycles <n> <mode>     scenario a (and c): 8 long-lived workers;
//                                                 each cycle dlopen, every worker calls
//                                                 plugin_call(mode) once, dlclose
//   unload_host <plugin.so> threads <n> <mode>    scenario b: the plugin stays loaded, n
//                                                 short-lived threads (8 at a time) call it
//                                                 once each and exit
//   mode: tls (a __thread pointer to a strata block), local (a strata
//   thread-local block), none.
//   Environment: UNLOAD_MAX_GROWTH (bytes per cycle or thread after warm-up,
//   default 64), UNLOAD_WARMUP (cycles or threads, default n / 10),
//   UNLOAD_SERIES (a file: 200 samples "cycle vm_kib rss_kib maps_lines" of
//   scenario a, for a plot), UNLOAD_MAPS_SLACK (maps lines that may be gained: default 0 for cycles;
//   64 for threads, where trimming the free spans between live ones splits
//   runs of mappings: a mapping leaked per thread would add thousands).
//
// After the last cycle the workers exit (a thread-exit hook left behind
// would jump into unmapped code) and the host forks (so would a fork handler).
#include <dlfcn.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Mem {
  long vm_kib = 0, rss_kib = 0, maps = 0;
  bool plugin_mapped = false;
};

Mem read_mem(const char* plugin) {
  Mem m;
  std::ifstream st("/proc/self/status");
  for (std::string line; std::getline(st, line);) {
    if (line.rfind("VmSize:", 0) == 0) m.vm_kib = std::atol(line.c_str() + 7);
    if (line.rfind("VmRSS:", 0) == 0) m.rss_kib = std::atol(line.c_str() + 6);
  }
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    m.maps++;
    if (line.find(plugin) != std::string::npos) m.plugin_mapped = true;
  }
  return m;
}

int mode_of(const char* s) {
  if (!std::strcmp(s, "tls")) return 0;
  if (!std::strcmp(s, "local")) return 1;
  if (!std::strcmp(s, "none")) return 2;
  std::fprintf(stderr, "unload_host: unknown mode %s\n", s);
  std::exit(2);
}

using Call = int (*)(int);

void* load(const char* path, Call* call) {
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "unload_host: dlopen: %s\n", dlerror());
    std::exit(1);
  }
  *call = reinterpret_cast<Call>(dlsym(h, "plugin_call"));
  auto check = reinterpret_cast<int (*)()>(dlsym(h, "plugin_check"));
  if (!*call || !check || check() != 0) {
    std::fprintf(stderr, "unload_host: the plugin's symbols or tables are missing\n");
    std::exit(1);
  }
  return h;
}

// Growth per step between the end of warm-up and the end, in bytes.
double per_step(long kib_warm, long kib_end, long steps) {
  return steps > 0 ? static_cast<double>(kib_end - kib_warm) * 1024.0 / static_cast<double>(steps) : 0.0;
}

// maps_slack: lines /proc/self/maps may gain without a leak (unmapping a
// span inside a run of mappings splits the run's line in two).
int finish(const char* what, long n, long warm, const Mem& w, const Mem& e, double limit, long maps_slack) {
  if (std::getenv("UNLOAD_DUMP_MAPS")) {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) std::printf("%s\n", line.c_str());
  }
  const double vm = per_step(w.vm_kib, e.vm_kib, n - warm), rss = per_step(w.rss_kib, e.rss_kib, n - warm);
  std::printf("%s: %ld, warm-up %ld; per step after warm-up: VmSize %+.1f B, RSS %+.1f B, maps lines %+ld "
              "(end: VmSize %ld KiB, RSS %ld KiB, %ld maps lines)\n",
              what, n, warm, vm, rss, e.maps - w.maps, e.vm_kib, e.rss_kib, e.maps);
  if (const char* ms = std::getenv("UNLOAD_MAPS_SLACK")) maps_slack = std::atol(ms);
  bool ok = vm <= limit && rss <= limit && e.maps <= w.maps + maps_slack;
  if (!ok) std::printf("FAIL: more than %.0f B per step, or more mappings, after warm-up\n", limit);
  std::fflush(stdout);  // before the threads exit: a crash there must not lose the figures
  return ok ? 0 : 1;
}

int after_threads_exit_fork() {
  // A fork handler of an unloaded copy would be called here.
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::printf("FAIL: fork after the unload: status %d\n", status);
    return 1;
  }
  return 0;
}

int run_cycles(const char* path, long cycles, int mode, long warm, double limit) {
  constexpr int kWorkers = 8;
  std::atomic<Call> call{nullptr};
  std::atomic<long> generation{0};
  std::atomic<int> done{0};
  std::atomic<bool> failed{false}, stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < kWorkers; ++t)
    workers.emplace_back([&] {
      long seen = 0;
      for (;;) {
        long g;
        while ((g = generation.load()) == seen && !stop) std::this_thread::yield();
        if (stop) return;
        seen = g;
        if (call.load()(mode) < 0) failed = true;
        done++;
      }
    });
  // A failure stops and joins the workers first (a std::thread still
  // joinable at return would terminate the host before it says why).
  auto fail = [&](const char* what, long c) {
    std::printf("FAIL: %s in cycle %ld\n", what, c);
    std::fflush(stdout);
    stop = true;
    generation++;
    for (auto& t : workers) t.join();
    return 1;
  };
  // UNLOAD_SERIES=<file>: "cycle vm_kib rss_kib maps_lines", 200 samples.
  FILE* series = std::getenv("UNLOAD_SERIES") ? std::fopen(std::getenv("UNLOAD_SERIES"), "w") : nullptr;
  const long series_every = cycles / 200 > 0 ? cycles / 200 : 1;
  Mem warm_mem{};
  for (long c = 0; c < cycles; ++c) {
    Call f;
    void* h = load(path, &f);
    call = f;
    done = 0;
    generation++;
    while (done < kWorkers) std::this_thread::yield();
    call = nullptr;
    if (dlclose(h) != 0) return fail(dlerror(), c);
    if (failed) return fail("the plugin failed a call", c);
    Mem m = read_mem(path);
    if (m.plugin_mapped) return fail("the plugin is still mapped after dlclose", c);
    if (series && (c % series_every == 0 || c + 1 == cycles)) {
      std::fprintf(series, "%ld %ld %ld %ld\n", c + 1, m.vm_kib, m.rss_kib, m.maps);
      std::fflush(series);
    }
    if (c + 1 == warm) warm_mem = m;
  }
  Mem end = read_mem(path);
  int rc = finish("cycles", cycles, warm, warm_mem, end, limit, 0);
  stop = true;
  for (auto& t : workers) t.join();
  return rc | after_threads_exit_fork();
}

int run_threads(const char* path, long threads, int mode, long warm, double limit) {
  Call f;
  void* h = load(path, &f);
  // Measured after the plugin's heap gave its free memory back: what is
  // held, not what is cached for reuse (empty spans decay over 100 ms).
  auto trim = reinterpret_cast<void (*)()>(dlsym(h, "plugin_trim"));
  if (!trim) return 1;
  Mem warm_mem{};
  bool have_warm = false;
  std::atomic<bool> failed{false};
  for (long started = 0; started < threads;) {
    std::vector<std::thread> batch;
    for (int i = 0; i < 8 && started < threads; ++i, ++started)
      batch.emplace_back([&] {
        if (f(mode) < 0) failed = true;
      });
    for (auto& t : batch) t.join();
    if (!have_warm && started >= warm) {
      trim();
      warm_mem = read_mem(path);
      warm = started;
      have_warm = true;
    }
  }
  if (failed) {
    std::printf("FAIL: the plugin failed a call\n");
    return 1;
  }
  trim();
  Mem end = read_mem(path);
  int rc = finish("threads", threads, warm, warm_mem, end, limit, 64);
  if (dlclose(h) != 0) return 1;
  if (read_mem(path).plugin_mapped) {
    std::printf("FAIL: the plugin is still mapped after dlclose\n");
    return 1;
  }
  return rc | after_threads_exit_fork();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s <plugin.so> cycles|threads <n> tls|local|none\n", argv[0]);
    return 2;
  }
  // The host's own malloc (glibc) must not add to the figures: one arena,
  // not one per thread that ever ran (each reserves 64 MiB of address space).
  mallopt(M_ARENA_MAX, 1);
  const long n = std::atol(argv[3]);
  const int mode = mode_of(argv[4]);
  const char* lim = std::getenv("UNLOAD_MAX_GROWTH");
  const char* wu = std::getenv("UNLOAD_WARMUP");
  const double limit = lim ? std::atof(lim) : 64.0;
  long warm = wu ? std::atol(wu) : n / 10;
  if (warm < 1) warm = 1;
  if (!std::strcmp(argv[2], "cycles")) return run_cycles(argv[1], n, mode, warm, limit);
  if (!std::strcmp(argv[2], "threads")) return run_threads(argv[1], n, mode, warm, limit);
  std::fprintf(stderr, "unload_host: unknown scenario %s\n", argv[2]);
  return 2;
}
