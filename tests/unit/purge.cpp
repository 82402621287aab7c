// The purge (issue 24): empty small spans go back to the OS after the purge
// delay (STRATA_PURGE_DELAY_MS) without the program asking — at the exit of
// the thread that emptied them, or at a later slow path of any thread once
// they have been free for the delay — and never with a delay of -1.
// Behaviour tests: the delay is set by the ctest entry (200 ms; -1 for the
// hidden [.purge-never] case), the checks read the heap's own count of the
// bytes it has mapped, and the resident set.
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

constexpr std::size_t kMiB = 1 << 20;
constexpr std::size_t kBurst = 25 * kMiB;  // per thread, in 64-byte blocks
// What a heap keeps mapped after a purge: the 16 empty spans it always keeps
// (1 MiB) and the never-touched rest of its last span region (up to 4 MiB of
// address space, not resident), plus a little.
constexpr std::size_t kKept = 6 * kMiB;

std::size_t rss_bytes() { return st::rss_kib() * 1024; }

// Allocates kBurst bytes of 64-byte blocks (written), then frees them all.
void burst(strata_pool_t* pool) {
  std::vector<void*> v;
  v.reserve(kBurst / 64);
  for (std::size_t i = 0; i < kBurst / 64; ++i) {
    void* p = pool ? strata_pool_malloc(pool, 64) : strata_malloc(64);
    if (!p) std::abort();  // (no Catch assertion: it runs in worker threads, and Catch is not thread-safe)
    std::memset(p, 1, 64);
    v.push_back(p);
  }
  for (void* p : v) pool ? strata_pool_free(pool, p) : strata_free(p);
}

// Under a sanitizer the shadow memory makes the resident set say nothing
// about strata's: only the heap's own count is checked there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kRssMeaningful = false;
#else
constexpr bool kRssMeaningful = true;
#endif

std::size_t os_bytes(strata_pool_t* pool = nullptr) { return st::summary(pool).os_reserved_bytes; }

}  // namespace

TEST_CASE("an exiting thread's emptied spans go back at its exit", "[purge]") {
  const std::size_t before = os_bytes(), rss_before = rss_bytes();
  std::thread a([] { burst(nullptr); }), b([] { burst(nullptr); });
  a.join();
  b.join();
  // 50 MiB went through the heap.
  CHECK(os_bytes() < before + kKept);
  if (kRssMeaningful) CHECK(rss_bytes() < rss_before + 8 * kMiB);
}

TEST_CASE("a pool's spans go back at the exit of the thread that emptied them", "[purge]") {
  strata_pool_t* pool = strata_pool_create();
  REQUIRE(pool != nullptr);
  std::thread t([pool] { burst(pool); });
  t.join();
  CHECK(os_bytes(pool) < kKept);
  strata_pool_destroy(pool);
}

// A live thread's burst: its spans are kept for the delay (it may reuse
// them at once), then the next slow path of any thread gives them back.
TEST_CASE("a burst freed by a live thread goes back after the delay, at the next slow path", "[purge]") {
  const char* delay = std::getenv("STRATA_PURGE_DELAY_MS");
  REQUIRE(delay != nullptr);
  const long ms = std::atol(delay);
  REQUIRE(ms > 0);
  const std::size_t before = os_bytes();
  burst(nullptr);
  // (What went empty more than the delay before the burst's end may already
  // be gone, given back by the burst's own releases: no check on it, the
  // burst's length depends on the build.)
  std::this_thread::sleep_for(std::chrono::milliseconds(ms + 150));
  // A slow path: the first blocks of a class this thread has not used.
  void* p = strata_malloc(1500);
  strata_free(p);
  CHECK(os_bytes() < before + kKept);
}

// Run by the purge_never entry (STRATA_PURGE_DELAY_MS=-1).
TEST_CASE("a purge delay of -1 keeps the emptied spans", "[.purge-never]") {
  const std::size_t before = os_bytes();
  std::thread t([] { burst(nullptr); });
  t.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  void* p = strata_malloc(1500);
  strata_free(p);
  CHECK(os_bytes() > before + kBurst / 2);
  // An explicit trim still gives them back.
  strata_heap_trim(nullptr);
  CHECK(os_bytes() < before + kKept);
}

// Run by the purge_thread entry (STRATA_PURGE_THREAD=1, a 200 ms delay):
// a live thread frees a burst and then makes no call at all; the background
// thread gives the spans back.
TEST_CASE("the background purge gives back a burst while the program sleeps", "[.purge-thread]") {
  const std::size_t before = os_bytes();
  burst(nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(200 + 500));  // the delay, then a few periods
  CHECK(os_bytes() < before + kKept);
}

// Without the background thread, the same sleep gives nothing back (no
// call, no purge): what STRATA_PURGE_THREAD is for.
TEST_CASE("without the background purge a sleeping program keeps its burst", "[purge]") {
  burst(nullptr);
  const std::size_t after_burst = os_bytes();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK(os_bytes() == after_burst);
  strata_heap_trim(nullptr);
}
