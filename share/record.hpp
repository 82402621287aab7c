// strata — the shared name and its record, read as untrusted input
// (share/record.cpp).  Nothing here allocates.
// Layer: above the public API, below share.cpp.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "log.hpp"
#include "table.hpp"

namespace strata::share {

// This process as a record names it.  Taken afresh at each call: a forked
// child has another pid and start time, an exec another exec_id.
struct Self {
  std::int64_t pid;
  std::uint64_t uid;
  std::uint64_t start_time;  // 0 if /proc is not mounted
  std::uint64_t exec_id;
};
Self self() noexcept;

// "/dev/shm/strata-mm-<uid>-<pid>" (the name of this process's record).
void record_path(char (&out)[64], const Self& s) noexcept;
// The digest a record's `check` holds.
std::uint64_t record_check(const Record& r) noexcept;
// A record for this process pointing at `table`, with `module`'s name.
Record make_record(const Self& s, const Table* table, const char* module) noexcept;

// What a look-up of the name found.
enum class Found {
  kNone,          // no such name
  kValid,         // a record of this process whose table is strata's
  kStale,         // a record (ours) of a process that is gone: another pid, start time or exec
  kVersion,       // a record of this process of another share ABI
  kBad,           // ours (this user, 0600) but malformed, forged or pointing elsewhere
  kForeignOwner,  // owned by another user: never followed, never removed
  kLoose,         // ours but readable or writable by others: never followed
  kError,         // the name could not be read (/dev/shm missing, say)
};
struct Lookup {
  Found found = Found::kNone;
  const Table* table = nullptr;  // kValid only
  Record record{};               // kValid only: a copy of what was read
  dev_t dev = 0;                 // the file looked at (kNone, kError: none)
  ino_t ino = 0;
};
// Reads the record at `path` and says what it is, with the reason in `why`.
Lookup lookup(const char* path, const Self& s, detail::MessageBuilder& why) noexcept;

// Whether t is a strata share table of this ABI that lies in read-only memory
// of a module loaded in this process, each of its functions in executable
// memory of that module.  Reads nothing before the ranges are known mapped.
bool table_valid(const Table* t, detail::MessageBuilder& why) noexcept;

// The loaded module that holds `addr`: its file (the executable's path for
// the main program) and whether it is the main program.  False if none.
bool module_of(const void* addr, char (&path)[256], bool* main_program) noexcept;

}  // namespace strata::share
