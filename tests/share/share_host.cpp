// share_host: an executable built with strata::simple_share, so that it
// shares its heap at load time, and plugins dlopen'ed with RTLD_LOCAL, each
// with its own copy of strata, symbols hidden (share_plugin.cpp).
#include <catch2/catch.hpp>
#include <dlfcn.h>
#include <strata/leaks.h>
#include <strata/share.h>
#include <strata/strata.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Plugin {
  void* h = nullptr;
  void* (*malloc_)(size_t) = nullptr;
  void (*free_)(void*) = nullptr;
  void* (*realloc_)(void*, size_t) = nullptr;
  void* (*fill)(size_t, int) = nullptr;
  std::string* (*new_string)(const char*) = nullptr;
  void (*append)(std::string*, const char*) = nullptr;
  void (*delete_string)(std::string*) = nullptr;
  std::vector<int>* (*new_vector)(int) = nullptr;
  void (*push)(std::vector<int>*, int) = nullptr;
  void (*delete_vector)(std::vector<int>*) = nullptr;
  int (*strata_free_)(void*) = nullptr;
  size_t (*small_blocks)() = nullptr;
  int (*status)(strata_mm_status_t*) = nullptr;

  explicit Plugin(const char* path) {
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    INFO(path << ": " << (h ? "" : dlerror()));
    REQUIRE(h);
    sym(malloc_, "plug_malloc");
    sym(free_, "plug_free");
    sym(realloc_, "plug_realloc");
    sym(fill, "plug_fill");
    sym(new_string, "plug_new_string");
    sym(append, "plug_append");
    sym(delete_string, "plug_delete_string");
    sym(new_vector, "plug_new_vector");
    sym(push, "plug_push");
    sym(delete_vector, "plug_delete_vector");
    sym(strata_free_, "plug_strata_free");
    sym(small_blocks, "plug_small_blocks");
    status = reinterpret_cast<int (*)(strata_mm_status_t*)>(dlsym(h, "plug_status"));  // not in the private plugin
  }
  template <typename F>
  void sym(F& f, const char* name) {
    f = reinterpret_cast<F>(dlsym(h, name));
    INFO(name);
    REQUIRE(f);
  }
  strata_mm_status_t get_status() const {
    strata_mm_status_t s{};
    s.size = sizeof s;
    REQUIRE(status);
    REQUIRE(status(&s) == 0);
    return s;
  }
  void close() {
    if (h) REQUIRE(dlclose(h) == 0);
    h = nullptr;
  }
};

bool loaded(const char* path) {
  void* h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (h) dlclose(h);
  return h != nullptr;
}

std::atomic<int> g_errors{0};
void count_error(const strata_error_t*, void*) { g_errors++; }

// Whether the host's strata_free refuses p (through its error handler).
bool host_refuses(void* p) {
  g_errors = 0;
  strata_set_error_handler(count_error, nullptr);
  strata_free(p);
  strata_set_error_handler(nullptr, nullptr);
  return g_errors == 1;
}

strata_mm_status_t my_status() {
  strata_mm_status_t s{};
  s.size = sizeof s;
  REQUIRE(strata_memory_manager_status(&s) == 0);
  return s;
}

size_t my_small_blocks() {
  strata_heap_summary_t s;
  s.size = sizeof s;
  REQUIRE(strata_heap_summary(nullptr, &s) == 0);
  return s.small_blocks;
}

const size_t kTiers[] = {64, 10000, size_t{1} << 20};  // small, medium, large

}  // namespace

TEST_CASE("the executable shares its heap at load time", "[share]") {
  strata_mm_status_t s = my_status();
  INFO(s.reason);
  CHECK(s.role == STRATA_MM_SHARING);
  CHECK(std::string(s.provider) == s.module);
  CHECK(std::string(s.name) == "/dev/shm/strata-mm-" + std::to_string(geteuid()) + "-" + std::to_string(getpid()));
  struct stat st;
  REQUIRE(lstat(s.name, &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(st.st_uid == geteuid());
  // Only one manager per process: a second call fails and says why.
  CHECK(strata_share_memory_manager() == 0);
  CHECK(std::string(my_status().reason).find("already") != std::string::npos);
  CHECK(my_status().role == STRATA_MM_SHARING);
}

TEST_CASE("plugins with strata::simple_share use the executable's heap", "[share]") {
  Plugin a(SHARE_PLUGIN_A), b(SHARE_PLUGIN_B);
  for (Plugin* p : {&a, &b}) {
    strata_mm_status_t s = p->get_status();
    INFO(s.module << ": " << s.reason);
    CHECK(s.role == STRATA_MM_USING_SHARED);
    CHECK(std::string(s.provider) == my_status().module);
    CHECK(std::string(s.module) != s.provider);
    CHECK(s.since_ns > 0);
  }
  // The provider's state report counts the plugins' blocks.
  size_t before = my_small_blocks();
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(a.malloc_(64));
  CHECK(my_small_blocks() >= before + 100);
  CHECK(b.small_blocks() == my_small_blocks());  // b's report reads the same heap
  for (void* p : blocks) b.free_(p);
  CHECK(my_small_blocks() < before + 100);
  a.close();
  b.close();
}

TEST_CASE("blocks of every tier, strings and vectors cross all three modules from several threads", "[share]") {
  Plugin a(SHARE_PLUGIN_A), b(SHARE_PLUGIN_B);
  g_errors = 0;
  strata_set_error_handler(count_error, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      Plugin* mods[2] = {&a, &b};
      for (int i = 0; i < 300; ++i) {
        Plugin& x = *mods[(i + t) % 2];
        Plugin& y = *mods[(i + t + 1) % 2];
        for (size_t n : kTiers) {
          // plugin -> other plugin, plugin -> host, host -> plugin
          void* p = x.fill(n, 0x5a);
          REQUIRE(p);
          p = y.realloc_(p, n + 100);
          REQUIRE(static_cast<unsigned char*>(p)[n - 1] == 0x5a);
          y.free_(p);
          void* q = x.malloc_(n);
          std::free(q);
          void* r = std::malloc(n);
          r = x.realloc_(r, n * 2);
          y.free_(r);
          void* s = std::malloc(n);
          x.free_(s);
        }
        std::string* s = x.new_string("a string long enough to leave the small-string buffer");
        y.append(s, " and grows in the other plugin");
        s->append(" and in the host");
        delete s;
        std::vector<int>* v = y.new_vector(100);
        x.push(v, 1000);
        v->push_back(1);
        x.delete_vector(v);
        auto* hv = new std::vector<int>(50, 7);
        y.push(hv, 5000);
        y.delete_vector(hv);
        auto* hs = new std::string(200, 'h');
        x.delete_string(hs);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(g_errors == 0);
  strata_set_error_handler(nullptr, nullptr);
  a.close();
  b.close();
}

TEST_CASE("plugins unload in every order; their blocks stay live in the shared heap", "[share]") {
  for (int order = 0; order < 2; ++order) {
    Plugin a(SHARE_PLUGIN_A), b(SHARE_PLUGIN_B);
    std::vector<void*> kept;
    std::vector<std::string*> strings;
    for (size_t n : kTiers) {
      kept.push_back(a.fill(n, 1));
      kept.push_back(b.fill(n, 2));
    }
    strings.push_back(a.new_string("made in a, freed by the host after a is gone ........"));
    strings.push_back(b.new_string("made in b, freed by the host after b is gone ........"));
    Plugin* first = order ? &b : &a;
    Plugin* second = order ? &a : &b;
    first->close();
    CHECK_FALSE(loaded(order ? SHARE_PLUGIN_B : SHARE_PLUGIN_A));
    // The survivor still allocates, frees and reallocates the gone one's blocks.
    for (void*& p : kept) p = second->realloc_(p, 300);
    second->close();
    CHECK_FALSE(loaded(order ? SHARE_PLUGIN_A : SHARE_PLUGIN_B));
    // Both plugins are gone; their blocks are live in the host's heap, where
    // its leak report finds them.
    size_t bytes = 0;
    CHECK(strata_count_leaks(nullptr, &bytes) >= static_cast<long>(kept.size() + 2 * strings.size()));
    for (void* p : kept) std::free(p);
    for (std::string* s : strings) {
      CHECK(s->size() > 40);
      delete s;
    }
  }
}

TEST_CASE("a plugin that allocated before switching keeps its own heap", "[share]") {
  Plugin late(SHARE_PLUGIN_LATE);
  auto attempt = reinterpret_cast<int (*)()>(dlsym(late.h, "plug_late_attempt"));
  REQUIRE(attempt);
  CHECK(attempt() == 0);
  strata_mm_status_t s = late.get_status();
  INFO(s.reason);
  CHECK(s.role == STRATA_MM_OWN);
  CHECK(std::string(s.reason).find("live blocks") != std::string::npos);
  // Its blocks are its own: the host's heap refuses them, and its heap the host's.
  void* p = late.malloc_(64);
  CHECK(host_refuses(p));
  late.free_(p);
  void* q = std::malloc(64);
  CHECK(late.strata_free_(q) == STRATA_ERROR_FOREIGN_POINTER);
  std::free(q);
  auto free_early = reinterpret_cast<void (*)()>(dlsym(late.h, "plug_free_early"));
  REQUIRE(free_early);
  free_early();
  late.close();
}

TEST_CASE("without sharing, a cross-module free is refused as a foreign pointer", "[share]") {
  Plugin priv(SHARE_PLUGIN_PRIVATE);  // strata::module_heap: a private heap
  void* mine = std::malloc(64);
  CHECK(priv.strata_free_(mine) == STRATA_ERROR_FOREIGN_POINTER);
  std::free(mine);
  void* theirs = priv.malloc_(10000);
  CHECK(host_refuses(theirs));
  priv.free_(theirs);
  priv.close();
}

TEST_CASE("a forked child shares under its own pid; plugins it loads use the host's heap", "[share][fork]") {
  std::string parent_name = my_status().name;
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    strata_mm_status_t s{};
    s.size = sizeof s;
    strata_memory_manager_status(&s);
    std::string expect = "/dev/shm/strata-mm-" + std::to_string(geteuid()) + "-" + std::to_string(getpid());
    if (s.role != STRATA_MM_SHARING || expect != s.name) _exit(10);
    struct stat st;
    if (lstat(s.name, &st) != 0) _exit(11);
    void* h = dlopen(SHARE_PLUGIN_B, RTLD_NOW | RTLD_LOCAL);
    if (!h) _exit(12);
    auto status = reinterpret_cast<int (*)(strata_mm_status_t*)>(dlsym(h, "plug_status"));
    auto pm = reinterpret_cast<void* (*)(size_t)>(dlsym(h, "plug_malloc"));
    strata_mm_status_t b{};
    b.size = sizeof b;
    status(&b);
    if (b.role != STRATA_MM_USING_SHARED) _exit(13);
    void* p = pm(100);
    std::free(p);
    std::exit(0);  // a normal exit: the child's name goes, the parent's stays
  }
  int st = 0;
  REQUIRE(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  struct stat sb;
  CHECK(lstat(parent_name.c_str(), &sb) == 0);
  std::string child_name = "/dev/shm/strata-mm-" + std::to_string(geteuid()) + "-" + std::to_string(pid);
  CHECK(lstat(child_name.c_str(), &sb) != 0);
}
