// strata — Linux implementation of the OS layer (os.hpp).
#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "check.hpp"
#include "os.hpp"

extern char** environ;

namespace strata::detail::os {

void* map_aligned(std::size_t size, std::size_t align, bool checked) noexcept {
  int saved = errno;
  // Map with slack and trim both ends: one mmap and at most two munmaps.
  std::size_t big = size + align - kPageSize;
  if (big < size) return nullptr;
  void* p = ::mmap(nullptr, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (checked ? 0 : MAP_NORESERVE),
                   -1, 0);
  if (p == MAP_FAILED) {
    errno = saved;
    return nullptr;
  }
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t aligned = (a + align - 1) & ~(align - 1);
  if (aligned > a) ::munmap(p, aligned - a);
  std::uintptr_t end = a + big, aend = aligned + size;
  if (end > aend) ::munmap(reinterpret_cast<void*>(aend), end - aend);
  errno = saved;
  return reinterpret_cast<void*>(aligned);
}

void unmap(void* addr, std::size_t size) noexcept {
  int saved = errno;
  ::munmap(addr, size);
  errno = saved;
}

bool remap_in_place(void* addr, std::size_t old_size, std::size_t new_size) noexcept {
  int saved = errno;
  void* p = ::mremap(addr, old_size, new_size, 0);
  errno = saved;
  return p != MAP_FAILED;
}

void* remap_move_aligned(void* addr, std::size_t old_size, std::size_t new_size, std::size_t align) noexcept {
  int saved = errno;
  // Reserve an aligned destination, then move the pages onto it.
  void* dest = map_aligned(new_size, align, /*checked=*/true);
  if (!dest) return nullptr;
  void* p = ::mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
  errno = saved;
  if (p == MAP_FAILED) {
    ::munmap(dest, new_size);
    return nullptr;
  }
  return p;
}

void discard(void* addr, std::size_t size) noexcept {
  int saved = errno;
  ::madvise(addr, size, MADV_DONTNEED);
  errno = saved;
}

bool is_mapped(const void* addr) noexcept {
  int saved = errno;
  unsigned char v;
  void* page = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(addr) & ~(kPageSize - 1));
  bool mapped = ::mincore(page, kPageSize, &v) == 0 || errno != ENOMEM;
  errno = saved;
  return mapped;
}

void yield() noexcept { ::sched_yield(); }

std::uint64_t now_ms() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000u;
}

void name_region(void* addr, std::size_t size, const char* name) noexcept {
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
  // Kernels without CONFIG_ANON_VMA_NAME answer EINVAL: stop asking.
  static std::atomic<bool> unsupported{false};
  if (unsupported.load(std::memory_order_relaxed)) return;
  int saved = errno;
  if (::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, size, name) != 0 && errno == EINVAL)
    unsupported.store(true, std::memory_order_relaxed);
  errno = saved;
}

void futex_wait(const void* addr, std::uint32_t expected) noexcept {
  int saved = errno;
  ::syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
  errno = saved;
}

void futex_wake_one(const void* addr) noexcept {
  int saved = errno;
  ::syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  errno = saved;
}

std::uint64_t random_u64() noexcept {
  int saved = errno;
  std::uint64_t v = 0;
  if (::syscall(SYS_getrandom, &v, sizeof v, GRND_NONBLOCK) != static_cast<long>(sizeof v)) {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    v = static_cast<std::uint64_t>(ts.tv_nsec) * 0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(&v) ^
        (static_cast<std::uint64_t>(ts.tv_sec) << 32);
  }
  errno = saved;
  return v | 1;
}

unsigned cpu_count() noexcept {
  int saved = errno;
  std::uint64_t mask[16] = {};  // 1024 CPUs; the raw syscall allocates nothing
  long n = ::syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
  errno = saved;
  if (n <= 0) return 1;
  unsigned count = 0;
  for (long i = 0; i < n / 8; ++i) count += static_cast<unsigned>(__builtin_popcountll(mask[i]));
  return count ? count : 1;
}

bool environment_ready() noexcept { return environ != nullptr; }

const char* getenv_raw(const char* name) noexcept {
  char** env = environ;
  if (!env) return nullptr;
  for (; *env; ++env) {
    const char* e = *env;
    const char* n = name;
    while (*n && *e == *n) ++e, ++n;
    if (!*n && *e == '=') return e + 1;
  }
  return nullptr;
}

}  // namespace strata::detail::os
