// A plugin with a private copy of strata (libstrata.a linked into it, hidden)
// is loaded, called from four threads, and unloaded while those threads are
// still alive; then the threads exit.  If strata left a thread-exit hook
// pointing into the unloaded plugin, the exits would jump into unmapped code
// and this test would crash.  Repeated many times.
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  int cycles = std::atoi(argv[2]);
  for (int c = 0; c < cycles; ++c) {
    void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      std::printf("dlopen: %s\n", dlerror());
      return 1;
    }
    auto work = reinterpret_cast<int (*)(int)>(dlsym(h, "plugin_work"));
    if (!work) return 1;
    std::atomic<int> done{0};
    std::atomic<bool> may_exit{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        if (work(20) < 0) std::abort();
        done++;
        while (!may_exit) std::this_thread::yield();
      });
    while (done < 4) std::this_thread::yield();
    if (dlclose(h) != 0) return 1;
    may_exit = true;
    for (auto& t : threads) t.join();
  }
  std::printf("%d load/call/unload cycles with live threads: ok\n", cycles);
  return 0;
}
