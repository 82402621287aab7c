// Shared helpers for the strata test executables: content patterns, tier
// discovery through strata_heap_summary, /proc/self/maps accounting and a
// fork-based child-process runner for tests that expect an abort.
#ifndef STRATA_TEST_UTIL_HPP
#define STRATA_TEST_UTIL_HPP

#include <strata/strata.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace st {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * 1024;

// Small blocks are <= kSmallMax bytes (design fact from the allocator).
constexpr std::size_t kSmallMax = 2624;

inline std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline std::uint64_t block_seed(const void* p, std::size_t n) {
  return mix64(reinterpret_cast<std::uintptr_t>(p) ^ (static_cast<std::uint64_t>(n) << 1) ^ 0x5bd1e995ULL);
}

// Byte i of the pattern with `seed`: depends on the position non-linearly so
// that shifted, truncated or swapped content is detected.
inline std::uint8_t pattern_byte(std::uint64_t seed, std::size_t i) {
  // Only shifts by constants, so that fill/check loops vectorise.
  std::uint32_t v = static_cast<std::uint32_t>(i) * 0x9dU + static_cast<std::uint32_t>(i >> 8) * 0x3bU +
                    static_cast<std::uint32_t>(i >> 16) * 0x17U;
  return static_cast<std::uint8_t>((v + static_cast<std::uint32_t>(seed)) ^ static_cast<std::uint32_t>(seed >> 29));
}

// Pattern bytes [lo, hi) of a block (byte i gets pattern_byte(seed, i)).
inline void fill_range(void* p, std::size_t lo, std::size_t hi, std::uint64_t seed) {
  auto* b = static_cast<std::uint8_t*>(p);
  for (std::size_t i = lo; i < hi; ++i) b[i] = pattern_byte(seed, i);
}
inline void fill(void* p, std::size_t n, std::uint64_t seed) { fill_range(p, 0, n, seed); }

// Returns the index of the first wrong byte, or SIZE_MAX when all match.
inline std::size_t first_mismatch_range(const void* p, std::size_t lo, std::size_t n, std::uint64_t seed) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  std::size_t i = lo;
  for (; i + 256 <= n; i += 256) {  // branch-free inner loop (vectorises)
    unsigned diff = 0;
    for (std::size_t k = i; k < i + 256; ++k) diff |= static_cast<unsigned>(b[k] ^ pattern_byte(seed, k));
    if (diff) break;
  }
  for (; i < n; ++i)
    if (b[i] != pattern_byte(seed, i)) return i;
  return SIZE_MAX;
}
inline std::size_t first_mismatch(const void* p, std::size_t n, std::uint64_t seed) {
  return first_mismatch_range(p, 0, n, seed);
}
inline bool check(const void* p, std::size_t n, std::uint64_t seed) { return first_mismatch(p, n, seed) == SIZE_MAX; }

inline bool all_bytes(const void* p, std::size_t n, std::uint8_t v) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != v) return false;
  return true;
}

inline bool aligned(const void* p, std::size_t a) { return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0; }

// ---- summary / tiers -------------------------------------------------------

inline strata_heap_summary_t summary(strata_pool_t* pool = nullptr) {
  strata_heap_summary_t s;
  std::memset(&s, 0, sizeof s);
  s.size = sizeof s;
  if (strata_heap_summary(pool, &s) != 0) std::abort();
  return s;
}

enum class Tier { none, small, medium, large };

inline const char* tier_name(Tier t) {
  switch (t) {
    case Tier::small: return "small";
    case Tier::medium: return "medium";
    case Tier::large: return "large";
    default: return "none";
  }
}

// The tier of a fresh block of `size` bytes of the process heap, observed
// through the summary counters (the caller must be the only strata user).
inline Tier tier_of_size(std::size_t size) {
  strata_heap_summary_t a = summary();
  void* p = strata_malloc(size);
  if (!p) return Tier::none;
  strata_heap_summary_t b = summary();
  strata_free(p);
  if (b.small_blocks == a.small_blocks + 1) return Tier::small;
  if (b.medium_blocks == a.medium_blocks + 1) return Tier::medium;
  if (b.large_blocks == a.large_blocks + 1) return Tier::large;
  return Tier::none;
}

// Smallest size in [lo, hi] for which tier_of_size(size) == want, assuming
// the tier is monotone in the size; 0 if none.
inline std::size_t first_size_of_tier(std::size_t lo, std::size_t hi, Tier want) {
  if (tier_of_size(hi) != want) return 0;
  while (lo < hi) {
    std::size_t mid = lo + (hi - lo) / 2;
    if (tier_of_size(mid) == want) hi = mid; else lo = mid + 1;
  }
  return lo;
}

// ---- /proc/self/maps -------------------------------------------------------

struct Range {
  std::uintptr_t lo, hi;
};

// Reads /proc/self/maps without allocating from any heap (static buffer), so
// that the measurement does not itself change the mappings.
inline std::size_t read_maps(Range* out, std::size_t cap, std::size_t* total_bytes) {
  static char buf[4 * 1024 * 1024];
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) std::abort();
  std::size_t len = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
    if (len == sizeof buf - 1) std::abort();
  }
  ::close(fd);
  buf[len] = 0;
  std::size_t n = 0, total = 0;
  char* s = buf;
  while (*s) {
    char* end = nullptr;
    unsigned long long lo = std::strtoull(s, &end, 16);
    if (*end != '-') std::abort();
    unsigned long long hi = std::strtoull(end + 1, &end, 16);
    total += static_cast<std::size_t>(hi - lo);
    if (n < cap) out[n] = Range{static_cast<std::uintptr_t>(lo), static_cast<std::uintptr_t>(hi)};
    ++n;
    char* nl = std::strchr(end, '\n');
    if (!nl) break;
    s = nl + 1;
  }
  if (total_bytes) *total_bytes = total;
  return n;
}

inline std::size_t mapped_bytes() {
  std::size_t total = 0;
  read_maps(nullptr, 0, &total);
  return total;
}

// True when the page holding `p` is mapped (mincore fails with ENOMEM for
// an unmapped page).
// The process's resident set (VmRSS), in KiB; 0 if it cannot be read.
inline std::size_t rss_kib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  std::size_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmRSS: %zu", &kib) == 1) break;
  std::fclose(f);
  return kib;
}

inline bool page_mapped(const void* p) {
  static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  unsigned char v;
  void* base = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~(page - 1));
  if (::mincore(base, page, &v) == 0) return true;
  return errno != ENOMEM;
}

// ---- child processes -------------------------------------------------------

struct ChildResult {
  int status = 0;        // waitpid status
  bool timed_out = false;
  std::string err;       // everything the child wrote to stderr
  bool signaled(int sig) const { return !timed_out && WIFSIGNALED(status) && WTERMSIG(status) == sig; }
  bool exited(int code) const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == code; }
  std::string describe() const {
    char b[128];
    if (timed_out) std::snprintf(b, sizeof b, "timed out");
    else if (WIFSIGNALED(status)) std::snprintf(b, sizeof b, "killed by signal %d", WTERMSIG(status));
    else if (WIFEXITED(status)) std::snprintf(b, sizeof b, "exited with %d", WEXITSTATUS(status));
    else std::snprintf(b, sizeof b, "status 0x%x", status);
    return std::string(b) + "; stderr: [" + err + "]";
  }
};

inline double now_seconds() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs f() in a forked child whose stderr goes into a pipe read by the
// parent.  The child exits with 0 if f returns.  A child that runs longer
// than timeout_s seconds is killed (timed_out = true).
template <class F>
ChildResult run_in_child(F&& f, double timeout_s = 30.0) {
  ChildResult res;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
    // Catch2's fatal-signal handlers were inherited: restore the defaults so
    // that an abort() in the child really kills it with SIGABRT.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGALRM}) ::signal(sig, SIG_DFL);
    ::alarm(static_cast<unsigned>(timeout_s) + 5);
    f();
    ::_exit(0);
  }
  ::close(fds[1]);
  double deadline = now_seconds() + timeout_s;
  char buf[4096];
  for (;;) {
    double left = deadline - now_seconds();
    if (left <= 0) {
      res.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    res.err.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  while (::waitpid(pid, &res.status, 0) < 0 && errno == EINTR) {}
  return res;
}

// The address as printf's %p prints it (what the default handler must show).
inline std::string fmt_ptr(const void* p) {
  char b[64];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  return s;
}

inline const char* env_or(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : dflt;
}

}  // namespace st

#endif  // STRATA_TEST_UTIL_HPP
