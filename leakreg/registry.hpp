// leakreg — the expected-leak registry (FastMM's RegisterExpectedMemoryLeak):
// blocks expected to be live at shutdown, by address, by size and count, by
// C++ class and count.  No fixed capacity (FastMM's list is 64 KiB, about
// 1,364 entries on 64-bit): hash tables mapped from the OS, behind one lock.
// The report (report.cpp) takes a Budget — a copy of the counts — and spends
// it on the live blocks it walks.
// Layer: leakreg (table.hpp, the core's Lock).
#pragma once
#include <strata/leaks.h>
#include <strata/state.h>

#include <cstddef>
#include <cstdint>

#include "lock.hpp"
#include "scratch.hpp"
#include "table.hpp"

namespace strata::leakreg {

struct AddrEntry {
  std::uint64_t key;  // the address
};
struct SizeEntry {
  std::uint64_t key;  // the registered size + 1 (0 is a valid size)
  std::uint64_t count;
};
struct ClassEntry {
  std::uint64_t key;  // a hash of the name (probed on: never 0)
  std::uint64_t count;
  const char* name;   // in the registry's arena
};

// The counts by size and by class of one report, spent as blocks match.
class Budget {
 public:
  Budget() noexcept = default;
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;
  ~Budget() { classes_.clear(); }
  // Whether the live block b (its class name `cls`, or null) is expected by
  // size or by class; spends one of that count if so.
  bool spend(const strata_block_info_t& b, const char* cls) noexcept;

 private:
  friend struct Registry;
  std::uint64_t small_[64] = {};       // by small size class
  detail::Scratch<SizeEntry> big_;     // medium and large sizes (key = size + 1), sorted
  Table<ClassEntry> classes_;          // names point into the registry's arena, which outlives a report
};
struct StartupEntry {
  std::uint64_t key;   // the address
  std::uint64_t size;  // its usable size then
};

struct Registry {
  detail::Lock lock;
  Table<AddrEntry> addrs;
  // The blocks already live when this copy of strata started (the C++
  // runtime's emergency pool, the loader's records: not the program's),
  // matched by address and usable size.
  Table<StartupEntry> startup;
  Table<SizeEntry> sizes;
  Table<ClassEntry> classes;
  Arena names;

  // What the registry knows of the live block b, under one lock: registered
  // by address, live since before this copy of strata started (a block of
  // the process heap, at the address and of the size noted then), or neither.
  enum class Known { kNo, kExpected, kStartup };
  Known known(const strata_block_info_t& b) noexcept;
  // Files the live blocks of the process heap as start-up blocks (once, at load).
  void note_startup() noexcept;
  // A copy of the counts for one report (false: out of memory).
  bool budget(Budget& out) noexcept;
};

Registry& registry() noexcept;

// Whether a registration of `size` bytes expects block b: b is what a
// request of that size can be given — the same small class; a medium or
// large block of at least `size` within strata's rounding of it.
bool size_expects(std::size_t size, const strata_block_info_t& b) noexcept;

// The hash a class name is filed under (never 0).
std::uint64_t name_key(const char* name) noexcept;

}  // namespace strata::leakreg
