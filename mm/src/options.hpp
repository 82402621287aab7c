// strata — the run-time options: one table, one environment parser.
//
// Every option is one row of STRATA_OPTIONS: its id, environment variable,
// kind, default, bounds and documentation line (docs/options.md is written
// from these rows; tests/internal/options_test.cpp checks both agree).  A
// value is read from the environment the first time the option is asked for
// (walking environ: no getenv, no allocation) and kept; a value that does not
// parse, or lies outside the bounds, is ignored and the default used.
// Layer: bottom (os only).
#pragma once
#include <cstdint>

#include "config.hpp"

namespace strata::detail {

enum class OptionKind : std::uint8_t {
  kBool,  // unset or "0": false; any other value: true
  kUInt,  // decimal digits only, within [min, max]
  kPath,  // a file name: 1 to 4,095 bytes, no control characters (option_path)
};

// A delay option's "never": its max, which "-1" also spells.
inline constexpr std::uint64_t kOptionNever = std::uint64_t{1} << 62;

// X(id, env name, kind, default, min, max, doc)
#define STRATA_OPTIONS(X)                                                                                         \
  X(kPurgeDelayMs, "STRATA_PURGE_DELAY_MS", kUInt, 1000, 0, kOptionNever,                                         \
    "milliseconds an empty small span waits before it goes back to the OS (beyond the 16 a heap keeps); 0 "      \
    "gives them back at once, -1 never. A thread's exit gives back what it emptied at once. Read when strata "  \
    "first needs it.")                                                                                            \
  X(kPurgeThread, "STRATA_PURGE_THREAD", kBool, 0, 0, 1,                                                          \
    "when set to anything but 0, a background thread runs the due purges (empty spans after "                    \
    "STRATA_PURGE_DELAY_MS, medium pool tops after STRATA_TRIM_DELAY_MS, kept large mappings after the purge "  \
    "delay) every half delay, for programs that free a burst and then sleep; it also gives back all the free "  \
    "memory of a medium arena nobody used since its last run, and unmaps a large block parked in the cache of "  \
    "a thread that has not used the large tier since (docs/design.md, \"What runs the purge\"). Started with "  \
    "the first thread cache; stopped when the copy of strata that runs it is unloaded.")                         \
  X(kTrimDelayMs, "STRATA_TRIM_DELAY_MS", kUInt, kMediumTrimDelayMs, 0, std::uint64_t{1} << 40,                   \
    "milliseconds a free run at the top of a medium pool waits before its pages (beyond the pad) go back to "     \
    "the OS; 0 gives them back at once (glibc's behaviour). Read when strata sets up its first thread cache.")    \
  X(kShowStats, "STRATA_SHOW_STATS", kBool, 0, 0, 1,                                                              \
    "when set to anything but 0, strata prints the full text report of its process heap (a row per size class, "  \
    "the tiers, the usage summary, the memory map's totals) to stderr at exit, or at the unload of the module "   \
    "that carries it. Read then.")                                                                                \
  X(kReport, "STRATA_REPORT", kPath, 0, 0, 0,                                                                     \
    "a file strata writes the report of its process heap to at exit (or at its module's unload): JSON when the "  \
    "name ends in .json, the SVG picture when it ends in .svg, text otherwise; %p in the name is replaced by the "\
    "process id. Read then.")                                                                                     \
  X(kReportLeaks, "STRATA_REPORT_LEAKS", kBool, 0, 0, 1,                                                          \
    "when set to anything but 0, strata writes the leak report of its process heap (the live blocks not "        \
    "registered as expected) at exit, or at the unload of the module that carries it, when there is a leak: "   \
    "to stderr, or to STRATA_LEAK_REPORT. Read then (strata_report_memory_leaks_on_shutdown overrides it).")     \
  X(kLeakReport, "STRATA_LEAK_REPORT", kPath, 0, 0, 0,                                                            \
    "the file the leak report at shutdown goes to instead of stderr: JSON when the name ends in .json, text "    \
    "otherwise; %p in the name is replaced by the process id. Read then.")                                        \
  X(kLeakStacks, "STRATA_LEAK_STACKS", kBool, 0, 0, 1,                                                            \
    "when set to anything but 0, every allocation records its call stack for the leak report (libunwind is "    \
    "loaded; allocations skip the thread caches). Read when strata is loaded.")                                   \
  X(kReleaseOnUnload, "STRATA_RELEASE_ON_UNLOAD", kBool, 1, 0, 1,                                                 \
    "a copy of strata linked into a shared library returns every mapping of its heaps when that library is "    \
    "unloaded (or finalised at exit); 0 keeps them (the pre-release behaviour). Read at the unload.")            \
  X(kShare, "STRATA_SHARE", kBool, 1, 0, 1,                                                                       \
    "a module built with strata::simple_share uses, at its load, the memory manager another module of the "       \
    "process shares, or else shares its own; 0 makes it keep its own heap and share nothing (the explicit "      \
    "strata_share_memory_manager and strata_attempt_to_use_shared_memory_manager still work). Read at the load.") \
  X(kVerbose, "STRATA_VERBOSE", kBool, 0, 0, 1,                                                                   \
    "when set to anything but 0, strata writes one line to stderr for each event worth knowing: a module's heap "  \
    "released at its unload, with the blocks still live then; each decision about a shared memory manager "   \
    "(published, used, refused, and why).")

enum class Option : unsigned {
#define STRATA_OPTION_ID(id, env, kind, def, lo, hi, doc) id,
  STRATA_OPTIONS(STRATA_OPTION_ID)
#undef STRATA_OPTION_ID
  kCount
};

struct OptionInfo {
  const char* env;
  OptionKind kind;
  std::uint64_t def, min, max;
  const char* doc;
};
const OptionInfo& option_info(Option o) noexcept;

// The option's value: from the environment if it was set and valid, else
// the default.  Parsed once (a later change of the environment is not seen);
// before the environment exists (very early start-up) the default is
// returned and the variable read again at the next call.
std::uint64_t option_value(Option o) noexcept;
inline bool option_enabled(Option o) noexcept { return option_value(o) != 0; }
// STRATA_PURGE_DELAY_MS: kPurgeNever when it is -1.
inline constexpr std::uint64_t kPurgeNever = kOptionNever;
inline std::uint64_t purge_delay_ms() noexcept { return option_value(Option::kPurgeDelayMs); }
// A kPath option's text, read from the environment at each call (the
// program may change it) and validated; null when unset or invalid.
const char* option_path(Option o) noexcept;

// Parses one value as option o would (exposed for tests): true and *out set
// if `text` is valid for o.
bool option_parse(Option o, const char* text, std::uint64_t* out) noexcept;

}  // namespace strata::detail
