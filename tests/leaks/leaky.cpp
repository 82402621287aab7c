// A program with known leaks, for the leak report's tests and for the
// comparison with valgrind and LeakSanitizer (tests/leaks/leak_check.py,
// docs/leaks.md).  Every leaked pointer is dropped, so that the reference
// tools see each leak as unreachable ("definitely lost").
//
//   leaky [leaks|clean|unregister]
//
// leaks (the default): 3 blocks of 40 bytes (leak_small), 2 app::Widget
// objects (make_widgets), 1 block of 10,000 bytes (leak_medium), 1 of
// 300,000 (leak_large), 4 of 100 bytes in a second thread (thread_leaks);
// and, registered as expected with strata, 1 block of 64 bytes by address,
// 2 of 200 bytes by size, 1 app::Gadget by class.  unregister: the same,
// but the 64-byte block is unregistered again (it becomes a leak).  clean:
// everything is freed.  The registry is reached through dlsym, so the one
// binary runs linked with libstrata.so, under LD_PRELOAD, under valgrind
// and with -fsanitize=leak (where the calls are skipped).
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

namespace app {
struct Widget {
  virtual ~Widget() = default;
  virtual int id() const { return 1; }
  long payload[4] = {0x57, 0x49, 0x44, 0x47};
};
struct Gadget {
  virtual ~Gadget() = default;
  char name[24] = "gadget";
};
}  // namespace app

namespace {

void* keep(void* p) {
  asm volatile("" : : "r"(p) : "memory");
  return p;
}

template <class F>
F strata_fn(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

bool g_clean = false;
std::vector<void*> g_to_free;  // what "clean" frees at the end

void* leak(void* p) {
  if (g_clean) g_to_free.push_back(p);
  return keep(p);
}

__attribute__((noinline)) void leak_small() {
  for (int i = 0; i < 3; ++i) std::strcpy(static_cast<char*>(leak(std::malloc(40))), "small leak");
}
__attribute__((noinline)) void make_widgets() {
  for (int i = 0; i < 2; ++i) {
    app::Widget* w = new app::Widget;
    if (g_clean) delete w;
    else keep(w);
  }
}
__attribute__((noinline)) void leak_medium() { std::memset(leak(std::malloc(10000)), 'm', 10000); }
__attribute__((noinline)) void leak_large() { std::memset(leak(std::malloc(300000)), 'L', 300000); }
__attribute__((noinline)) void thread_leaks() {
  for (int i = 0; i < 4; ++i) std::strcpy(static_cast<char*>(leak(std::malloc(100))), "from the thread");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "leaks";
  g_clean = mode == "clean";
  g_to_free.reserve(64);
  auto reg = strata_fn<int (*)(const void*)>("strata_register_expected_leak");
  auto unreg = strata_fn<int (*)(const void*)>("strata_unregister_expected_leak");
  auto reg_size = strata_fn<int (*)(std::size_t, std::size_t)>("strata_register_expected_leak_size");
  auto reg_class = strata_fn<int (*)(const char*, std::size_t)>("strata_register_expected_leak_class");

  leak_small();
  make_widgets();
  leak_medium();
  leak_large();
  std::thread t(thread_leaks);
  t.join();

  // Expected leaks: one by address, two by size, one by class.
  void* by_address = leak(std::malloc(64));
  if (reg && !reg(by_address)) return 3;
  void* a = leak(std::malloc(200));
  void* b = leak(std::malloc(200));
  (void)a;
  (void)b;
  if (reg_size && !reg_size(200, 2)) return 3;
  app::Gadget* g = new app::Gadget;
  if (g_clean) delete g;
  else keep(g);
  if (reg_class && !reg_class(typeid(app::Gadget).name(), 1)) return 3;
  if (mode == "unregister" && unreg && !unreg(by_address)) return 3;

  if (g_clean)
    for (void* p : g_to_free) std::free(p);
  g_to_free = {};
  by_address = a = b = nullptr;
  return 0;
}
