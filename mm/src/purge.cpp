// strata — the purge (purge.hpp): the due purges of every heap, and the
// opt-in background thread that runs them.
#include "purge.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>

#include "heap.hpp"
#include "options.hpp"
#include "os.hpp"

namespace strata::detail {

namespace {

// 0: not running, 1: starting or running.
std::atomic<int> g_state{0};
pthread_t g_thread;
pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;
bool g_stop = false;  // g_mutex

// Half the shorter of the two delays, between 10 ms and 1 s.
std::uint64_t period_ms() noexcept {
  std::uint64_t d = purge_delay_ms();
  std::uint64_t t = option_value(Option::kTrimDelayMs);
  std::uint64_t p = (d < t ? d : t) / 2;
  return p < 10 ? 10 : p > 1000 ? 1000 : p;
}

void* purge_main(void*) {
  const std::uint64_t period = period_ms();
  pthread_mutex_lock(&g_mutex);
  while (!g_stop) {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += static_cast<time_t>(period / 1000);
    ts.tv_nsec += static_cast<long>(period % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&g_wake, &g_mutex, &ts);
    if (g_stop) break;
    pthread_mutex_unlock(&g_mutex);
    purge_all_due();
    pthread_mutex_lock(&g_mutex);
  }
  pthread_mutex_unlock(&g_mutex);
  return nullptr;
}

}  // namespace

void purge_all_due() noexcept {
  LockGuard g(g_heaps_lock);
  for (Heap* h = g_heaps; h; h = h->next) {
    if (small_purge_hint(h->spans)) small_purge_due(h);
    medium_purge_due(h);
    if (h == &g_default_heap) large_reclaim_parked(h);
    large_purge(h, purge_delay_ms());
  }
}

void purge_thread_maybe_start() noexcept {
  if (g_state.load(std::memory_order_relaxed) != 0) return;
  if (!option_enabled(Option::kPurgeThread) || purge_delay_ms() == kPurgeNever) return;
  int expected = 0;
  if (!g_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return;
  // The thread takes no signal of the program's: all blocked while it is
  // created (it inherits the mask), then the caller's mask again.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_mutex_lock(&g_mutex);
  g_stop = false;
  pthread_mutex_unlock(&g_mutex);
  if (pthread_create(&g_thread, nullptr, purge_main, nullptr) != 0) g_state.store(0, std::memory_order_release);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void purge_thread_stop() noexcept {
  if (g_state.load(std::memory_order_acquire) != 1) return;
  pthread_mutex_lock(&g_mutex);
  g_stop = true;
  pthread_cond_signal(&g_wake);
  pthread_mutex_unlock(&g_mutex);
  pthread_join(g_thread, nullptr);
  g_state.store(0, std::memory_order_release);
}

void purge_thread_after_fork_child() noexcept {
  g_mutex = PTHREAD_MUTEX_INITIALIZER;
  g_wake = PTHREAD_COND_INITIALIZER;
  g_stop = false;
  g_state.store(0, std::memory_order_relaxed);
}

bool purge_thread_running() noexcept { return g_state.load(std::memory_order_acquire) == 1; }

}  // namespace strata::detail
