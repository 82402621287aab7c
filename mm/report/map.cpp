// strata report layer — the memory map: the whole 47-bit user address space
// in 64 KiB chunks, as runs.  strata's own regions (strata_heap_regions, all
// heaps of this copy) are overlaid on what /proc/self/maps says about the
// rest; the gaps between are unmapped.  /proc/self/maps is read with
// open/read into a stack buffer and its names copied into scratch memory:
// nothing here allocates from a heap.
// Layer: report.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "report.hpp"

namespace strata::report {
namespace {

constexpr unsigned kChunkShift = 16;
constexpr std::uint64_t kChunk = std::uint64_t{1} << kChunkShift;
constexpr std::uint64_t kSpaceEnd = std::uint64_t{1} << 47;

struct Mapping {  // a line of /proc/self/maps, quantised to chunks
  std::uint64_t start, end;  // chunk-aligned
  std::size_t name;
};

bool parse_hex(const char*& p, const char* end, std::uint64_t* out) noexcept {
  std::uint64_t v = 0;
  const char* b = p;
  for (; p < end; ++p) {
    char c = *p;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) break;
    if (p - b >= 16) return false;
    v = v << 4 | static_cast<unsigned>(d);
  }
  *out = v;
  return p > b;
}

// One line: "start-end perms offset dev inode   name".  Malformed lines are
// skipped (the file is the kernel's, but a report never believes blindly).
void parse_line(const char* p, const char* end, detail::Scratch<Mapping>& out, detail::ScratchStrings& names) noexcept {
  std::uint64_t s, e;
  if (!parse_hex(p, end, &s) || p >= end || *p != '-') return;
  ++p;
  if (!parse_hex(p, end, &e) || e <= s) return;
  // Skip perms, offset, dev, inode: four fields.
  for (int f = 0; f < 4; ++f) {
    while (p < end && *p == ' ') ++p;
    while (p < end && *p != ' ') ++p;
  }
  while (p < end && *p == ' ') ++p;
  std::size_t n = static_cast<std::size_t>(end - p);
  if (n > 4096) n = 4096;
  Mapping m{s & ~(kChunk - 1), (e + kChunk - 1) & ~(kChunk - 1), names.add(p, n)};
  if (m.name == ~std::size_t{0}) return;
  if (m.end > kSpaceEnd) m.end = kSpaceEnd;  // [vsyscall] and the like lie above the user space
  if (m.start >= m.end) return;
  out.push(m);
}

bool read_proc_maps(detail::Scratch<Mapping>& out, detail::ScratchStrings& names) noexcept {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[16384];
  std::size_t have = 0;
  bool ok = true;
  for (;;) {
    ssize_t n = ::read(fd, buf + have, sizeof buf - have);
    if (n < 0) {
      ok = false;
      break;
    }
    have += static_cast<std::size_t>(n);
    std::size_t line = 0;
    for (std::size_t i = 0; i < have; ++i)
      if (buf[i] == '\n') {
        parse_line(buf + line, buf + i, out, names);
        line = i + 1;
      }
    if (n == 0) {
      if (line < have) parse_line(buf + line, buf + have, out, names);
      break;
    }
    if (line == 0 && have == sizeof buf) {  // a line longer than the buffer: drop it
      have = 0;
      continue;
    }
    std::memmove(buf, buf + line, have - line);
    have -= line;
  }
  ::close(fd);
  return ok && !out.failed() && !names.failed();
}

struct RegionCtx {
  detail::Scratch<strata_region_t>* out;
};

}  // namespace

bool collect_map(Model& m, strata_pool_t* pool, unsigned wait_ms) noexcept {
  m.runs.truncate(0);
  detail::Scratch<strata_region_t> regions;
  RegionCtx rc{&regions};
  int r = strata_heap_regions(
      nullptr, STRATA_REGIONS_ALL_HEAPS,
      [](const strata_region_t* reg, void* ctx) -> int {
        static_cast<RegionCtx*>(ctx)->out->push(*reg);
        return 1;
      },
      &rc, wait_ms);
  bool complete = r == 1 && !regions.failed();
  detail::Scratch<Mapping> maps;
  complete &= read_proc_maps(maps, m.names);
  // Clip the mappings so that each chunk belongs to the first one touching it.
  std::size_t n = 0;
  std::uint64_t prev_end = 0;
  for (std::size_t i = 0; i < maps.size(); ++i) {
    Mapping x = maps[i];
    if (x.start < prev_end) x.start = prev_end;
    if (x.start >= x.end) continue;
    prev_end = x.end;
    maps[n++] = x;
  }
  maps.truncate(n);
  // strata's names for its own runs, and the empty name.
  std::size_t strata_name[8];
  for (unsigned u = 0; u < 8; ++u) {
    char tmp[32] = "strata:";
    std::strcat(tmp, use_name(static_cast<strata_map_use>(u)));
    strata_name[u] = m.names.add(tmp, std::strlen(tmp));
  }
  const std::size_t no_name = m.names.add("", 0);
  auto emit = [&](std::uint64_t s, std::uint64_t e, strata_map_use use, std::size_t name) {
    if (s >= e) return;
    if (m.runs.size()) {
      Run& last = m.runs[m.runs.size() - 1];
      if (last.end == s && last.use == use &&
          (last.name == name || std::strcmp(m.names.at(last.name), m.names.at(name)) == 0)) {
        last.end = e;
        return;
      }
    }
    m.runs.push(Run{s, e, use, name});
  };
  std::size_t i = 0, j = 0;
  for (std::uint64_t pos = 0; pos < kSpaceEnd;) {
    while (i < regions.size() && regions[i].end <= pos) ++i;
    while (j < maps.size() && maps[j].end <= pos) ++j;
    if (i < regions.size() && regions[i].start <= pos) {
      const strata_region_t& g = regions[i];
      // Another heap's chunks, and the address map's leaves when a pool is asked about.
      strata_map_use use = g.pool == pool ? g.use : STRATA_MAP_OTHER_HEAP;
      emit(pos, g.end, use, strata_name[use]);
      pos = g.end;
      continue;
    }
    const std::uint64_t next_region = i < regions.size() ? regions[i].start : kSpaceEnd;
    if (j < maps.size() && maps[j].start <= pos) {
      const std::uint64_t e = maps[j].end < next_region ? maps[j].end : next_region;
      emit(pos, e, STRATA_MAP_OTHER, maps[j].name);
      pos = e;
      continue;
    }
    const std::uint64_t next_map = j < maps.size() ? maps[j].start : kSpaceEnd;
    const std::uint64_t e = next_region < next_map ? next_region : next_map;
    emit(pos, e, STRATA_MAP_UNMAPPED, no_name);
    pos = e;
  }
  complete &= !m.runs.failed() && !m.names.failed();
  m.has_map = true;
  m.map_complete = complete;
  return complete;
}

}  // namespace strata::report

extern "C" STRATA_API int strata_memory_map(strata_pool_t* pool, strata_map_visitor_t visit, void* ctx,
                                            unsigned wait_ms) noexcept {
  if (!visit) return -1;
  strata::report::Model m;
  bool complete = strata::report::collect_map(m, pool, wait_ms);
  for (const strata::report::Run& r : m.runs) {
    strata_map_run_t run{r.start, r.end, r.use, m.run_name(r)};
    if (!visit(&run, ctx)) return 0;
  }
  return complete ? 1 : -1;
}
