// strata — assertions and code-placement attributes.
//   STRATA_CHECK(c, msg)       always on: metadata corruption, impossible states.
//   STRATA_ASSERT(c)           debug level >= 1: cheap API / invariant checks.
//   STRATA_ASSERT_INTERNAL(c)  debug level >= 2: internal invariants.
// Disabled assertions stay type-checked (if constexpr, never #if).
#pragma once
#include "config.hpp"

#define STRATA_LIKELY(x) __builtin_expect(!!(x), 1)
#define STRATA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define STRATA_FAST_PATH inline __attribute__((always_inline))
#define STRATA_SLOW_PATH __attribute__((noinline, cold))
#define STRATA_NOINLINE __attribute__((noinline))
// A fast-path function that reads memory racily on purpose (a bitmap word
// another thread writes under a lock): no_sanitize("thread") does not
// survive GCC's inlining into an instrumented caller, so under TSan it
// stays out of line (TSan found medium_is_live_start's read once it was
// always inlined).
#if defined(__SANITIZE_THREAD__)
#define STRATA_RACY_FAST_PATH inline __attribute__((noinline, no_sanitize("thread")))
#else
#define STRATA_RACY_FAST_PATH __attribute__((no_sanitize("thread"))) STRATA_FAST_PATH
#endif

namespace strata::detail {
[[noreturn]] void fatal(const char* file, int line, const char* what) noexcept;
}

#define STRATA_CHECK(cond, what)                                                 \
  do {                                                                           \
    if (STRATA_UNLIKELY(!(cond))) ::strata::detail::fatal(__FILE__, __LINE__, what); \
  } while (0)
#define STRATA_ASSERT(cond)                                                      \
  do {                                                                           \
    if constexpr (::strata::detail::kDebugLevel >= 1) STRATA_CHECK(cond, #cond); \
  } while (0)
#define STRATA_ASSERT_INTERNAL(cond)                                             \
  do {                                                                           \
    if constexpr (::strata::detail::kDebugLevel >= 2) STRATA_CHECK(cond, #cond); \
  } while (0)
