// <strata/state.h>: the state per size class and tier, the usage summary,
// the block walk, the regions and the memory map, against known allocation
// patterns.  This binary does not replace malloc: Catch2's and the test's
// own allocations go to glibc, so a strata heap holds only what the test
// puts there.  Pools give every case a heap of its own.
#include <gnu/libc-version.h>
#include <strata/state.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

strata_heap_state_t state_of(strata_pool_t* pool) {
  strata_heap_state_t s{};
  s.size = sizeof s;
  REQUIRE(strata_heap_state(pool, &s, STRATA_WAIT_FOREVER) == 0);
  REQUIRE(s.version == 1);
  REQUIRE(s.complete == 1);
  return s;
}

void check_adds_up(const strata_heap_state_t& s) {
  const strata_usage_summary_t& u = s.summary;
  CHECK(u.allocated_bytes == s.small.bytes_in_use + s.medium.bytes_in_use + s.large.bytes_in_use);
  CHECK(u.allocated_bytes + u.free_bytes + u.overhead_bytes == u.reserved_bytes);
  // Exact: the structures account for every byte the heap has mapped.
  CHECK(u.reserved_bytes == u.os_reserved_bytes);
  CHECK(s.small.bytes_reserved + s.medium.bytes_reserved + s.large.bytes_mapped + s.large.kept_bytes +
            s.large.parked_bytes + s.bookkeeping_bytes ==
        u.reserved_bytes);
  std::size_t blocks = 0, bytes = 0, reserved = 0;
  for (unsigned c = 0; c < s.class_count; ++c) {
    const strata_class_state_t& k = s.classes[c];
    CHECK(k.bytes_in_use == k.blocks_in_use * k.block_size);
    CHECK(k.bytes_reserved == k.spans * 65536);
    blocks += k.blocks_in_use;
    bytes += k.bytes_in_use;
    reserved += k.bytes_reserved;
  }
  CHECK(blocks == s.small.blocks_in_use);
  CHECK(bytes == s.small.bytes_in_use);
  CHECK(reserved <= s.small.bytes_reserved);
  if (u.reserved_bytes) CHECK(u.efficiency_percent == Approx(100.0 * u.allocated_bytes / u.reserved_bytes));
}

unsigned class_of(const strata_heap_state_t& s, std::size_t size) {
  for (unsigned c = 0; c < s.class_count; ++c)
    if (s.classes[c].block_size >= size) return c;
  return ~0u;
}

struct Walked {
  std::map<void*, strata_block_info_t> live, free;
};
int collect(const strata_block_info_t* b, void* ctx) {
  auto* w = static_cast<Walked*>(ctx);
  (b->live ? w->live : w->free)[b->address] = *b;
  return 1;
}
Walked walk(strata_pool_t* pool, unsigned flags) {
  Walked w;
  REQUIRE(strata_heap_walk(pool, flags, collect, &w, STRATA_WAIT_FOREVER) == 1);
  return w;
}

}  // namespace

TEST_CASE("the state counts N blocks of a size at its class and tier, and returns to the baseline", "[state]") {
  struct Case {
    const char* name;
    std::size_t size, count;
    strata_tier tier;
  };
  const Case cases[] = {{"small 64", 64, 3000, STRATA_TIER_SMALL},
                        {"small 100", 100, 777, STRATA_TIER_SMALL},
                        {"small largest", st::kSmallMax, 300, STRATA_TIER_SMALL},
                        {"medium 20000", 20000, 150, STRATA_TIER_MEDIUM},
                        {"medium smallest", st::kSmallMax + 1, 100, STRATA_TIER_MEDIUM},
                        {"large 1 MiB", 1 << 20, 5, STRATA_TIER_LARGE}};
  for (const Case& k : cases) {
    SECTION(k.name) {
      strata_pool_t* pool = strata_pool_create();
      REQUIRE(pool);
      strata_pool_free(pool, strata_pool_malloc(pool, 16));  // the thread's cache of the pool exists
      const strata_heap_state_t before = state_of(pool);
      check_adds_up(before);
      std::vector<void*> v;
      std::size_t usable = 0;
      for (std::size_t i = 0; i < k.count; ++i) {
        void* p = strata_pool_malloc(pool, k.size);
        REQUIRE(p);
        usable += strata_usable_size(p);
        v.push_back(p);
      }
      const strata_heap_state_t during = state_of(pool);
      check_adds_up(during);
      CHECK(during.summary.allocated_bytes - before.summary.allocated_bytes == usable);
      if (k.tier == STRATA_TIER_SMALL) {
        const unsigned c = class_of(during, k.size);
        REQUIRE(c != ~0u);
        CHECK(during.classes[c].blocks_in_use - before.classes[c].blocks_in_use == k.count);
        CHECK(during.classes[c].bytes_in_use - before.classes[c].bytes_in_use == k.count * during.classes[c].block_size);
        CHECK(during.classes[c].spans >= (k.count * during.classes[c].block_size) / 65536);
        CHECK(during.small.blocks_in_use - before.small.blocks_in_use == k.count);
        CHECK(during.medium.blocks_in_use == before.medium.blocks_in_use);
      } else if (k.tier == STRATA_TIER_MEDIUM) {
        CHECK(during.medium.blocks_in_use - before.medium.blocks_in_use == k.count);
        CHECK(during.medium.bytes_in_use - before.medium.bytes_in_use == usable);
        CHECK(during.medium.pools >= 1);
        CHECK(during.small.blocks_in_use == before.small.blocks_in_use);
      } else {
        CHECK(during.large.blocks_in_use - before.large.blocks_in_use == k.count);
        CHECK(during.large.bytes_requested - before.large.bytes_requested == k.count * k.size);
        CHECK(during.large.bytes_in_use - before.large.bytes_in_use == usable);
        CHECK(during.large.bytes_mapped >= during.large.bytes_in_use);
      }
      for (void* p : v) strata_pool_free(pool, p);
      const strata_heap_state_t after = state_of(pool);
      check_adds_up(after);
      CHECK(after.small.blocks_in_use == before.small.blocks_in_use);
      CHECK(after.medium.blocks_in_use == before.medium.blocks_in_use);
      CHECK(after.large.blocks_in_use == before.large.blocks_in_use);
      CHECK(after.summary.allocated_bytes == before.summary.allocated_bytes);
      strata_heap_trim(pool);
      check_adds_up(state_of(pool));
      strata_pool_destroy(pool);
    }
  }
}

TEST_CASE("the medium and large tiers' free memory is described", "[state]") {
  strata_pool_t* pool = strata_pool_create();
  std::vector<void*> v;
  for (int i = 0; i < 40; ++i) v.push_back(strata_pool_malloc(pool, 30000));
  for (int i = 0; i < 40; i += 2) strata_pool_free(pool, v[i]);  // holes between live blocks
  void* big = strata_pool_malloc(pool, 8 << 20);
  strata_pool_free(pool, big);  // parked in this thread's cache, or kept
  strata_heap_state_t s = state_of(pool);
  check_adds_up(s);
  CHECK(s.medium.blocks_in_use == 20);
  CHECK(s.medium.free_runs >= 1);
  CHECK(s.medium.bins_in_use >= 1);
  CHECK(s.medium.largest_free_block >= 30000);
  CHECK(s.medium.free_bytes >= 20 * 30000 - s.medium.bytes_in_thread_caches);
  CHECK(s.large.blocks_in_use == 0);
  CHECK(s.large.parked_mappings + s.large.kept_mappings >= 1);
  CHECK(s.large.parked_bytes + s.large.kept_bytes >= (8u << 20));
  strata_pool_destroy(pool);
}

TEST_CASE("strata_heap_state is versioned: a short struct gets what fits", "[state]") {
  strata_heap_state_t s{};
  CHECK(strata_heap_state(nullptr, nullptr, 0) == -1);
  s.size = 8;
  CHECK(strata_heap_state(nullptr, &s, STRATA_WAIT_FOREVER) == -1);
  std::memset(&s, 0xab, sizeof s);
  s.size = offsetof(strata_heap_state_t, classes);
  REQUIRE(strata_heap_state(nullptr, &s, STRATA_WAIT_FOREVER) == 0);
  CHECK(s.size == offsetof(strata_heap_state_t, classes));
  CHECK(s.version == 1);
  CHECK(s.classes[0].block_size == 0xababababababababull);  // untouched beyond size
  strata_usage_summary_t u{};
  CHECK(strata_usage_summary(nullptr, &u, STRATA_WAIT_FOREVER) == 0);
  CHECK(u.reserved_bytes >= u.allocated_bytes);
}

TEST_CASE("a walk finds exactly the live blocks of every tier", "[walk]") {
  strata_pool_t* pool = strata_pool_create();
  std::map<void*, std::size_t> live;
  std::uint64_t x = 42;
  std::vector<void*> all;
  // Many blocks of a few classes: batches of 256 end inside spans and at their ends.
  for (int i = 0; i < 6000; ++i) {
    x = st::mix64(x + i);
    std::size_t size = i % 97 == 0 ? 100000 + x % 300000 : i % 41 == 0 ? (1 << 20) + x % 100000 : 1 + x % 3000;
    void* p = strata_pool_malloc(pool, size);
    REQUIRE(p);
    all.push_back(p);
  }
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i % 3 == 1) strata_pool_free(pool, all[i]);
    else live[all[i]] = strata_usable_size(all[i]);
  }
  Walked w = walk(pool, 0);
  CHECK(w.free.empty());
  REQUIRE(w.live.size() == live.size());
  for (const auto& [p, b] : w.live) {
    INFO(p);
    REQUIRE(live.count(p) == 1);
    CHECK(b.usable_size == live[p]);
    CHECK(b.pool == pool);
    const std::size_t u = live[p];
    CHECK(b.tier == (u <= st::kSmallMax ? STRATA_TIER_SMALL : u <= 260 * 1024 ? STRATA_TIER_MEDIUM : STRATA_TIER_LARGE));
  }
  // With the free blocks: the same live ones, and the freed ones among the free.
  Walked wf = walk(pool, STRATA_WALK_FREE);
  CHECK(wf.live.size() == live.size());
  std::size_t freed_seen = 0;
  for (std::size_t i = 1; i < all.size(); i += 3) freed_seen += wf.free.count(all[i]);
  // A freed small or medium block is a free block at its own address, unless
  // it was merged with a free neighbour (medium) or its mapping went (large).
  CHECK(freed_seen >= all.size() / 3 * 8 / 10);
  // The state agrees with the walk.
  strata_heap_state_t s = state_of(pool);
  CHECK(s.small.blocks_in_use + s.medium.blocks_in_use + s.large.blocks_in_use == live.size());
  strata_pool_destroy(pool);
}

TEST_CASE("the walk's visitor runs with no lock held: it may allocate from the walked heap, and stop it", "[walk]") {
  strata_pool_t* pool = strata_pool_create();
  std::vector<void*> v;
  for (int i = 0; i < 1000; ++i) v.push_back(strata_pool_malloc(pool, 64));
  for (int i = 0; i < 20; ++i) v.push_back(strata_pool_malloc(pool, 40000));
  v.push_back(strata_pool_malloc(pool, 2 << 20));
  struct Ctx {
    strata_pool_t* pool;
    std::vector<void*> made;
    int seen = 0;
  } ctx{pool, {}};
  int r = strata_heap_walk(
      pool, 0,
      [](const strata_block_info_t* b, void* c) -> int {
        auto* k = static_cast<Ctx*>(c);
        k->seen++;
        // Of the walked heap, of the same class and tiers: no deadlock.
        k->made.push_back(strata_pool_malloc(k->pool, b->usable_size));
        return 1;
      },
      &ctx, STRATA_WAIT_FOREVER);
  CHECK(r != 0);
  CHECK(ctx.seen >= 1021);
  for (void* p : ctx.made) strata_pool_free(pool, p);
  int stop_after = 10;
  r = strata_heap_walk(
      pool, 0, [](const strata_block_info_t*, void* c) -> int { return --*static_cast<int*>(c) > 0; }, &stop_after,
      STRATA_WAIT_FOREVER);
  CHECK(r == 0);
  CHECK(stop_after == 0);
  strata_pool_destroy(pool);
}

TEST_CASE("a heap's regions cover exactly what it holds from the OS, each live block in its tier's region",
          "[regions]") {
  strata_pool_t* pool = strata_pool_create();
  std::vector<void*> v;
  for (int i = 0; i < 2000; ++i) v.push_back(strata_pool_malloc(pool, 16 + (i % 7) * 300));
  for (int i = 0; i < 30; ++i) v.push_back(strata_pool_malloc(pool, 50000));
  for (int i = 0; i < 3; ++i) v.push_back(strata_pool_malloc(pool, 3 << 20));
  std::vector<strata_region_t> regions;
  REQUIRE(strata_heap_regions(
              pool, 0,
              [](const strata_region_t* r, void* c) -> int {
                static_cast<std::vector<strata_region_t>*>(c)->push_back(*r);
                return 1;
              },
              &regions, STRATA_WAIT_FOREVER) == 1);
  std::size_t total = 0;
  for (std::size_t i = 0; i < regions.size(); ++i) {
    const strata_region_t& r = regions[i];
    CHECK(r.start % 65536 == 0);
    CHECK(r.end % 65536 == 0);
    CHECK(r.end > r.start);
    CHECK(r.pool == pool);
    if (i) CHECK(regions[i - 1].end <= r.start);
    total += r.end - r.start;
  }
  strata_heap_state_t s = state_of(pool);
  CHECK(total == s.summary.os_reserved_bytes);
  auto use_at = [&](const void* p) {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    for (const strata_region_t& r : regions)
      if (a >= r.start && a < r.end) return r.use;
    return STRATA_MAP_UNMAPPED;
  };
  for (void* p : v) {
    const std::size_t u = strata_usable_size(p);
    CHECK(use_at(p) == (u <= st::kSmallMax ? STRATA_MAP_SMALL : u <= 260 * 1024 ? STRATA_MAP_MEDIUM : STRATA_MAP_LARGE));
  }
  strata_pool_destroy(pool);
}

namespace {

struct ProcMap {
  std::uintptr_t start, end;
  std::string name;
};
std::vector<ProcMap> proc_maps() {
  std::vector<ProcMap> out;
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line)) {
    ProcMap m{};
    std::istringstream ls(line);
    std::string range, perms, off, dev, inode;
    ls >> range >> perms >> off >> dev >> inode;
    std::getline(ls, m.name);
    m.name.erase(0, m.name.find_first_not_of(' '));
    m.start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    m.end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    out.push_back(m);
  }
  return out;
}
struct MapRun {
  std::uintptr_t start, end;
  strata_map_use use;
  std::string name;
};
std::vector<MapRun> memory_map(strata_pool_t* pool) {
  std::vector<MapRun> runs;
  REQUIRE(strata_memory_map(
              pool,
              [](const strata_map_run_t* r, void* c) -> int {
                static_cast<std::vector<MapRun>*>(c)->push_back({r->start, r->end, r->use, r->name ? r->name : ""});
                return 1;
              },
              &runs, STRATA_WAIT_FOREVER) == 1);
  return runs;
}
const MapRun* run_at(const std::vector<MapRun>& runs, const void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  for (const MapRun& r : runs)
    if (a >= r.start && a < r.end) return &r;
  return nullptr;
}
int g_global_in_the_executable = 1;

}  // namespace

TEST_CASE("the memory map covers the 47-bit space and agrees with /proc/self/maps", "[map]") {
  strata_pool_t* pool = strata_pool_create();
  void* small = strata_malloc(64);
  void* medium = strata_malloc(30000);
  void* large = strata_malloc(5 << 20);
  void* pool_block = strata_pool_malloc(pool, 64);
  std::vector<MapRun> runs = memory_map(nullptr);
  std::vector<ProcMap> maps = proc_maps();
  REQUIRE(!runs.empty());
  CHECK(runs.front().start == 0);
  CHECK(runs.back().end == std::uintptr_t{1} << 47);
  for (std::size_t i = 1; i < runs.size(); ++i) {
    CHECK(runs[i - 1].end == runs[i].start);  // contiguous, in order
    CHECK(!(runs[i - 1].use == runs[i].use && runs[i - 1].name == runs[i].name));  // merged
  }
  REQUIRE(run_at(runs, small));
  CHECK(run_at(runs, small)->use == STRATA_MAP_SMALL);
  CHECK(run_at(runs, medium)->use == STRATA_MAP_MEDIUM);
  CHECK(run_at(runs, large)->use == STRATA_MAP_LARGE);
  CHECK(run_at(runs, pool_block)->use == STRATA_MAP_OTHER_HEAP);  // the pool, seen from the process heap
  int on_the_stack = 0;
  REQUIRE(run_at(runs, &on_the_stack));
  CHECK(run_at(runs, &on_the_stack)->use == STRATA_MAP_OTHER);
  CHECK(run_at(runs, &on_the_stack)->name == "[stack]");
  const MapRun* exe = run_at(runs, &g_global_in_the_executable);
  REQUIRE(exe);
  CHECK(exe->use == STRATA_MAP_OTHER);
  CHECK(exe->name.find("state") != std::string::npos);  // this test's executable
  // (a function of libc's that no sanitizer runtime intercepts: under ASan
  // &::write is libasan's)
  const MapRun* libc = run_at(runs, reinterpret_cast<void*>(&::gnu_get_libc_version));
  REQUIRE(libc);
  CHECK(libc->name.find("libc") != std::string::npos);
  // Every chunk /proc/self/maps shows mapped is mapped in the map, and every
  // chunk the map says is unmapped touches no mapping.
  for (const ProcMap& m : maps) {
    if (m.start >= (std::uintptr_t{1} << 47)) continue;  // [vsyscall]
    const MapRun* r = run_at(runs, reinterpret_cast<void*>(m.start));
    REQUIRE(r);
    INFO(m.name);
    CHECK(r->use != STRATA_MAP_UNMAPPED);
    // strata's named mappings are strata's in the map (when the kernel names them).
    if (m.name.rfind("[anon:strata:", 0) == 0) CHECK(r->use != STRATA_MAP_OTHER);
  }
  for (const MapRun& r : runs) {
    if (r.use != STRATA_MAP_UNMAPPED) continue;
    for (const ProcMap& m : maps) CHECK(!(m.start < r.end && m.end > r.start));
  }
  // Seen from the pool, the pool's block is its own and the process heap's are another heap's.
  std::vector<MapRun> pool_runs = memory_map(pool);
  CHECK(run_at(pool_runs, pool_block)->use == STRATA_MAP_SMALL);
  CHECK(run_at(pool_runs, small)->use == STRATA_MAP_OTHER_HEAP);
  strata_free(small);
  strata_free(medium);
  strata_free(large);
  strata_pool_destroy(pool);
}

TEST_CASE("reports taken while other threads allocate and free neither crash nor deadlock", "[state][concurrent]") {
  strata_pool_t* pool = strata_pool_create();
  std::atomic<bool> stop{false};
  auto hammer = [&](strata_pool_t* p, unsigned seed) {
    std::vector<void*> v(512, nullptr);
    std::uint64_t x = seed;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 1000; ++i) {
        x = st::mix64(x);
        void*& slot = v[x % v.size()];
        strata_pool_free(p, slot);
        const std::size_t size = (x >> 20) % 64 == 0 ? 100000 + (x >> 30) % 2000000 : 1 + (x >> 24) % 6000;
        slot = strata_pool_malloc(p, size);
      }
    }
    for (void* q : v) strata_pool_free(p, q);
  };
  std::thread a(hammer, pool, 1), b(hammer, nullptr, 2), c(hammer, pool, 3);
  const int devnull = ::open("/dev/null", O_WRONLY);
  for (int round = 0; round < 30; ++round) {
    for (strata_pool_t* p : {pool, static_cast<strata_pool_t*>(nullptr)}) {
      strata_heap_state_t s{};
      s.size = sizeof s;
      CHECK(strata_heap_state(p, &s, round % 2 ? 5 : STRATA_WAIT_FOREVER) == 0);
      std::size_t n = 0;
      CHECK(strata_heap_walk(
                p, round % 3 ? 0 : STRATA_WALK_FREE,
                [](const strata_block_info_t* blk, void* ctx) -> int {
                  ++*static_cast<std::size_t*>(ctx);
                  return blk->usable_size > 0;
                },
                &n, STRATA_WAIT_FOREVER) != 0);
      CHECK(strata_heap_regions(p, round % 2, [](const strata_region_t*, void*) -> int { return 1; }, nullptr, 10) != 0);
    }
    if (round % 10 == 0) {
      CHECK(strata_write_report(pool, devnull, STRATA_REPORT_JSON, STRATA_WAIT_FOREVER) == 0);
      CHECK(strata_write_report(nullptr, devnull, STRATA_REPORT_SVG, 20) == 0);
      CHECK(strata_write_report(nullptr, devnull, STRATA_REPORT_TEXT, STRATA_WAIT_FOREVER) == 0);
    }
  }
  stop = true;
  a.join();
  b.join();
  c.join();
  ::close(devnull);
  check_adds_up(state_of(pool));  // quiescent again: exact
  strata_pool_destroy(pool);
}

TEST_CASE("reports are written to a file descriptor and to files by name", "[report]") {
  char dir[] = "/tmp/strata-state-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  const std::string base = dir;
  void* p = strata_malloc(1000);
  for (const char* ext : {".json", ".svg", ".txt"}) {
    const std::string path = base + "/r" + ext;
    REQUIRE(strata_write_report_file(nullptr, path.c_str(), STRATA_REPORT_BY_NAME, STRATA_WAIT_FOREVER) == 0);
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    if (std::string(ext) == ".json") {
      CHECK(text.rfind("{\n\"schema\":1,", 0) == 0);
      CHECK(text.find("\"classes\":[") != std::string::npos);
      CHECK(text.find("\"map\":[") != std::string::npos);
    } else if (std::string(ext) == ".svg") {
      CHECK(text.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
      CHECK(text.find("</svg>") != std::string::npos);
    } else {
      CHECK(text.rfind("strata heap report: process heap", 0) == 0);
      CHECK(text.find("Usage summary") != std::string::npos);
    }
    ::unlink(path.c_str());
  }
  CHECK(strata_write_report_file(nullptr, "", STRATA_REPORT_TEXT, 0) == -1);
  CHECK(strata_write_report_file(nullptr, "/nonexistent-dir/r.json", STRATA_REPORT_BY_NAME, 0) == -1);
  CHECK(strata_write_report(nullptr, -1, STRATA_REPORT_TEXT, 0) == -1);
  CHECK(strata_write_report(nullptr, 2, static_cast<strata_report_format>(7), 0) == -1);
  // A symbolic link is not followed (the name may be another user's).
  const std::string link = base + "/link.json";
  REQUIRE(::symlink("/tmp/strata-should-not-exist", link.c_str()) == 0);
  CHECK(strata_write_report_file(nullptr, link.c_str(), STRATA_REPORT_JSON, 0) == -1);
  CHECK(::access("/tmp/strata-should-not-exist", F_OK) != 0);
  ::unlink(link.c_str());
  ::rmdir(dir);
  strata_free(p);
}

// Run by tests/unit/report_check.py: the JSON and SVG reports of one
// quiescent heap, back to back (nothing allocates from strata in between),
// into $STRATA_TEST_REPORT_DIR, for the script to check one against the other.
TEST_CASE("the JSON and SVG reports of one heap", "[.pair]") {
  const char* dir = std::getenv("STRATA_TEST_REPORT_DIR");
  REQUIRE(dir);
  strata_pool_t* pool = strata_pool_create();
  std::vector<void*> v;
  for (int i = 0; i < 5000; ++i) v.push_back(strata_pool_malloc(pool, 1 + (i * 37) % 2000));
  for (int i = 0; i < 40; ++i) v.push_back(strata_pool_malloc(pool, 10000 + i * 3000));
  for (int i = 0; i < 3; ++i) v.push_back(strata_pool_malloc(pool, (1 + i) << 20));
  for (std::size_t i = 0; i < v.size(); i += 4) strata_pool_free(pool, v[i]);
  const std::string json = std::string(dir) + "/pair.json", svg = std::string(dir) + "/pair.svg",
                    text = std::string(dir) + "/pair.txt";
  REQUIRE(strata_write_report_file(pool, json.c_str(), STRATA_REPORT_JSON, STRATA_WAIT_FOREVER) == 0);
  REQUIRE(strata_write_report_file(pool, svg.c_str(), STRATA_REPORT_SVG, STRATA_WAIT_FOREVER) == 0);
  REQUIRE(strata_write_report_file(pool, text.c_str(), STRATA_REPORT_TEXT, STRATA_WAIT_FOREVER) == 0);
  strata_pool_destroy(pool);
}

// Run by tests/report/strata_report_check.py: two JSON reports of one pool,
// before and after 1,000 blocks of 100 bytes, 20 medium blocks of 10,000
// and 2 large blocks of 1 MiB, for `strata-report diff` to show the growth.
TEST_CASE("two reports of a pool that grew", "[.diff]") {
  const char* dir = std::getenv("STRATA_TEST_REPORT_DIR");
  REQUIRE(dir);
  strata_pool_t* pool = strata_pool_create();
  std::vector<void*> v;
  for (int i = 0; i < 300; ++i) v.push_back(strata_pool_malloc(pool, 40));
  const std::string before = std::string(dir) + "/before.json", after = std::string(dir) + "/after.json";
  REQUIRE(strata_write_report_file(pool, before.c_str(), STRATA_REPORT_JSON, STRATA_WAIT_FOREVER) == 0);
  for (int i = 0; i < 1000; ++i) v.push_back(strata_pool_malloc(pool, 100));
  for (int i = 0; i < 20; ++i) v.push_back(strata_pool_malloc(pool, 10000));
  for (int i = 0; i < 2; ++i) v.push_back(strata_pool_malloc(pool, 1 << 20));
  REQUIRE(strata_write_report_file(pool, after.c_str(), STRATA_REPORT_JSON, STRATA_WAIT_FOREVER) == 0);
  strata_pool_destroy(pool);
}

// docs/introspection.md's recipe for a server: a report on demand without
// stopping, from a thread of the program's own that waits for a signal
// (the signal handler context never runs strata: sigwait returns in a
// normal thread).
TEST_CASE("a server writes its report when it receives a signal", "[report]") {
  char path[] = "/tmp/strata-signal-XXXXXX.json";
  const int fd = ::mkstemps(path, 5);
  REQUIRE(fd >= 0);
  ::close(fd);
  ::unlink(path);
  // -- the recipe --
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts: every thread inherits the mask
  std::thread reporter([set, p = std::string(path)] {
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGUSR2) {
      strata_write_report_file(nullptr, p.c_str(), STRATA_REPORT_BY_NAME, 1000);  // wait at most 1 s per lock
      break;  // (a server loops; this test takes one report)
    }
  });
  // -- end of the recipe --
  void* live = strata_malloc(12345);
  ::kill(::getpid(), SIGUSR2);  // what `kill -USR2 <pid>` does from a shell
  reporter.join();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str().find("\"schema\":1") != std::string::npos);
  ::unlink(path);
  strata_free(live);
}
