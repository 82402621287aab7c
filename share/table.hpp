// strata — what a provider publishes (share/): the table of its strata_*
// functions, and the record under the shared name that points at it.
// Layer: above the public API (the table holds the API's addresses).
#pragma once
#include <strata/leaks.h>
#include <strata/share.h>
#include <strata/state.h>
#include <strata/strata.h>

#include <cstddef>
#include <cstdint>

namespace strata::share {

// Bumped whenever the table, the record or any struct a table function takes
// changes.  A module of another version keeps its own heap.
inline constexpr std::uint32_t kAbi = 1;
inline constexpr std::uint64_t kRecordMagic = 0x4d4d415441525453ull;  // "STRATAMM"
inline constexpr std::uint64_t kTableMagic = 0x4c42545341525453ull;   // "STRASTBL"

// The sizes of the structs the table's functions exchange: a second check
// that provider and user agree on them, beside kAbi.
inline constexpr std::uint64_t kLayout =
    (std::uint64_t{sizeof(strata_heap_summary_t)} << 48) ^ (std::uint64_t{sizeof(strata_heap_state_t)} << 32) ^
    (std::uint64_t{sizeof(strata_usage_summary_t)} << 16) ^ std::uint64_t{sizeof(strata_block_info_t)} ^
    (std::uint64_t{sizeof(strata_region_t)} << 8) ^ (std::uint64_t{sizeof(strata_map_run_t)} << 24);

// The provider's functions, in api.def's order.  Constant, so that it lies
// in read-only memory of the provider's module (after relocation): a user
// follows it only if it does (record.cpp, table_valid).
struct Table {
  std::uint64_t magic;
  std::uint32_t abi;
  std::uint32_t size;        // sizeof(Table)
  std::uint64_t layout;      // kLayout
  const Table* self;         // its own address
  // Whether p is a block of the provider's copy of strata (its malloc family
  // hands any other pointer to the process's functions).
  bool (*owns)(const void* p) noexcept;
  // The provider's free for any block of the process (null if it has none):
  // its module's free (a block it does not know goes to the process's free)
  // or, where its copy is the process's malloc, strata_free.  A user's free
  // is then one call, without asking `owns` first.
  void (*free_any)(void* p) noexcept;
// fn_<name>: pasted, so that share/rename.h never renames a field.
#define STRATA_SHARE_FN(name, ret, params, args) ret(*fn_##name) params noexcept;
#include "api.def"
#undef STRATA_SHARE_FN
};

// The record under the name: fixed size, written once, never changed.
struct Record {
  std::uint64_t magic;       // kRecordMagic
  std::uint32_t abi;         // kAbi
  std::uint32_t size;        // sizeof(Record)
  std::int64_t pid;          // the publishing process
  std::uint64_t uid;         // its effective user
  std::uint64_t start_time;  // its start time (/proc/self/stat, clock ticks since boot)
  std::uint64_t exec_id;     // a digest of this exec's AT_RANDOM bytes: changes at every exec
  std::uint64_t table;       // the provider's Table
  std::uint64_t check;       // digest of the fields above
  char module[256];          // the provider's file, for messages
};

}  // namespace strata::share
