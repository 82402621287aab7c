// strata — the lock used everywhere: a futex mutex with a short spin
// (0 free, 1 locked, 2 locked with waiters).  Never allocates, so it is safe
// before main, in signal-free code after fork and during exit.
//
// Lock ranks (take only in increasing rank; docs/design.md has the list):
//   1 g_heaps_lock (heap list, thread slots)   2 Heap::meta_lock
//   3 SizeClass::lock (per class, any order never nested)   4 Heap::medium_locks[i] (arenas; in index order when several are held: fork)
//   5 Heap::large.lock   6 Heap::spans.lock (the span store)
#pragma once
#include <atomic>
#include <cstdint>

#include "check.hpp"
#include "os.hpp"

namespace strata::detail {

class Lock {
 public:
  constexpr Lock() noexcept = default;
  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
  }
  void lock() noexcept {
    if (STRATA_LIKELY(try_lock())) return;
    lock_slow();
  }
  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) os::futex_wake_one(&state_);
  }
  // After fork() in the child: the lock is owned by nobody.
  void reset_after_fork() noexcept { state_.store(0, std::memory_order_relaxed); }
  bool is_locked() const noexcept { return state_.load(std::memory_order_relaxed) != 0; }
  std::uint64_t contention_count() const noexcept { return contended_.load(std::memory_order_relaxed); }

 private:
  STRATA_NOINLINE void lock_slow() noexcept {
    contended_.fetch_add(1, std::memory_order_relaxed);
    for (int i = 0; i < 100; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if (state_.load(std::memory_order_relaxed) == 0 && try_lock()) return;
    }
    while (state_.exchange(2, std::memory_order_acquire) != 0) os::futex_wait(&state_, 2);
  }
  std::atomic<std::uint32_t> state_{0};
  std::atomic<std::uint64_t> contended_{0};
};

class LockGuard {
 public:
  explicit LockGuard(Lock& l) noexcept : l_(l) { l_.lock(); }
  ~LockGuard() { l_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Lock& l_;
};

}  // namespace strata::detail
