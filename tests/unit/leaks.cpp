// The expected-leak registry and the leak report on pools (leakreg/,
// docs/leaks.md): exact counts, each way of expecting a block, classes
// proven from vtables, the demangler, a million registrations, threads,
// call stacks switched on at run time, per-thread tracking off.
#include <strata/leaks.h>
#include <strata/leaks.hpp>
#include <strata/state.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "classify.hpp"

namespace {

struct Base {
  virtual ~Base() = default;
  int x = 1;
};
struct Derived : Base {
  long y = 2;
};
namespace inner {
struct Deep {
  virtual void f() {}
};
}  // namespace inner

template <class T>
T* make_in(strata_pool_t* pool) {
  return new (strata_pool_malloc(pool, sizeof(T))) T;
}

std::string report_of(strata_pool_t* pool, strata_leak_format f = STRATA_LEAKS_TEXT) {
  char path[] = "/tmp/strata-leaks-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(strata_write_leak_report(pool, fd, f) >= 0);
  ::close(fd);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  ::unlink(path);
  return ss.str();
}

long leaks(strata_pool_t* pool, size_t* bytes = nullptr) { return strata_count_leaks(pool, bytes); }

}  // namespace

TEST_CASE("every live block of a pool is a leak until it is expected", "[leaks]") {
  strata_pool_t* pool = strata_pool_create();
  CHECK(leaks(pool) == 0);
  std::vector<void*> v;
  for (std::size_t n : {24, 100, 2000, 5000, 50000, 400000}) v.push_back(strata_pool_malloc(pool, n));
  size_t bytes = 0;
  CHECK(leaks(pool, &bytes) == 6);
  size_t usable = 0;
  for (void* p : v) usable += strata_usable_size(p);
  CHECK(bytes == usable);
  // By address.
  CHECK(strata_register_expected_leak(v[0]) == 1);
  CHECK(strata_register_expected_leak(v[0]) == 0);  // already
  CHECK(leaks(pool) == 5);
  CHECK(strata_unregister_expected_leak(v[0]) == 1);
  CHECK(strata_unregister_expected_leak(v[0]) == 0);
  CHECK(leaks(pool) == 6);
  // By size, in every tier: the size asked for, not the usable size.
  for (std::size_t n : {100, 5000, 400000}) CHECK(strata_register_expected_leak_size(n, 1) == 1);
  CHECK(leaks(pool) == 3);
  CHECK(strata_register_expected_leak_size(24, 5) == 1);  // more than there are: the rest unused
  CHECK(leaks(pool) == 2);
  CHECK(strata_unregister_expected_leak_size(24, 5) == 1);
  CHECK(strata_unregister_expected_leak_size(24, 1) == 0);  // nothing left to take back
  for (std::size_t n : {100, 5000, 400000}) CHECK(strata_unregister_expected_leak_size(n, 1) == 1);
  CHECK(leaks(pool) == 6);
  // A size near, but not a size strata would give that block, does not match.
  CHECK(strata_register_expected_leak_size(4000, 1) == 1);  // 4000 is medium like 5000, but smaller by a granule+
  CHECK(strata_register_expected_leak_size(2625, 1) == 1);  // the first medium size, 2000 is small
  CHECK(leaks(pool) == 6);
  CHECK(strata_unregister_expected_leak_size(4000, 1) == 1);
  CHECK(strata_unregister_expected_leak_size(2625, 1) == 1);
  CHECK(strata_register_expected_leak(nullptr) == 0);
  CHECK(strata_register_expected_leak_size(10, 0) == 0);
  for (void* p : v) strata_pool_free(pool, p);
  CHECK(leaks(pool) == 0);
  strata_pool_destroy(pool);
}

TEST_CASE("C++ objects are named by their class, and expected by class", "[leaks]") {
  strata_pool_t* pool = strata_pool_create();
  Derived* d1 = make_in<Derived>(pool);
  Derived* d2 = make_in<Derived>(pool);
  Base* b = make_in<Base>(pool);
  inner::Deep* deep = make_in<inner::Deep>(pool);
  void* raw = strata_pool_malloc(pool, sizeof(Derived));
  std::memset(raw, 0, sizeof(Derived));
  std::string text = report_of(pool);
  INFO(text);
  CHECK(text.find("Leaked memory: 5 blocks") != std::string::npos);
  CHECK(text.find("2 x (anonymous namespace)::Derived") != std::string::npos);
  CHECK(text.find("1 x (anonymous namespace)::Base") != std::string::npos);
  CHECK(text.find("(anonymous namespace)::inner::Deep") != std::string::npos);
  CHECK(text.find("1 x unknown") != std::string::npos);
  // The dynamic type is matched: a Derived is not a Base.
  CHECK(strata::register_expected_leak<Derived>(2));
  CHECK(leaks(pool) == 3);
  {
    strata::expected_leaks_of<Base> guard(1);
    CHECK(leaks(pool) == 2);
    strata::expected_leak one(raw);
    CHECK(one.registered());
    CHECK(leaks(pool) == 1);
  }
  CHECK(leaks(pool) == 3);
  CHECK(strata::unregister_expected_leak<Derived>(2));
  CHECK(leaks(pool) == 5);
  std::string json = report_of(pool, STRATA_LEAKS_JSON);
  CHECK(json.find("\"kind\":\"leaks\"") != std::string::npos);
  CHECK(json.find(std::string("\"mangled\":\"") + (typeid(Derived).name()[0] == '*' ? typeid(Derived).name() + 1
                                                                                       : typeid(Derived).name())) !=
        std::string::npos);
  for (void* p : {static_cast<void*>(d1), static_cast<void*>(d2), static_cast<void*>(b), static_cast<void*>(deep), raw})
    strata_pool_free(pool, p);
  CHECK(report_of(pool).find("No leaks") != std::string::npos);
  strata_pool_destroy(pool);
}

TEST_CASE("a block whose first word only looks like a vtable pointer is not a class", "[leaks]") {
  strata_pool_t* pool = strata_pool_create();
  Derived real;
  void* const vptr = *reinterpret_cast<void**>(&real);
  // The vtable pointer shifted by a word, a pointer into the block itself,
  // a pointer into read-only data that is not a vtable, an unmapped address.
  static const char text[64] = "not a vtable at all, just read-only bytes";
  const void* fakes[] = {static_cast<const char*>(vptr) + 8, text, reinterpret_cast<void*>(0x10000),
                         reinterpret_cast<void*>(~std::uintptr_t{0} & ~std::uintptr_t{7})};
  std::vector<void*> v;
  for (const void* f : fakes) {
    void* p = strata_pool_malloc(pool, 64);
    std::memset(p, 0, 64);
    std::memcpy(p, &f, sizeof f);
    v.push_back(p);
  }
  std::string out = report_of(pool);
  INFO(out);
  CHECK(out.find("64 bytes: 4 x unknown") != std::string::npos);
  for (void* p : v) strata_pool_free(pool, p);
  strata_pool_destroy(pool);
}

TEST_CASE("the demangler spells class names as C++ does", "[leaks]") {
  char out[256];
  auto dm = [&](const char* m) {
    strata::leakreg::demangle(m, out, sizeof out);
    return std::string(out);
  };
  CHECK(dm("7Session") == "Session");
  CHECK(dm("N3app6WidgetE") == "app::Widget");
  CHECK(dm("N12_GLOBAL__N_14BaseE") == "(anonymous namespace)::Base");
  CHECK(dm("St9exception") == "std::exception");
  CHECK(dm("NSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE") ==
        "NSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE");  // substitutions: left mangled
  CHECK(dm("N3app3BoxIiEE") == "app::Box<int>");
  CHECK(dm("N3app3MapIiPKcEE") == "app::Map<int, char const*>");
  CHECK(dm("3FooILi3EE") == "Foo<int(3)>");
  CHECK(dm("99") == "99");  // a length past the end
  CHECK(dm("") == "");
}

TEST_CASE("a million registrations and unregistrations, and no fixed capacity", "[leaks]") {
  std::vector<char> fake(1);  // addresses need not be strata's to be registered
  const auto base = reinterpret_cast<std::uintptr_t>(fake.data()) << 4;
  for (std::uintptr_t i = 0; i < 1000000; ++i) REQUIRE(strata_register_expected_leak(reinterpret_cast<void*>(base + 16 * i)) == 1);
  for (std::uintptr_t i = 0; i < 1000000; i += 2) REQUIRE(strata_unregister_expected_leak(reinterpret_cast<void*>(base + 16 * i)) == 1);
  for (std::uintptr_t i = 0; i < 1000000; ++i)
    REQUIRE(strata_unregister_expected_leak(reinterpret_cast<void*>(base + 16 * i)) == (i % 2 ? 1 : 0));
  // The registry's memory is not a heap's: a pool sees no change.
  strata_pool_t* pool = strata_pool_create();
  CHECK(leaks(pool) == 0);
  strata_pool_destroy(pool);
}

TEST_CASE("threads register, unregister and report at once", "[leaks]") {
  strata_pool_t* pool = strata_pool_create();
  std::atomic<int> failures{0};  // (Catch's assertions are not for other threads)
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([pool, t, &failures] {
      std::vector<void*> mine;
      for (int i = 0; i < 2000; ++i) {
        void* p = strata_pool_malloc(pool, 16 + 16 * static_cast<std::size_t>(t));
        mine.push_back(p);
        if (strata_register_expected_leak(p) != 1) ++failures;
        if (i % 100 == 0 && leaks(pool) < 0) ++failures;
      }
      for (void* p : mine) {
        if (strata_unregister_expected_leak(p) != 1) ++failures;
        strata_pool_free(pool, p);
      }
    });
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  CHECK(leaks(pool) == 0);
  strata_pool_destroy(pool);
}

TEST_CASE("call stacks switched on at run time, and off for a thread", "[leaks][stacks]") {
  REQUIRE(strata_leak_stacks(1) == 1);
  strata_pool_t* pool = strata_pool_create();
  void* tracked = strata_pool_malloc(pool, 300);
  strata_leak_tracking_disable();
  void* untracked = strata_pool_malloc(pool, 300);
  strata_leak_tracking_enable();
  std::string json = report_of(pool, STRATA_LEAKS_JSON);
  INFO(json);
  CHECK(json.find("\"stacks\":true") != std::string::npos);
  CHECK(json.find("\"leaks\":{\"blocks\":1,") != std::string::npos);   // the tracked block
  CHECK(json.find("\"untracked\":{\"blocks\":1,") != std::string::npos);  // the other, counted apart
  CHECK(json.find("leaks.cpp") != std::string::npos);  // where it was allocated, with its file
  CHECK(json.find("\"function\":\"strata_pool_malloc\"") == std::string::npos);  // strata's frames hidden
  strata_pool_free(pool, tracked);
  strata_pool_free(pool, untracked);
  CHECK(strata_leak_stacks(0) == 0);
  void* after = strata_pool_malloc(pool, 300);
  CHECK(report_of(pool, STRATA_LEAKS_JSON).find("\"stacks\":false") != std::string::npos);
  strata_pool_free(pool, after);
  strata_pool_destroy(pool);
}

// fork while another thread registers and allocates with stacks on: the
// child's allocations and registrations go on (the leak layer's locks are
// held across the fork and reset in the child).
TEST_CASE("fork while the leak layer is busy in another thread", "[leaks][stacks][fork]") {
#if defined(__SANITIZE_THREAD__)
  SUCCEED("left out under TSan, which ends a child forked while other threads run");
  return;
#endif
  REQUIRE(strata_leak_stacks(1) == 1);
  strata_pool_t* pool = strata_pool_create();
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    while (!stop) {
      void* p = strata_pool_malloc(pool, 48);
      strata_register_expected_leak(p);
      strata_unregister_expected_leak(p);
      strata_pool_free(pool, p);
    }
  });
  int bad = 0;
  for (int i = 0; i < 20; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      alarm(20);  // a deadlock becomes a SIGALRM
      void* p = strata_pool_malloc(pool, 48);
      int ok = strata_register_expected_leak(p) == 1 && strata_count_leaks(pool, nullptr) >= 0;
      _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++bad;
  }
  stop = true;
  busy.join();
  CHECK(bad == 0);
  strata_leak_stacks(0);
  strata_pool_destroy(pool);
}
