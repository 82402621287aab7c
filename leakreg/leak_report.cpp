// leakreg — the leak report: the live blocks of a heap that are not
// expected, read through the block walk (strata_heap_walk), grouped as
// FastMM groups them (by size, then by what the block is), folded when
// identical (same size, class and call stack), written as text or JSON,
// at any time or at shutdown (STRATA_REPORT_LEAKS, STRATA_LEAK_REPORT).
// The snapshot is taken without allocating from any heap (scratch memory
// from the OS); symbolising the stacks afterwards may allocate through the
// program's malloc (libdw, the demangler), with tracking off.
// Layer: leakreg (the core's public API; options.hpp and process.hpp for the
// shutdown hook; the report layer's Sink and Identity).
#include <strata/leaks.h>
#include <strata/state.h>
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "../report/report.hpp"
#include "classify.hpp"
#include "leakreg.hpp"
#include "options.hpp"
#include "process.hpp"
#include "registry.hpp"
#include "stacks.hpp"

namespace strata::leakreg {

namespace {

using report::Sink;

constexpr unsigned kHead = 32;               // first bytes kept of each leak
constexpr std::size_t kMaxEntries = 1000;    // entries written in detail
constexpr unsigned kAddressesShown = 8;      // addresses listed per folded entry
constexpr std::size_t kNone = ~std::size_t{0};

struct Leak {
  std::uintptr_t addr;
  std::size_t size;
  strata_tier tier;
  std::size_t mangled, pretty;  // offsets in the classifier's names, or kNone
  std::uint64_t stack;
  unsigned head_len;
  unsigned char head[kHead];
};

struct Snapshot {
  report::Identity id;
  Classifier cls;
  Budget budget;
  detail::Scratch<Leak> leaks;
  std::size_t expected_blocks = 0, expected_bytes = 0, leaked_bytes = 0;
  // With stacks on: blocks without a stack (allocated before tracking began,
  // or by a thread with tracking off) and blocks the dynamic loader
  // allocated (thread TLS, loaded modules' records): counted, not listed.
  std::size_t untracked_blocks = 0, untracked_bytes = 0, loader_blocks = 0, loader_bytes = 0;
  std::size_t startup_blocks = 0, startup_bytes = 0;  // live before this copy of strata started
  bool complete = true;
  bool oom = false;
  const char* pretty(const Leak& l) const noexcept { return l.pretty == kNone ? "unknown" : cls.name(l.pretty); }
};

// Whether the first frame of the stack outside this copy of strata's file
// is the dynamic loader's (dladdr: no allocation).
bool by_loader(const Snapshot& s, std::uint64_t key) noexcept {
  std::uintptr_t pcs[kMaxFrames];
  unsigned n = stack_frames(key, pcs);
  for (unsigned i = 0; i < n; ++i) {
    Dl_info info;
    if (!dladdr(reinterpret_cast<void*>(pcs[i] - 1), &info) || !info.dli_fname) return false;
    const char* f = info.dli_fname;
    if (std::strcmp(f, s.id.module) == 0 || (!*f && std::strcmp(s.id.module, s.id.program) == 0)) continue;
    return std::strstr(f, "/ld-linux") != nullptr;
  }
  return false;
}

int visit(const strata_block_info_t* b, void* ctx) noexcept {
  auto* s = static_cast<Snapshot*>(ctx);
  if (!b->live) return 1;
  switch (registry().known(*b)) {
    case Registry::Known::kExpected:
      ++s->expected_blocks;
      s->expected_bytes += b->usable_size;
      return 1;
    case Registry::Known::kStartup:
      ++s->startup_blocks;
      s->startup_bytes += b->usable_size;
      return 1;
    case Registry::Known::kNo:
      break;
  }
  Leak l;
  l.addr = reinterpret_cast<std::uintptr_t>(b->address);
  l.size = b->usable_size;
  l.tier = b->tier;
  l.mangled = l.pretty = kNone;
  l.stack = 0;
  l.head_len = static_cast<unsigned>(b->usable_size < kHead ? b->usable_size : kHead);
  // Another thread may free (and unmap) the block meanwhile: read safely.
  if (!safe_read(l.head, l.addr, l.head_len)) l.head_len = 0;
  if (l.head_len >= sizeof(std::uintptr_t)) {
    std::uintptr_t vptr;
    std::memcpy(&vptr, l.head, sizeof vptr);
    std::size_t m, p;
    if (s->cls.class_of(vptr, &m, &p)) {
      l.mangled = m;
      l.pretty = p;
    }
  }
  if (s->budget.spend(*b, l.mangled == kNone ? nullptr : s->cls.name(l.mangled))) {
    ++s->expected_blocks;
    s->expected_bytes += b->usable_size;
    return 1;
  }
  l.stack = stacks_on() ? stack_of(b->address) : 0;
  if (l.stack == kInternalStack) return 1;  // strata's own (the unwinder's, the symboliser's)
  if (stacks_on() && !l.stack) {
    ++s->untracked_blocks;
    s->untracked_bytes += l.size;
    return 1;
  }
  if (l.stack && by_loader(*s, l.stack)) {
    ++s->loader_blocks;
    s->loader_bytes += l.size;
    return 1;
  }
  if (!s->leaks.push(l)) s->oom = true;
  s->leaked_bytes += l.size;
  return 1;
}

bool take(Snapshot& s, strata_pool_t* pool) noexcept {
  report::identify(s.id, pool);
  s.cls.load_modules();
  if (!registry().budget(s.budget)) s.oom = true;
  int r = strata_heap_walk(pool, 0, visit, &s, STRATA_WAIT_FOREVER);
  s.complete = r == 1 && !s.oom;
  if (r < 0 && s.leaks.size() == 0 && s.expected_blocks == 0) return false;
  // Sort: by size, then class, then stack, then address.
  std::sort(s.leaks.begin(), s.leaks.end(), [&s](const Leak& a, const Leak& b) {
    if (a.size != b.size) return a.size < b.size;
    if (int c = std::strcmp(s.pretty(a), s.pretty(b))) return c < 0;
    if (a.stack != b.stack) return a.stack < b.stack;
    return a.addr < b.addr;
  });
  return true;
}

bool same_entry(const Snapshot& s, const Leak& a, const Leak& b) noexcept {
  return a.size == b.size && a.stack == b.stack && std::strcmp(s.pretty(a), s.pretty(b)) == 0;
}

// ---- the stack of an entry ------------------------------------------------------

struct Stack {
  Frame frames[kMaxFrames];
  unsigned n = 0;
};

void symbolise(Symbolizer& sym, std::uint64_t key, Stack& out) noexcept {
  out.n = 0;
  std::uintptr_t pcs[kMaxFrames];
  unsigned n = key ? stack_frames(key, pcs) : 0;
  bool top = true;
  for (unsigned i = 0; i < n; ++i) {
    Frame& f = out.frames[out.n];
    sym.resolve(pcs[i], f);
    if (top && Symbolizer::is_strata_frame(f)) continue;  // the allocator's own frames
    top = false;
    ++out.n;
    if (std::strcmp(f.function, "main") == 0) break;  // what runs main is not the program's
  }
}

// The summary's walk: for each size, each class of that size with its
// count (the leaks are sorted by size, then class).
template <class F>  // f(size, name, count, first of its size, first of all)
void for_each_group(const Snapshot& s, F f) noexcept {
  const std::size_t n = s.leaks.size();
  for (std::size_t i = 0; i < n;) {
    const std::size_t size = s.leaks[i].size;
    bool first = true;
    const bool first_size = i == 0;
    while (i < n && s.leaks[i].size == size) {
      const char* name = s.pretty(s.leaks[i]);
      std::size_t count = 0;
      for (; i < n && s.leaks[i].size == size && std::strcmp(s.pretty(s.leaks[i]), name) == 0; ++i) ++count;
      f(size, name, count, first, first_size);
      first = false;
    }
  }
}
// The details' walk: each run [i, j) of identical leaks, up to kMaxEntries;
// returns how many runs there were.
template <class F>  // f(i, j)
std::size_t for_each_entry(const Snapshot& s, F f) noexcept {
  const std::size_t n = s.leaks.size();
  std::size_t entries = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i + 1;
    while (j < n && same_entry(s, s.leaks[i], s.leaks[j])) ++j;
    if (entries++ < kMaxEntries) f(i, j);
    i = j;
  }
  return entries;
}

// ---- text ---------------------------------------------------------------------

void dump(Sink& o, const Leak& l) noexcept {
  o.str("    first ").dec(l.head_len).str(" bytes:");
  for (unsigned i = 0; i < l.head_len; ++i) {
    static const char* kHex = "0123456789abcdef";
    o.ch(' ').ch(kHex[l.head[i] >> 4]).ch(kHex[l.head[i] & 15]);
  }
  o.str("  |");
  for (unsigned i = 0; i < l.head_len; ++i) o.ch(l.head[i] >= 0x20 && l.head[i] < 0x7f ? static_cast<char>(l.head[i]) : '.');
  o.str("|\n");
}

void write_frame_text(Sink& o, unsigned i, const Frame& f) noexcept {
  o.str("      #").dec(i).ch(' ').str(f.function[0] ? f.function : "??");
  if (f.file[0]) o.str("  ").str(f.file).ch(':').dec(f.line);
  o.str("  (").str(f.module[0] ? f.module : "?").str(" +").hex(f.offset).str(")\n");
}

const char* tier_name(strata_tier t) noexcept {
  return t == STRATA_TIER_SMALL ? "small" : t == STRATA_TIER_MEDIUM ? "medium" : "large";
}

void write_not_counted(Sink& o, const Snapshot& s) noexcept {
  if (s.startup_blocks)
    o.str("Not counted: ").grouped(s.startup_blocks).str(s.startup_blocks == 1 ? " block, " : " blocks, ")
        .grouped(s.startup_bytes).str(" bytes, live before strata started (the C++ runtime's, the loader's).\n");
  if (s.untracked_blocks)
    o.str("Not counted: ").grouped(s.untracked_blocks).str(s.untracked_blocks == 1 ? " block, " : " blocks, ").grouped(s.untracked_bytes)
        .str(" bytes, without a call stack (allocated before tracking began, or with tracking off).\n");
  if (s.loader_blocks)
    o.str("Not counted: ").grouped(s.loader_blocks).str(s.loader_blocks == 1 ? " block, " : " blocks, ").grouped(s.loader_bytes)
        .str(" bytes, held by the dynamic loader (threads' TLS, loaded modules).\n");
}

void write_text(Sink& o, Snapshot& s) noexcept {
  const std::size_t n = s.leaks.size();
  o.str("strata leak report: ").str(s.id.heap);
  if (s.id.module[0]) o.str(" of ").str(s.id.module);
  o.str(" (pid ").sdec(s.id.pid).str(s.id.program[0] ? ", " : "").str(s.id.program).str(")\n");
  if (!s.complete) o.str("  INCOMPLETE: a part of the heap could not be read\n");
  if (!n) {
    o.str("No leaks: every live block is expected (").grouped(s.expected_blocks).str(" blocks, ")
        .grouped(s.expected_bytes).str(" bytes).\n");
    write_not_counted(o, s);
    return;
  }
  o.str("Leaked memory: ").grouped(n).str(n == 1 ? " block, " : " blocks, ").grouped(s.leaked_bytes)
      .str(" bytes");
  if (s.expected_blocks)
    o.str(" (and ").grouped(s.expected_blocks).str(" expected blocks, ").grouped(s.expected_bytes).str(" bytes, not shown)");
  o.str(".\n");
  write_not_counted(o, s);
  o.str("\nThe leaks by size (usable bytes), then by what the blocks are:\n");
  for_each_group(s, [&](std::size_t size, const char* name, std::size_t count, bool first, bool first_size) {
    if (first) o.str(first_size ? "" : "\n").field(size, 10, true).str(" bytes: ");
    else o.str(", ");
    o.grouped(count).str(" x ").str(name);
  });
  o.str(stacks_on() ? "\n\nThe leaks, identical ones (same size, class and call stack) folded:\n"
                    : "\n\nThe leaks, folded by size and class (STRATA_LEAK_STACKS=1 adds where each was allocated):\n");
  Symbolizer sym;
  Stack st;
  std::size_t entries = for_each_entry(s, [&](std::size_t i, std::size_t j) {
    const Leak& l = s.leaks[i];
    o.str("  ").grouped(j - i).str(j - i == 1 ? " block of " : " blocks of ").grouped(l.size).str(" bytes (")
        .str(tier_name(l.tier)).str("), ").str(s.pretty(l)).str(", at");
    for (std::size_t k = i; k < j && k < i + kAddressesShown; ++k) o.ch(' ').hex(s.leaks[k].addr, 12);
    if (j - i > kAddressesShown) o.str(" ...");
    o.ch('\n');
    if (l.stack) {
      symbolise(sym, l.stack, st);
      o.str("    allocated at:\n");
      for (unsigned f = 0; f < st.n; ++f) write_frame_text(o, f, st.frames[f]);
    }
    dump(o, l);
  });
  if (entries > kMaxEntries) o.str("  ... and ").grouped(entries - kMaxEntries).str(" more entries\n");
}

// ---- JSON ---------------------------------------------------------------------

void write_json(Sink& o, Snapshot& s) noexcept {
  const std::size_t n = s.leaks.size();
  o.str("{\"schema\":1,\"kind\":\"leaks\",\"generator\":").json_string(s.id.generator)
      .str(",\"heap\":").json_string(s.id.heap).str(",\"module\":").json_string(s.id.module)
      .str(",\"program\":").json_string(s.id.program).str(",\"pid\":").sdec(s.id.pid).str(",\"time\":").sdec(s.id.time)
      .str(",\"complete\":").str(s.complete ? "true" : "false").str(",\"stacks\":").str(stacks_on() ? "true" : "false")
      .str(",\n\"leaks\":{\"blocks\":").dec(n).str(",\"bytes\":").dec(s.leaked_bytes)
      .str("},\"expected\":{\"blocks\":").dec(s.expected_blocks).str(",\"bytes\":").dec(s.expected_bytes)
      .str("},\"startup\":{\"blocks\":").dec(s.startup_blocks).str(",\"bytes\":").dec(s.startup_bytes)
      .str("},\"untracked\":{\"blocks\":").dec(s.untracked_blocks).str(",\"bytes\":").dec(s.untracked_bytes)
      .str("},\"loader\":{\"blocks\":").dec(s.loader_blocks).str(",\"bytes\":").dec(s.loader_bytes)
      .str("},\n\"by_size\":[");
  for_each_group(s, [&](std::size_t size, const char* name, std::size_t count, bool first, bool first_size) {
    if (first) o.str(first_size ? "\n {" : "]},\n {").str("\"size\":").dec(size).str(",\"classes\":[");
    o.str(first ? "{" : ",{").str("\"name\":").json_string(name).str(",\"count\":").dec(count).ch('}');
  });
  o.str(n ? "]}],\n\"entries\":[" : "],\n\"entries\":[");
  Symbolizer sym;
  Stack st;
  std::size_t entries = for_each_entry(s, [&](std::size_t i, std::size_t j) {
    const Leak& l = s.leaks[i];
    o.str(i ? ",\n {" : "\n {").str("\"size\":").dec(l.size).str(",\"tier\":\"").str(tier_name(l.tier))
        .str("\",\"class\":").json_string(s.pretty(l));
    if (l.mangled != kNone) o.str(",\"mangled\":").json_string(s.cls.name(l.mangled));
    o.str(",\"count\":").dec(j - i).str(",\"bytes\":").dec(l.size * (j - i)).str(",\"addresses\":[");
    for (std::size_t k = i; k < j && k < i + kAddressesShown; ++k) o.str(k == i ? "\"" : ",\"").hex(s.leaks[k].addr, 12).ch('"');
    o.str("],\"first_bytes\":\"");
    for (unsigned b = 0; b < l.head_len; ++b) o.ch("0123456789abcdef"[l.head[b] >> 4]).ch("0123456789abcdef"[l.head[b] & 15]);
    o.str("\",\"stack\":[");
    if (l.stack) {
      symbolise(sym, l.stack, st);
      for (unsigned f = 0; f < st.n; ++f) {
        const Frame& fr = st.frames[f];
        o.str(f ? ",{" : "{").str("\"pc\":\"").hex(fr.pc, 12).str("\",\"module\":").json_string(fr.module)
            .str(",\"offset\":\"").hex(fr.offset).str("\",\"function\":").json_string(fr.function);
        if (fr.file[0]) o.str(",\"file\":").json_string(fr.file).str(",\"line\":").dec(fr.line);
        o.ch('}');
      }
    }
    o.str("]}");
  });
  o.str("],\n\"entries_omitted\":").dec(entries > kMaxEntries ? entries - kMaxEntries : 0).str("}\n");
}

long write_snapshot(Snapshot& s, int fd, strata_leak_format format) noexcept {
  internal_begin();  // the symboliser's allocations are not the program's
  Sink out(fd);
  if (format == STRATA_LEAKS_JSON) write_json(out, s);
  else write_text(out, s);
  out.flush();
  internal_end();
  return out.failed() ? -1 : static_cast<long>(s.leaks.size());
}

// ---- at shutdown -----------------------------------------------------------------

std::atomic<int> g_on_shutdown{-1};  // -1: as STRATA_REPORT_LEAKS says

void leak_report_at_exit(void*) noexcept {
  int on = g_on_shutdown.load(std::memory_order_acquire);
  if (on < 0) on = detail::option_enabled(detail::Option::kReportLeaks) ? 1 : 0;
  if (!on) return;
  Snapshot s;
  if (!take(s, nullptr) || s.leaks.size() == 0) return;
  const char* path = detail::option_path(detail::Option::kLeakReport);
  char name[4096];
  if (path && report::expand_path(path, name, sizeof name)) {
    int fd = report::open_report_file(name);
    if (fd >= 0) {
      write_snapshot(s, fd, report::ends_with(name, ".json") ? STRATA_LEAKS_JSON : STRATA_LEAKS_TEXT);
      ::close(fd);
      return;
    }
  }
  write_snapshot(s, 2, STRATA_LEAKS_TEXT);
}

}  // namespace

void register_leak_report(bool replaces_malloc) noexcept {
  detail::process_on_finalize(leak_report_at_exit, nullptr);
  // The registry's and the stack tables' locks across fork (a module's
  // copy: glibc drops the handlers when the module is unloaded).
  pthread_atfork(
      [] {
        registry().lock.lock();
        stacks_fork_prepare();
      },
      [] {
        stacks_fork_parent();
        registry().lock.unlock();
      },
      [] {
        stacks_fork_child();
        registry().lock.reset_after_fork();
      });
  if (replaces_malloc) registry().note_startup();
  stacks_from_environment();
}

}  // namespace strata::leakreg

using namespace strata::leakreg;

extern "C" {

STRATA_API long strata_write_leak_report(strata_pool_t* pool, int fd, strata_leak_format format) noexcept {
  if (fd < 0 || (format != STRATA_LEAKS_TEXT && format != STRATA_LEAKS_JSON)) return -1;
  Snapshot s;
  if (!take(s, pool)) return -1;
  return write_snapshot(s, fd, format);
}

STRATA_API long strata_write_leak_report_file(strata_pool_t* pool, const char* path) noexcept {
  if (!path || !*path) return -1;
  int fd = strata::report::open_report_file(path);
  if (fd < 0) return -1;
  long r = strata_write_leak_report(pool, fd,
                                    strata::report::ends_with(path, ".json") ? STRATA_LEAKS_JSON : STRATA_LEAKS_TEXT);
  if (::close(fd) != 0) r = -1;
  return r;
}

STRATA_API long strata_count_leaks(strata_pool_t* pool, size_t* bytes) noexcept {
  Snapshot s;
  if (!take(s, pool)) return -1;
  if (bytes) *bytes = s.leaked_bytes;
  return static_cast<long>(s.leaks.size());
}

STRATA_API int strata_report_memory_leaks_on_shutdown(int on) noexcept {
  int was = g_on_shutdown.exchange(on ? 1 : 0, std::memory_order_acq_rel);
  if (was < 0) was = strata::detail::option_enabled(strata::detail::Option::kReportLeaks) ? 1 : 0;
  return was;
}

STRATA_API int strata_leak_stacks(int on) noexcept { return stacks_switch(on != 0) ? 1 : 0; }
STRATA_API void strata_leak_tracking_disable(void) noexcept { tracking_disable(); }
STRATA_API void strata_leak_tracking_enable(void) noexcept { tracking_enable(); }

}  // extern "C"
