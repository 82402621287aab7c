// Threads, fork, spawn and exit under LD_PRELOAD=libstrata.so (built
// without strata).  One scenario per run:
//   ov_threads first_alloc   allocation as the very first act of new threads
//   ov_threads fork          fork in a multithreaded parent; the child
//                            allocates, with and without exec
//   ov_threads spawn         posix_spawn and vfork+exec while threads allocate
//   ov_threads tls_exit      allocation from thread_local destructors and
//                            pthread key destructors at thread exit (after
//                            strata's own thread-exit hook may have run)
//   ov_threads atexit        allocation from atexit handlers and static
//                            destructors, exit while other threads allocate
//   ov_threads churn [secs]  short-lived threads allocating and freeing each
//                            other's blocks while others run (default 2.5 s)
//   ov_threads exec_child    (internal) what an exec'ed child runs
#define OV_DEFINE_GLOBALS
#include "ov_check.h"

#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

const ov_strata_api_t* S;
const char* g_self;

// strata_heap_summary through dlsym (the struct's head, see strata.h).
struct Summary {
  std::size_t size;
  unsigned version;
  std::size_t small_blocks, small_bytes, medium_blocks, medium_bytes, large_blocks, large_bytes;
  std::size_t cached_blocks, cached_bytes, in_use_bytes, peak_in_use_bytes;
  std::size_t os_reserved_bytes, peak_os_reserved_bytes, os_map_calls, thread_caches;
};
Summary summary() {
  using Fn = int (*)(void*, Summary*);
  static Fn fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "strata_heap_summary"));
  Summary s{};
  s.size = sizeof s;
  if (fn) fn(nullptr, &s);
  return s;
}

std::uint64_t rng_next(std::uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}
// Sizes across the tiers, mostly small.
std::size_t pick_size(std::uint64_t& r) {
  std::uint64_t v = rng_next(r);
  switch (v % 16) {
    case 0: return 2625 + (v >> 8) % 60000;       // medium
    case 1: return (v >> 8) % 2 ? 300000 + (v >> 12) % 700000 : 2625 + (v >> 8) % 250000;  // large/medium
    default: return (v >> 8) % 2625;               // small
  }
}

// A block stamped with its size and a tag at both ends.
struct Stamp {
  std::size_t n;
  unsigned tag;
};
void* stamped_alloc(std::size_t n, unsigned tag) {
  n = n < sizeof(Stamp) + 1 ? sizeof(Stamp) + 1 : n;
  auto* p = static_cast<unsigned char*>(std::malloc(n));
  if (!p) {
    OV_CHECK(false, "malloc(%zu) failed", n);
    return nullptr;
  }
  Stamp s{n, tag};
  std::memcpy(p, &s, sizeof s);
  p[n - 1] = static_cast<unsigned char>(tag);
  return p;
}
void stamped_free(void* q) {
  if (!q) return;
  auto* p = static_cast<unsigned char*>(q);
  Stamp s;
  std::memcpy(&s, p, sizeof s);
  OV_CHECK(p[s.n - 1] == static_cast<unsigned char>(s.tag), "block %p (%zu bytes, tag %u) was overwritten", q, s.n,
           s.tag);
  if (S) OV_CHECK_STRATA_BLOCK(S, q, s.n);
  std::free(q);
}

// Threads that keep allocating and freeing until told to stop.
struct Busy {
  std::atomic<bool> stop{false};
  std::vector<pthread_t> ts;
  static void* run(void* arg) {
    auto* b = static_cast<Busy*>(arg);
    std::uint64_t r = reinterpret_cast<std::uintptr_t>(&r) | 1;
    void* ring[64] = {};
    unsigned i = 0;
    while (!b->stop.load(std::memory_order_relaxed)) {
      stamped_free(ring[i % 64]);
      ring[i % 64] = stamped_alloc(pick_size(r), i);
      ++i;
    }
    for (void* p : ring) stamped_free(p);
    return nullptr;
  }
  void start(int n) {
    for (int i = 0; i < n; i++) {
      pthread_t t;
      pthread_create(&t, nullptr, run, this);
      ts.push_back(t);
    }
  }
  void finish() {
    stop = true;
    for (pthread_t t : ts) pthread_join(t, nullptr);
    ts.clear();
  }
};

// ---- first_alloc -----------------------------------------------------------
std::atomic<int> g_first_done;
void* first_malloc(void* arg) {
  void* p = std::malloc(reinterpret_cast<std::uintptr_t>(arg));  // the thread's first act
  g_first_done++;
  return p;
}
void* first_new(void* arg) {
  void* p = ::operator new(reinterpret_cast<std::uintptr_t>(arg));  // first act: operator new
  g_first_done++;
  return p;
}
void* first_calloc_aligned(void* arg) {
  std::size_t n = reinterpret_cast<std::uintptr_t>(arg);
  void* p = n % 2 ? std::calloc(1, n) : std::aligned_alloc(64, n);
  g_first_done++;
  return p;
}
int first_alloc() {
  static const std::size_t sizes[] = {1, 16, 100, 2624, 5000, 70000, 270000, 3 << 20};
  void* (*const fns[])(void*) = {first_malloc, first_new, first_calloc_aligned};
  int n = 0;
  for (int round = 0; round < 30; round++) {
    pthread_t ts[8];
    std::size_t sz[8];
    int kind[8];
    for (int i = 0; i < 8; i++) {
      sz[i] = sizes[(round + i) % 8] + static_cast<std::size_t>(i % 2);
      kind[i] = (round + i) % 3;
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, 64 << 10);  // small stacks, like many servers
      OV_CHECK(pthread_create(&ts[i], &attr, fns[kind[i]], reinterpret_cast<void*>(sz[i])) == 0, "pthread_create");
      pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < 8; i++) {
      void* p = nullptr;
      pthread_join(ts[i], &p);
      OV_CHECK(p != nullptr, "first allocation of a thread (%zu bytes) failed", sz[i]);
      if (!p) continue;
      OV_CHECK_STRATA_BLOCK(S, p, sz[i]);
      std::memset(p, 1, sz[i]);
      if (kind[i] == 1)
        ::operator delete(p);  // freed by another thread than the one that allocated it
      else
        std::free(p);
      ++n;
    }
  }
  OV_CHECK(g_first_done == n, "threads done %d != %d", g_first_done.load(), n);
  return ov_finish("ov_threads first_alloc");
}

// ---- fork ------------------------------------------------------------------
int child_work(int seed) {
  std::uint64_t r = static_cast<std::uint64_t>(seed) * 2654435761u | 1;
  std::vector<void*> v;
  for (int i = 0; i < 3000; i++) {
    v.push_back(stamped_alloc(pick_size(r), static_cast<unsigned>(i)));
    if (i % 3 == 0) {
      stamped_free(v[v.size() / 2]);
      v[v.size() / 2] = nullptr;
    }
  }
  // A thread in the child too.
  std::thread t([&] {
    for (int i = 0; i < 1000; i++) stamped_free(stamped_alloc(pick_size(r), 7));
  });
  t.join();
  for (void* p : v) stamped_free(p);
  std::string s;
  for (int i = 0; i < 10000; i++) s += "fork child ";
  return ov_failures == 0 && ov_strata_errors == 0 && s.size() == 110000 ? 0 : 1;
}

int exec_child() {
  S = ov_require_strata("ov_threads exec_child");
  return child_work(getpid());
}

int fork_test() {
  Busy busy;
  busy.start(3);
  std::vector<void*> parent_blocks;
  for (int i = 0; i < 200; i++) parent_blocks.push_back(stamped_alloc(static_cast<std::size_t>(i) * 997, 1));
  const int kForks = 40;
  for (int i = 0; i < kForks; i++) {
    bool do_exec = i % 2 == 1;
    pid_t pid = fork();
    if (pid == 0) {
      alarm(30);  // a deadlock in the child (a lock inherited held) becomes a SIGALRM
      // The child allocates at once, frees a block the parent allocated, and works.
      void* p = std::malloc(1000);
      if (!p) _exit(3);
      stamped_free(parent_blocks[static_cast<std::size_t>(i)]);
      parent_blocks[static_cast<std::size_t>(i)] = nullptr;
      std::free(p);
      if (do_exec) {
        char* const args[] = {const_cast<char*>(g_self), const_cast<char*>("exec_child"), nullptr};
        execve(g_self, args, environ);
        _exit(4);
      }
      _exit(child_work(i));
    }
    OV_CHECK(pid > 0, "fork failed");
    int st = 0;
    waitpid(pid, &st, 0);
    OV_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child %d (%s): %s %d", i, do_exec ? "exec" : "no exec",
             WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  }
  busy.finish();
  for (void* p : parent_blocks) stamped_free(p);
  return ov_finish("ov_threads fork");
}

// ---- spawn -----------------------------------------------------------------
// vfork + exec in a function of its own (nothing of the caller's frame is
// live across the vfork); returns the wait status, -1 if vfork failed.
__attribute__((noinline)) int vfork_exec(const char* path) {
  char* const args[] = {const_cast<char*>(path), nullptr};
  pid_t pid = vfork();
  if (pid == 0) {
    execv(path, args);
    _exit(127);
  }
  if (pid < 0) return -1;
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

int spawn_test() {
  Busy busy;
  busy.start(3);
  const char* truth = "/bin/true";
  for (int i = 0; i < 40; i++) {
    pid_t pid = 0;
    char* const args[] = {const_cast<char*>(truth), nullptr};
    int rc = posix_spawn(&pid, truth, nullptr, nullptr, args, environ);
    OV_CHECK(rc == 0, "posix_spawn: %d", rc);
    int st = 0;
    if (rc == 0) waitpid(pid, &st, 0);
    OV_CHECK(rc != 0 || (WIFEXITED(st) && WEXITSTATUS(st) == 0), "posix_spawn /bin/true: status %#x", st);
    // posix_spawn of this program, which checks strata in the child
    if (i % 10 == 0) {
      char* const args2[] = {const_cast<char*>(g_self), const_cast<char*>("exec_child"), nullptr};
      rc = posix_spawn(&pid, g_self, nullptr, nullptr, args2, environ);
      if (rc == 0) waitpid(pid, &st, 0);
      OV_CHECK(rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "posix_spawn exec_child: rc %d status %#x", rc, st);
    }
    // vfork + exec: the child shares the parent's memory until exec; it may
    // not allocate, but the parent's other threads keep allocating.
    st = vfork_exec(truth);
    OV_CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "vfork+exec /bin/true: status %#x", st);
    // system() (fork/clone + exec of the shell, which is preloaded too)
    if (i % 10 == 5) {
      int s2 = std::system("/bin/true");
      OV_CHECK(WIFEXITED(s2) && WEXITSTATUS(s2) == 0, "system(/bin/true): %#x", s2);
    }
  }
  busy.finish();
  return ov_finish("ov_threads spawn");
}

// ---- tls_exit --------------------------------------------------------------
std::atomic<int> g_tls_dtors, g_key_dtors;
std::mutex g_orphans_lock;
std::vector<void*> g_orphans;  // blocks allocated by threads that have exited
pthread_key_t g_key;

struct TlsObject {
  std::vector<std::string>* strings = nullptr;
  void* block = nullptr;
  void touch() {
    if (!strings) {
      strings = new std::vector<std::string>;
      block = stamped_alloc(5000, 3);
    }
  }
  ~TlsObject() {
    // Allocates and frees at thread exit, including blocks of its own thread.
    if (strings) {
      for (int i = 0; i < 100; i++) strings->push_back(std::string(static_cast<std::size_t>(i * 13), 'z'));
      delete strings;
    }
    stamped_free(block);
    void* p = stamped_alloc(300, 4);
    void* q = stamped_alloc(100000, 5);
    stamped_free(p);
    std::lock_guard<std::mutex> g(g_orphans_lock);
    g_orphans.push_back(q);
    g_tls_dtors++;
  }
};
thread_local TlsObject t_obj;

// pthread key destructor: runs after the thread_local destructors and, as the
// key was created after strata's, after strata's thread-exit hook; it re-arms
// itself once so it also runs in a second destructor round.
void key_dtor(void* v) {
  void* a = stamped_alloc(64, 6);
  void* b = stamped_alloc(4000, 6);
  auto* s = new std::string(500, 'k');
  std::vector<int> grow;
  for (int i = 0; i < 10000; i++) grow.push_back(i);
  delete s;
  stamped_free(a);
  stamped_free(v);  // the block set as the key's value by the thread
  {
    std::lock_guard<std::mutex> g(g_orphans_lock);
    g_orphans.push_back(b);
  }
  g_key_dtors++;
}
thread_local int t_rearmed;
void key_dtor_rearm(void* v) {
  key_dtor(v);
  if (!t_rearmed) {
    t_rearmed = 1;
    pthread_setspecific(g_key, stamped_alloc(77, 8));  // a second round
  }
}

void* tls_thread(void* arg) {
  t_obj.touch();
  void* v = stamped_alloc(reinterpret_cast<std::uintptr_t>(arg), 9);
  pthread_setspecific(g_key, v);
  std::uint64_t r = reinterpret_cast<std::uintptr_t>(arg) | 1;
  for (int i = 0; i < 500; i++) stamped_free(stamped_alloc(pick_size(r), 2));
  // Take over some blocks of threads that already exited.
  std::vector<void*> taken;
  {
    std::lock_guard<std::mutex> g(g_orphans_lock);
    while (!g_orphans.empty() && taken.size() < 4) {
      taken.push_back(g_orphans.back());
      g_orphans.pop_back();
    }
  }
  for (void* p : taken) stamped_free(p);
  return nullptr;
}

int tls_exit() {
  void* warm = std::malloc(10);  // strata initialised (its key exists) before ours
  std::free(warm);
  OV_CHECK(pthread_key_create(&g_key, key_dtor_rearm) == 0, "pthread_key_create");
  Summary before = summary();
  const int kThreads = 120;
  for (int i = 0; i < kThreads; i += 6) {
    pthread_t ts[6];
    for (int k = 0; k < 6; k++)
      pthread_create(&ts[k], nullptr, tls_thread, reinterpret_cast<void*>(static_cast<std::uintptr_t>(100 + i * 37 + k)));
    for (pthread_t t : ts) pthread_join(t, nullptr);
  }
  OV_CHECK(g_tls_dtors == kThreads, "thread_local destructors ran %d times, expected %d", g_tls_dtors.load(), kThreads);
  OV_CHECK(g_key_dtors == 2 * kThreads, "key destructors ran %d times, expected %d", g_key_dtors.load(), 2 * kThreads);
  for (void* p : g_orphans) stamped_free(p);
  g_orphans.clear();
  g_orphans.shrink_to_fit();
  Summary after = summary();
  std::printf("thread caches attached: %zu before, %zu after %d threads exited\n", before.thread_caches,
              after.thread_caches, kThreads);
  OV_CHECK(after.thread_caches <= before.thread_caches + 1,
           "thread caches leak: %zu attached before, %zu after the threads exited", before.thread_caches,
           after.thread_caches);
  return ov_finish("ov_threads tls_exit");
}

// ---- atexit ----------------------------------------------------------------
std::vector<void*>* g_exit_blocks;
std::atomic<int> g_handlers;
void handler_alloc() {
  // Allocates, frees blocks main allocated, builds strings.
  std::string s;
  for (int i = 0; i < 2000; i++) s += std::to_string(i);
  for (void* p : *g_exit_blocks) stamped_free(p);
  g_exit_blocks->clear();
  for (int i = 0; i < 500; i++) g_exit_blocks->push_back(stamped_alloc(static_cast<std::size_t>(i) * 611, 10));
  g_handlers++;
}
void handler_free() {
  for (void* p : *g_exit_blocks) stamped_free(p);
  delete g_exit_blocks;
  g_exit_blocks = nullptr;
  void* big = stamped_alloc(8 << 20, 11);
  stamped_free(big);
  g_handlers++;
}
void handler_last() {  // registered first, runs last
  char buf[160];
  int n = std::snprintf(buf, sizeof buf, "atexit handlers done: %d handlers, %d failures, %d strata errors\n",
                        g_handlers.load(), ov_failures.load(), ov_strata_errors.load());
  if (write(1, buf, static_cast<std::size_t>(n)) < 0) {
  }
  if (g_handlers != 3 || ov_failures || ov_strata_errors) _exit(1);
}
struct StaticWithDtor {
  std::vector<std::string>* v = nullptr;
  ~StaticWithDtor() {
    if (v) {
      for (int i = 0; i < 1000; i++) v->emplace_back(static_cast<std::size_t>(i % 200), 's');
      delete v;
    }
    void* p = std::malloc(12345);
    std::free(p);
  }
};
StaticWithDtor g_static;

int atexit_test() {
  std::atexit(handler_last);
  g_static.v = new std::vector<std::string>(10, "static");
  g_exit_blocks = new std::vector<void*>;
  for (int i = 0; i < 300; i++) g_exit_blocks->push_back(stamped_alloc(static_cast<std::size_t>(i) * 101, 12));
  std::atexit(handler_free);
  std::atexit(handler_alloc);
  // An atexit handler registered from another thread.
  std::thread([] { std::atexit([] { std::free(std::malloc(777)); g_handlers++; }); }).join();
  // Threads still allocating while the process exits (detached, never stopped).
  static Busy busy;
  busy.start(2);
  for (pthread_t t : busy.ts) pthread_detach(t);
  busy.ts.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  g_handlers = 0;
  // The handlers count themselves: alloc, free, the thread's one = 3.
  std::exit(ov_failures ? 1 : 0);
}

// ---- churn -----------------------------------------------------------------
std::mutex g_x_lock;
std::vector<void*> g_exchange;
std::atomic<long> g_churn_allocs;

void* churn_thread(void* arg) {
  std::uint64_t r = reinterpret_cast<std::uintptr_t>(arg) * 0x9E3779B97F4A7C15ull | 1;
  unsigned tag = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(arg));
  std::vector<void*> mine;
  int n = 50 + static_cast<int>(rng_next(r) % 400);
  for (int i = 0; i < n; i++) mine.push_back(stamped_alloc(pick_size(r), tag));
  g_churn_allocs += n;
  std::vector<void*> theirs;
  {
    std::lock_guard<std::mutex> g(g_x_lock);
    for (std::size_t i = 0; i < mine.size(); i += 2) g_exchange.push_back(mine[i]);  // half outlive this thread
    std::size_t take = std::min<std::size_t>(g_exchange.size() / 2, mine.size());
    for (std::size_t i = 0; i < take; i++) {
      std::size_t j = rng_next(r) % g_exchange.size();
      theirs.push_back(g_exchange[j]);
      g_exchange[j] = g_exchange.back();
      g_exchange.pop_back();
    }
  }
  for (std::size_t i = 1; i < mine.size(); i += 2) stamped_free(mine[i]);
  for (void* p : theirs) stamped_free(p);  // blocks of other, mostly exited, threads
  return nullptr;
}

int churn(double seconds) {
  Summary before = summary();
  Busy busy;
  busy.start(1);
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::uintptr_t k = 1;
  long batches = 0;
  while (std::chrono::steady_clock::now() < end) {
    pthread_t ts[4];
    for (auto& t : ts) OV_CHECK(pthread_create(&t, nullptr, churn_thread, reinterpret_cast<void*>(k++)) == 0, "create");
    for (auto t : ts) pthread_join(t, nullptr);
    ++batches;
  }
  busy.finish();
  for (void* p : g_exchange) stamped_free(p);
  g_exchange.clear();
  g_exchange.shrink_to_fit();
  Summary after = summary();
  std::printf("churn: %ld threads, %ld blocks; thread caches %zu -> %zu; in use %zu -> %zu bytes\n", batches * 4,
              g_churn_allocs.load(), before.thread_caches, after.thread_caches, before.in_use_bytes,
              after.in_use_bytes);
  OV_CHECK(after.thread_caches <= before.thread_caches + 1, "thread caches leak: %zu -> %zu", before.thread_caches,
           after.thread_caches);
  return ov_finish("ov_threads churn");
}

}  // namespace

int main(int argc, char** argv) {
  g_self = argv[0];
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s first_alloc|fork|spawn|tls_exit|atexit|churn [seconds]\n", argv[0]);
    return 2;
  }
  std::string what = argv[1];
  if (what == "exec_child") return exec_child();
  S = ov_require_strata("ov_threads");
  if (what == "first_alloc") return first_alloc();
  if (what == "fork") return fork_test();
  if (what == "spawn") return spawn_test();
  if (what == "tls_exit") return tls_exit();
  if (what == "atexit") return atexit_test();
  if (what == "churn") return churn(argc > 2 ? std::atof(argv[2]) : 2.5);
  std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
  return 2;
}
