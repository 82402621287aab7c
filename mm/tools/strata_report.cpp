// strata-report — reads a JSON heap report (strata_write_report,
// STRATA_REPORT=path.json; schema in docs/report.schema.json) and writes it
// again as text or as the SVG picture, or compares two reports.
//
//   strata-report REPORT.json                  the text report (stdout)
//   strata-report REPORT.json --svg OUT.svg    the picture ('-': stdout)
//   strata-report REPORT.json --json           the JSON again, normalised
//   strata-report diff OLD.json NEW.json       what grew, by size class and tier
//
// The report is untrusted input (a file anyone may have written): it is
// checked whole against the schema's rules (types, ranges, the map's runs in
// address order inside the 47-bit space, lengths) before anything is
// written; a report that breaks one is refused with the key that is wrong.
// The output comes from the library's own writers (mm/report/), so the text
// and the picture are byte for byte what the program itself would have
// written.  Exit status: 0 done, 1 a file could not be read or written,
// 2 bad usage or a report that is not valid.
// Layer: tool (the report layer's writers and nlohmann-json; no allocator core).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "report.hpp"

using nlohmann::json;
namespace rp = strata::report;

namespace {

constexpr std::uintmax_t kMaxReportBytes = std::uintmax_t{1} << 30;  // 1 GiB: a map of 2^31 runs cannot be real
constexpr std::uint64_t kAddressSpace = std::uint64_t{1} << 47;

struct Invalid : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- reading and checking ---------------------------------------------------

const json& member(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) throw Invalid(where + ": missing \"" + key + "\"");
  return *it;
}

std::uint64_t count_of(const json& v, const std::string& where) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
    throw Invalid(where + ": not a count (an integer >= 0)");
  return v.get<std::uint64_t>();
}
// A count the report must carry.
std::uint64_t need(const json& obj, const char* key, const std::string& where) {
  return count_of(member(obj, key, where), where + "." + key);
}
// A count the report may leave out (schema: not required); 0 if absent.
std::uint64_t maybe(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  return it == obj.end() ? 0 : count_of(*it, where + "." + key);
}
std::size_t as_size(std::uint64_t v, const std::string& where) {
  if (v > std::numeric_limits<std::size_t>::max()) throw Invalid(where + ": out of range");
  return static_cast<std::size_t>(v);
}
// The same as a size_t field of the model.
std::size_t need_size(const json& obj, const char* key, const std::string& where) {
  return as_size(need(obj, key, where), where + "." + key);
}
std::size_t maybe_size(const json& obj, const char* key, const std::string& where) {
  return as_size(maybe(obj, key, where), where + "." + key);
}
// A member that must be an object.
const json& object_at(const json& obj, const char* key, const std::string& where) {
  const json& v = member(obj, key, where);
  if (!v.is_object()) throw Invalid(where + "." + key + ": not an object");
  return v;
}
bool flag(const json& obj, const char* key, bool otherwise, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return otherwise;
  if (!it->is_boolean()) throw Invalid(where + "." + key + ": not a boolean");
  return it->get<bool>();
}
// A string into a fixed buffer of the model; refused when it does not fit or holds a NUL.
void text_into(char* dst, std::size_t cap, const json& obj, const char* key, bool required, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    if (required) throw Invalid(where + ": missing \"" + key + "\"");
    dst[0] = 0;
    return;
  }
  if (!it->is_string()) throw Invalid(where + "." + key + ": not a string");
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() >= cap) throw Invalid(where + "." + key + ": longer than " + std::to_string(cap - 1) + " bytes");
  if (s.find('\0') != std::string::npos) throw Invalid(where + "." + key + ": holds a NUL");
  std::memcpy(dst, s.data(), s.size());
  dst[s.size()] = 0;
}

std::uint64_t address_of(const json& v, const std::string& where) {
  // "0x" then 12 to 16 lower-case hex digits (docs/report.schema.json).
  if (!v.is_string()) throw Invalid(where + ": not an address string");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() < 14 || s.size() > 18 || s[0] != '0' || s[1] != 'x') throw Invalid(where + ": not \"0x\" and 12-16 hex digits");
  std::uint64_t a = 0;
  for (std::size_t i = 2; i < s.size(); ++i) {
    char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
    else throw Invalid(where + ": not \"0x\" and 12-16 hex digits");
    a = a << 4 | d;
  }
  return a;
}

strata_map_use use_of(const json& v, const std::string& where) {
  if (v.is_string())
    for (unsigned u = 0; u < 8; ++u)
      if (v.get_ref<const std::string&>() == rp::use_name(static_cast<strata_map_use>(u)))
        return static_cast<strata_map_use>(u);
  throw Invalid(where + ": not one of the map's uses");
}

json parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  auto size = in.tellg();
  if (size < 0) throw IoError(path + ": cannot tell its size");
  if (static_cast<std::uintmax_t>(size) > kMaxReportBytes) throw Invalid(path + ": larger than 1 GiB, not a report");
  in.seekg(0);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (!in.read(bytes.data(), size)) throw IoError(path + ": read failed");
  try {
    return json::parse(bytes);
  } catch (const json::parse_error& e) {
    throw Invalid(path + ": not JSON (" + e.what() + ")");
  }
}

// Fills m from the report j (read from `path`), checking every rule first.
void load(rp::Model& m, const json& j, const std::string& path) {
  const std::string w = path;
  if (!j.is_object()) throw Invalid(w + ": not a JSON object");
  const json& schema = member(j, "schema", w);
  if (!schema.is_number_integer()) throw Invalid(w + ".schema: not an integer");
  if (schema.get<std::int64_t>() != rp::kSchemaVersion)
    throw Invalid(w + ": schema " + schema.dump() + ", this strata-report reads schema " +
                  std::to_string(rp::kSchemaVersion));
  strata_heap_state_t& s = m.state;
  s.version = 1;  // the layout of strata_heap_state_t this tool was built with
  text_into(m.generator, sizeof m.generator, j, "generator", true, w);
  text_into(m.heap, sizeof m.heap, j, "heap", true, w);
  text_into(m.module, sizeof m.module, j, "module", false, w);
  text_into(m.program, sizeof m.program, j, "program", false, w);
  const json& pid = member(j, "pid", w);
  if (!pid.is_number_integer() || pid.get<std::int64_t>() < 1) throw Invalid(w + ".pid: not a process id");
  m.pid = pid.get<std::int64_t>();
  if (auto it = j.find("time"); it != j.end()) {
    if (!it->is_number_integer()) throw Invalid(w + ".time: not an integer");
    m.time = it->get<std::int64_t>();
  }
  const json& complete = member(j, "complete", w);
  if (!complete.is_boolean()) throw Invalid(w + ".complete: not a boolean");
  s.complete = flag(j, "state_complete", complete.get<bool>(), w);
  s.skipped_locks = maybe_size(j, "skipped_locks", w);
  s.thread_caches = maybe_size(j, "thread_caches", w);

  const json& classes = member(j, "classes", w);
  if (!classes.is_array()) throw Invalid(w + ".classes: not an array");
  if (classes.size() > STRATA_STATE_MAX_CLASSES)
    throw Invalid(w + ".classes: more than " + std::to_string(STRATA_STATE_MAX_CLASSES) + " classes");
  s.class_count = static_cast<unsigned>(classes.size());
  for (std::size_t c = 0; c < classes.size(); ++c) {
    const json& k = classes[c];
    std::string cw = w + ".classes[" + std::to_string(c) + "]";
    if (!k.is_object()) throw Invalid(cw + ": not an object");
    strata_class_state_t& out = s.classes[c];
    out.block_size = need_size(k, "block_size", cw);
    if (out.block_size < 16) throw Invalid(cw + ".block_size: below 16");
    out.blocks_in_use = need_size(k, "blocks_in_use", cw);
    out.bytes_in_use = need_size(k, "bytes_in_use", cw);
    out.bytes_reserved = need_size(k, "bytes_reserved", cw);
    out.blocks_free_in_spans = maybe_size(k, "blocks_free_in_spans", cw);
    out.blocks_in_thread_caches = maybe_size(k, "blocks_in_thread_caches", cw);
    out.spans = maybe_size(k, "spans", cw);
  }

  const json& tiers = object_at(j, "tiers", w);
  const std::string tw = w + ".tiers";
  {
    const json& t = object_at(tiers, "small", tw);
    const std::string sw = tw + ".small";
    s.small.blocks_in_use = need_size(t, "blocks_in_use", sw);
    s.small.bytes_in_use = need_size(t, "bytes_in_use", sw);
    s.small.bytes_reserved = need_size(t, "bytes_reserved", sw);
    s.small.free_bytes = maybe_size(t, "free_bytes", sw);
    s.small.empty_spans = maybe_size(t, "empty_spans", sw);
  }
  {
    const json& t = object_at(tiers, "medium", tw);
    const std::string mw = tw + ".medium";
    s.medium.blocks_in_use = need_size(t, "blocks_in_use", mw);
    s.medium.bytes_in_use = need_size(t, "bytes_in_use", mw);
    s.medium.bytes_reserved = need_size(t, "bytes_reserved", mw);
    s.medium.pools = maybe_size(t, "pools", mw);
    s.medium.free_bytes = maybe_size(t, "free_bytes", mw);
    s.medium.largest_free_block = maybe_size(t, "largest_free_block", mw);
    s.medium.free_runs = maybe_size(t, "free_runs", mw);
    std::uint64_t bins = maybe(t, "bins_in_use", mw);
    if (bins > 0xffffffffu) throw Invalid(mw + ".bins_in_use: out of range");
    s.medium.bins_in_use = static_cast<unsigned>(bins);
    s.medium.blocks_in_thread_caches = maybe_size(t, "blocks_in_thread_caches", mw);
    s.medium.bytes_in_thread_caches = maybe_size(t, "bytes_in_thread_caches", mw);
  }
  {
    const json& t = object_at(tiers, "large", tw);
    const std::string lw = tw + ".large";
    s.large.blocks_in_use = need_size(t, "blocks_in_use", lw);
    s.large.bytes_in_use = need_size(t, "bytes_in_use", lw);
    std::uint64_t reserved = need(t, "bytes_reserved", lw);
    s.large.bytes_requested = maybe_size(t, "bytes_requested", lw);
    s.large.kept_mappings = maybe_size(t, "kept_mappings", lw);
    s.large.kept_bytes = maybe_size(t, "kept_bytes", lw);
    s.large.parked_mappings = maybe_size(t, "parked_mappings", lw);
    s.large.parked_bytes = maybe_size(t, "parked_bytes", lw);
    // bytes_reserved = mapped + kept + parked (json.cpp); a report without
    // bytes_mapped gives the rest of its reservation as mapped.
    if (t.contains("bytes_mapped")) {
      s.large.bytes_mapped = need_size(t, "bytes_mapped", lw);
    } else {
      std::uint64_t rest = reserved - std::min<std::uint64_t>(reserved, s.large.kept_bytes + s.large.parked_bytes);
      s.large.bytes_mapped = as_size(rest, lw);
    }
  }

  const json& summary = object_at(j, "summary", w);
  const std::string sw = w + ".summary";
  strata_usage_summary_t& u = s.summary;
  u.allocated_bytes = need_size(summary, "allocated_bytes", sw);
  u.free_bytes = need_size(summary, "free_bytes", sw);
  u.overhead_bytes = need_size(summary, "overhead_bytes", sw);
  u.reserved_bytes = need_size(summary, "reserved_bytes", sw);
  u.os_reserved_bytes = maybe_size(summary, "os_reserved_bytes", sw);
  const json& eff = member(summary, "efficiency_percent", sw);
  if (!eff.is_number() || eff.get<double>() < 0 || eff.get<double>() > 100)
    throw Invalid(sw + ".efficiency_percent: not a number from 0 to 100");
  // Recomputed as the library computes it (inspect.cpp), so the text shows
  // the digit the program would have shown; the report's rounded figure must agree.
  u.efficiency_percent = u.reserved_bytes ? 100.0 * static_cast<double>(u.allocated_bytes) /
                                                static_cast<double>(u.reserved_bytes)
                                          : 0.0;
  if (u.efficiency_percent - eff.get<double>() > 0.01 || eff.get<double>() - u.efficiency_percent > 0.01)
    throw Invalid(sw + ".efficiency_percent: not allocated_bytes / reserved_bytes");
  s.bookkeeping_bytes = maybe_size(summary, "bookkeeping_bytes", sw);
  s.chunk_map_bytes = maybe_size(summary, "chunk_map_bytes", sw);
  s.peak_os_reserved_bytes = maybe_size(summary, "peak_os_reserved_bytes", sw);
  s.os_map_calls = maybe_size(summary, "os_map_calls", sw);

  const json& map = member(j, "map", w);
  if (!map.is_array()) throw Invalid(w + ".map: not an array");
  m.has_map = !map.empty();
  // A report without the two flags says only whether it is complete as a
  // whole; its incompleteness is then put on the state.
  m.map_complete = flag(j, "map_complete", true, w);
  if (complete.get<bool>() != (s.complete && (!m.has_map || m.map_complete)))
    throw Invalid(w + ".complete: contradicts state_complete and map_complete");
  std::uint64_t prev_end = 0;
  for (std::size_t i = 0; i < map.size(); ++i) {
    const json& r = map[i];
    std::string rw = w + ".map[" + std::to_string(i) + "]";
    if (!r.is_object()) throw Invalid(rw + ": not an object");
    rp::Run run{};
    run.start = address_of(member(r, "start", rw), rw + ".start");
    run.end = address_of(member(r, "end", rw), rw + ".end");
    if (run.start >= run.end || run.end > kAddressSpace || (run.start | run.end) & 0xffff)
      throw Invalid(rw + ": not a run of 64 KiB chunks inside the 47-bit address space");
    if (run.start < prev_end) throw Invalid(rw + ": overlaps the run before it or is out of address order");
    prev_end = run.end;
    run.use = use_of(member(r, "use", rw), rw + ".use");
    std::string name;
    if (auto it = r.find("name"); it != r.end()) {
      if (!it->is_string()) throw Invalid(rw + ".name: not a string");
      name = it->get<std::string>();
      if (name.size() > 4096 || name.find('\0') != std::string::npos) throw Invalid(rw + ".name: not a path");
    }
    run.name = m.names.add(name.data(), name.size());
    if (m.names.failed() || !m.runs.push(run)) throw IoError("out of memory reading " + path);
  }
}

// ---- writing --------------------------------------------------------------

int open_out(const std::string& path) {
  if (path == "-") return 1;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(path + ": " + std::strerror(errno));
  return fd;
}

template <class Write>
void write_to(const std::string& path, Write write) {
  int fd = open_out(path);
  {
    rp::Sink out(fd);
    write(out);
  }
  if (fd != 1 && ::close(fd) != 0) throw IoError(path + ": " + std::strerror(errno));
}

// ---- diff -------------------------------------------------------------------

struct Diff {
  std::FILE* o = stdout;
  static std::string grouped(std::int64_t v, bool sign) {
    std::uint64_t mag = v < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    std::string digits = std::to_string(mag);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    if (v < 0) return "-" + out;
    return sign ? (v > 0 ? "+" : "") + out : out;
  }
  void row(const char* label, std::uint64_t a, std::uint64_t b) const {
    std::int64_t d = static_cast<std::int64_t>(b - a);
    std::fprintf(o, "  %-22s %18s %18s %18s\n", label, grouped(static_cast<std::int64_t>(a), false).c_str(),
                 grouped(static_cast<std::int64_t>(b), false).c_str(), d ? grouped(d, true).c_str() : "=");
  }
};

int diff(const rp::Model& a, const rp::Model& b, const std::string& pa, const std::string& pb) {
  Diff d;
  const strata_heap_state_t& x = a.state;
  const strata_heap_state_t& y = b.state;
  std::fprintf(d.o, "strata heap diff: %s -> %s\n", pa.c_str(), pb.c_str());
  std::fprintf(d.o, "  old: %s (pid %lld, %s)%s\n  new: %s (pid %lld, %s)%s\n\n", a.heap, static_cast<long long>(a.pid),
               a.program, x.complete && (!a.has_map || a.map_complete) ? "" : ", INCOMPLETE", b.heap,
               static_cast<long long>(b.pid), b.program, y.complete && (!b.has_map || b.map_complete) ? "" : ", INCOMPLETE");

  std::fprintf(d.o, "Small size classes that changed (blocks in use, bytes in use, bytes reserved)\n");
  std::fprintf(d.o, "   block %20s %20s %20s\n", "blocks", "bytes in use", "reserved");
  // Classes are matched by block size: two builds may number them differently.
  std::vector<std::size_t> sizes;
  for (unsigned c = 0; c < x.class_count; ++c) sizes.push_back(x.classes[c].block_size);
  for (unsigned c = 0; c < y.class_count; ++c) sizes.push_back(y.classes[c].block_size);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  auto find = [](const strata_heap_state_t& s, std::size_t size) {
    strata_class_state_t none{};
    for (unsigned c = 0; c < s.class_count; ++c)
      if (s.classes[c].block_size == size) return s.classes[c];
    return none;
  };
  unsigned changed = 0;
  std::int64_t grew = 0;
  for (std::size_t size : sizes) {
    strata_class_state_t p = find(x, size), q = find(y, size);
    if (p.blocks_in_use == q.blocks_in_use && p.bytes_in_use == q.bytes_in_use && p.bytes_reserved == q.bytes_reserved)
      continue;
    ++changed;
    grew += static_cast<std::int64_t>(q.bytes_in_use - p.bytes_in_use);
    auto cell = [](std::uint64_t o, std::uint64_t n) {
      std::int64_t delta = static_cast<std::int64_t>(n - o);
      return delta ? Diff::grouped(delta, true) : std::string("=");
    };
    std::fprintf(d.o, "%8zu %20s %20s %20s\n", size, cell(p.blocks_in_use, q.blocks_in_use).c_str(),
                 cell(p.bytes_in_use, q.bytes_in_use).c_str(), cell(p.bytes_reserved, q.bytes_reserved).c_str());
  }
  if (!changed) std::fprintf(d.o, "  (none)\n");
  else std::fprintf(d.o, "  %u class(es) changed, %s bytes in use\n", changed, Diff::grouped(grew, true).c_str());

  std::fprintf(d.o, "\nTiers %37s %18s %18s\n", "old", "new", "change");
  d.row("small blocks", x.small.blocks_in_use, y.small.blocks_in_use);
  d.row("small bytes in use", x.small.bytes_in_use, y.small.bytes_in_use);
  d.row("small reserved", x.small.bytes_reserved, y.small.bytes_reserved);
  d.row("medium blocks", x.medium.blocks_in_use, y.medium.blocks_in_use);
  d.row("medium bytes in use", x.medium.bytes_in_use, y.medium.bytes_in_use);
  d.row("medium reserved", x.medium.bytes_reserved, y.medium.bytes_reserved);
  d.row("large blocks", x.large.blocks_in_use, y.large.blocks_in_use);
  d.row("large bytes in use", x.large.bytes_in_use, y.large.bytes_in_use);
  d.row("large mapped", x.large.bytes_mapped, y.large.bytes_mapped);

  std::fprintf(d.o, "\nUsage summary\n");
  d.row("allocated", x.summary.allocated_bytes, y.summary.allocated_bytes);
  d.row("free", x.summary.free_bytes, y.summary.free_bytes);
  d.row("overhead", x.summary.overhead_bytes, y.summary.overhead_bytes);
  d.row("reserved", x.summary.reserved_bytes, y.summary.reserved_bytes);
  d.row("os count", x.summary.os_reserved_bytes, y.summary.os_reserved_bytes);
  std::fprintf(d.o, "  %-22s %17.1f%% %17.1f%% %+17.1f%%\n", "efficiency", x.summary.efficiency_percent,
               y.summary.efficiency_percent, y.summary.efficiency_percent - x.summary.efficiency_percent);

  if (a.has_map || b.has_map) {
    rp::MapTotals ta = rp::map_totals(a), tb = rp::map_totals(b);
    std::fprintf(d.o, "\nMemory map (bytes in 64 KiB chunks)\n");
    for (unsigned use = 1; use < 8; ++use)
      d.row(rp::use_name(static_cast<strata_map_use>(use)), ta.chunks[use] << 16, tb.chunks[use] << 16);
  }
  return std::fflush(d.o) == 0 ? 0 : 1;
}

int usage() {
  std::fputs(
      "usage: strata-report REPORT.json                 print the text report\n"
      "       strata-report REPORT.json --svg OUT.svg   draw the picture ('-' for stdout)\n"
      "       strata-report REPORT.json --json          write the report again, normalised\n"
      "       strata-report diff OLD.json NEW.json      what grew, by size class and tier\n"
      "REPORT.json: strata_write_report(..., STRATA_REPORT_JSON) or STRATA_REPORT=path.json\n"
      "(docs/introspection.md).  Exit status 0 done, 1 I/O error, 2 bad usage or invalid report.\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 1 && (args[0] == "-h" || args[0] == "--help")) {
      usage();
      return 0;
    }
    if (args.size() == 3 && args[0] == "diff") {
      rp::Model a, b;
      load(a, parse_file(args[1]), args[1]);
      load(b, parse_file(args[2]), args[2]);
      return diff(a, b, args[1], args[2]);
    }
    if (args.empty() || args[0].empty() || args[0][0] == '-') return usage();
    rp::Model m;
    if (args.size() == 1) {
      load(m, parse_file(args[0]), args[0]);
      write_to("-", [&](rp::Sink& o) { rp::write_text(o, m); });
      return 0;
    }
    if (args.size() == 3 && args[1] == "--svg") {
      load(m, parse_file(args[0]), args[0]);
      write_to(args[2], [&](rp::Sink& o) { rp::write_svg(o, m); });
      return 0;
    }
    if (args.size() == 2 && args[1] == "--json") {
      load(m, parse_file(args[0]), args[0]);
      write_to("-", [&](rp::Sink& o) { rp::write_json(o, m); });
      return 0;
    }
    return usage();
  } catch (const Invalid& e) {
    std::fprintf(stderr, "strata-report: invalid report: %s\n", e.what());
    return 2;
  } catch (const IoError& e) {
    std::fprintf(stderr, "strata-report: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata-report: %s\n", e.what());
    return 1;
  }
}
