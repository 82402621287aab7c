// strata report layer — the model every report is written from, and the
// three writers.  A Model is filled either from a live heap (collect, in
// report.cpp: the state, the memory map and a few facts about the process,
// through <strata/state.h> only) or from a JSON report read back
// (mm/tools/strata_report.cpp); the writers do not know which.  One writer per
// format: text.cpp, json.cpp, svg.cpp.
// Layer: report (above the core's public API; no core internals).
#pragma once
#include <strata/state.h>

#include <cstddef>
#include <cstdint>

#include "scratch.hpp"
#include "sink.hpp"

namespace strata::report {

inline constexpr int kSchemaVersion = 1;

struct Run {
  std::uintptr_t start, end;
  strata_map_use use;
  std::size_t name;  // offset in Model::names
};

// Whose report it is: the heap, the program, this copy of strata's file.
// Shared by the heap report and the leak report (leakreg/).
struct Identity {
  char heap[64] = {};      // "process heap", "pool 0x7f..."
  char program[256] = {};  // the executable's path, or what the report said
  char module[256] = {};   // the file that carries this copy of strata (the program, libstrata.so, a plugin)
  std::int64_t pid = 0;
  std::int64_t time = 0;   // seconds since the epoch
  char generator[64] = {};
};
// Fills id for the heap `pool` (NULL: the process heap) of this process, now.
void identify(Identity& id, strata_pool_t* pool) noexcept;

struct Model : Identity {
  strata_heap_state_t state{};
  detail::Scratch<Run> runs;    // the memory map, in address order
  detail::ScratchStrings names;
  bool has_map = false;
  bool map_complete = false;
  const char* run_name(const Run& r) const noexcept { return names.at(r.name); }
};

// Report files: `path` with %p replaced by the process id into out (false if
// too long or empty); whether a name ends in a suffix; a report file opened
// for writing (created or truncated, mode 0644, never through a symbolic
// link), -1 if it cannot be.
bool expand_path(const char* path, char* out, std::size_t cap) noexcept;
// src (NULL: empty) into dst, cut to cap - 1 bytes, NUL-terminated.
void copy_string(char* dst, std::size_t cap, const char* src) noexcept;
bool ends_with(const char* s, const char* suffix) noexcept;
int open_report_file(const char* path) noexcept;

// Fills m from the heap `pool` (NULL: the process heap): false if the state
// could not be read at all.  The map is left out when `with_map` is false.
bool collect(Model& m, strata_pool_t* pool, unsigned wait_ms, bool with_map) noexcept;
// The memory map alone into m.runs / m.names; false when incomplete.
bool collect_map(Model& m, strata_pool_t* pool, unsigned wait_ms) noexcept;

// Registers the exit report (STRATA_SHOW_STATS, STRATA_REPORT) with the
// core's finalisation (process_on_finalize); called once at load (api.cpp).
void register_exit_report() noexcept;

void write_text(Sink& out, const Model& m) noexcept;
void write_json(Sink& out, const Model& m) noexcept;
void write_svg(Sink& out, const Model& m) noexcept;

const char* use_name(strata_map_use use) noexcept;  // "small", ... (strata_map_use_name)
// The colour the picture gives a use ("#rrggbb").
const char* use_colour(strata_map_use use) noexcept;

// Totals of the map by use: chunks (64 KiB) of each.
struct MapTotals {
  std::uint64_t chunks[8] = {};
  std::size_t runs = 0;
};
MapTotals map_totals(const Model& m) noexcept;

}  // namespace strata::report
