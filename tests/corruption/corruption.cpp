// Pointer errors: each kind of bad pointer is passed to strata_free and
// strata_realloc (1) in a forked child with the default handler, which must
// print the address and a diagnosis to stderr and abort, and (2) in process
// with a custom handler, which must receive kind/address/operation, after
// which the program continues and the heap still works.  The same for a
// sized free naming more bytes than the block has (WRONG_SIZE) and for
// metadata a program overwrote: a medium block's boundary tag, a large
// block's header (CORRUPTION).
#include <catch2/catch.hpp>
#include <strata/strata.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <malloc.h>

#include "test_util.hpp"

namespace {

alignas(64) char g_global_buffer[8192];

// glibc blocks handed to strata as foreign pointers; given back to glibc at
// the end (so that LeakSanitizer builds stay quiet).
std::vector<void*> g_glibc_blocks;
void* glibc_block(std::size_t n) {
  void* p = ::malloc(n);
  if (!p) std::abort();
  g_glibc_blocks.push_back(p);
  return p;
}

struct BadPointer {
  const char* name;
  // Prepares the situation and returns the bad pointer (runs where the
  // operation runs: in the child, or in process).
  std::function<void*()> prepare;
  std::vector<strata_error_kind> kinds;  // acceptable diagnoses
  // Size class of the block involved, to check afterwards that the heap
  // hands out distinct blocks of it (0: none).
  std::size_t related_size;
};

void* double_free_of(std::size_t n, bool flush) {
  void* p = strata_malloc(n);
  if (!p) std::abort();
  std::memset(p, 0x5A, n);
  strata_free(p);
  if (flush) strata_thread_flush();
  return p;
}

// A block of a fresh pool, freed once (the pool lives on).
void* pool_double_free_of(std::size_t n) {
  strata_pool_t* pool = strata_pool_create();
  void* p = strata_pool_malloc(pool, n);
  if (!p) std::abort();
  strata_pool_free(pool, p);
  return p;
}

void* interior_of(std::size_t n, std::size_t offset) {
  auto* p = static_cast<char*>(strata_malloc(n));
  if (!p) std::abort();
  return p + offset;
}

void* with_bit_52(void* p) {
  return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) | (std::uintptr_t{1} << 52));
}

void* stack_pointer() {
  // The address of a (dead by the time it is used) stack slot of a deeper
  // frame: a real stack address, never memory strata handed out.
  alignas(64) volatile char buf[256];
  buf[0] = 1;
  void* p = const_cast<char*>(&buf[64]);
  std::uintptr_t v = reinterpret_cast<std::uintptr_t>(p);
  asm volatile("" : "+r"(v));
  return reinterpret_cast<void*>(v);
}

std::vector<BadPointer> cases() {
  using K = strata_error_kind;
  const std::vector<K> dbl = {STRATA_ERROR_DOUBLE_FREE};
  const std::vector<K> dbl_large = {STRATA_ERROR_DOUBLE_FREE, STRATA_ERROR_FREED_MEMORY};
  const std::vector<K> foreign = {STRATA_ERROR_FOREIGN_POINTER};
  // An mmapped foreign block may land in address space strata used and gave
  // back earlier; strata then reports it as freed memory (it cannot tell).
  const std::vector<K> foreign_or_freed = {STRATA_ERROR_FOREIGN_POINTER, STRATA_ERROR_FREED_MEMORY};
  const std::vector<K> interior = {STRATA_ERROR_INTERIOR_POINTER};
  return {
      {"double free small", [] { return double_free_of(64, false); }, dbl, 64},
      {"double free small after thread flush", [] { return double_free_of(48, true); }, dbl, 48},
      {"double free small (largest class)", [] { return double_free_of(st::kSmallMax, false); }, dbl, st::kSmallMax},
      {"double free medium", [] { return double_free_of(50000, false); }, dbl, 50000},
      {"double free medium (smallest)", [] { return double_free_of(st::kSmallMax + 1, false); }, dbl, st::kSmallMax + 1},
      {"double free medium coalesced with a free neighbour",
       [] {
         void* a = strata_malloc(30000);
         void* b = strata_malloc(30000);
         void* c = strata_malloc(30000);
         if (!a || !b || !c) std::abort();
         strata_free(b);
         strata_free(a);
         return b;
       },
       {STRATA_ERROR_DOUBLE_FREE, STRATA_ERROR_INTERIOR_POINTER}, 30000},
      {"double free large", [] { return double_free_of(2 * st::MiB, false); }, dbl_large, 2 * st::MiB},  // parked
      // Flushed, it joins the kept mappings and may merge with a kept neighbour
      // before it: the pointer is then inside a larger free block.
      {"double free large (flushed)", [] { return double_free_of(2 * st::MiB, true); },
       {STRATA_ERROR_DOUBLE_FREE, STRATA_ERROR_FREED_MEMORY, STRATA_ERROR_INTERIOR_POINTER}, 2 * st::MiB},
      {"double free pool small", [] { return pool_double_free_of(100); }, dbl, 0},
      {"double free pool medium", [] { return pool_double_free_of(50000); }, dbl, 0},
      // The free fast paths look the chunk map up without checking the top
      // bits (a pointer over 2^48 folds onto a real chunk); the range checks
      // after it must send such a pointer to the checked path.
      {"small block address with bit 52 set", [] { return with_bit_52(interior_of(64, 0)); }, foreign, 64},
      {"medium block address with bit 52 set", [] { return with_bit_52(interior_of(50000, 0)); }, foreign, 50000},
      {"large block address with bit 52 set", [] { return with_bit_52(interior_of(2 * st::MiB, 0)); }, foreign,
       2 * st::MiB},
      {"stack pointer", [] { return stack_pointer(); }, foreign, 0},
      {"global pointer", [] { return static_cast<void*>(g_global_buffer + 1024); }, foreign, 0},
      {"glibc malloc pointer (small)",
       [] { return glibc_block(64); },
       foreign, 0},
      {"glibc malloc pointer (mmapped)",
       [] { return glibc_block(4 * st::MiB); },
       foreign_or_freed, 0},
      {"wild pointer 0x12345670", [] { return reinterpret_cast<void*>(std::uintptr_t{0x12345670}); }, foreign, 0},
      {"wild pointer 0x7ff000001000", [] { return reinterpret_cast<void*>(std::uintptr_t{0x7ff000001000}); }, foreign, 0},
      {"interior small", [] { return interior_of(64, 16); }, interior, 64},
      {"interior small (largest class)", [] { return interior_of(st::kSmallMax, 1024); }, interior, st::kSmallMax},
      {"interior medium", [] { return interior_of(50000, 16); }, interior, 50000},
      {"interior medium (page offset)", [] { return interior_of(50000, 8192); }, interior, 50000},
      {"interior large", [] { return interior_of(2 * st::MiB, 16); }, interior, 2 * st::MiB},
      {"interior large (page offset)", [] { return interior_of(2 * st::MiB, 3 * 4096); }, interior, 2 * st::MiB},
      // Chunks between a large block's anchors hold no entry of their own
      // (the chunk map's interior marks cover them: chunk_map.hpp).
      {"interior large (middle chunk)", [] { return interior_of(2 * st::MiB, st::MiB + 16); }, interior, 2 * st::MiB},
      {"interior large (last chunk)", [] { return interior_of(2 * st::MiB, 2 * st::MiB - 64); }, interior,
       2 * st::MiB},
      {"interior large (64 MiB block, deep)", [] { return interior_of(64 * st::MiB, 37 * st::MiB + 4096); }, interior,
       64 * st::MiB},
      {"interior large (aligned block, middle chunk)",
       [] {
         auto* p = static_cast<char*>(strata_aligned_alloc(st::MiB, 4 * st::MiB));
         if (!p) std::abort();
         return static_cast<void*>(p + 2 * st::MiB + 8);
       },
       interior, 4 * st::MiB},
      {"misaligned small", [] { return interior_of(64, 1); },
       {STRATA_ERROR_INTERIOR_POINTER, STRATA_ERROR_FOREIGN_POINTER}, 64},
      {"misaligned medium", [] { return interior_of(50000, 8); },
       {STRATA_ERROR_INTERIOR_POINTER, STRATA_ERROR_FOREIGN_POINTER}, 50000},
      {"misaligned large", [] { return interior_of(2 * st::MiB, 4); },
       {STRATA_ERROR_INTERIOR_POINTER, STRATA_ERROR_FOREIGN_POINTER}, 2 * st::MiB},
  };
}

// Words one of which the default diagnosis must contain (lower case), besides
// the kind names of the acceptable kinds.
std::vector<std::string> words_for(const std::vector<strata_error_kind>& kinds) {
  std::vector<std::string> w;
  for (strata_error_kind k : kinds) {
    w.push_back(st::lower(strata_error_kind_name(k)));
    switch (k) {
      case STRATA_ERROR_DOUBLE_FREE: w.insert(w.end(), {"double free", "already free"}); break;
      case STRATA_ERROR_FREED_MEMORY: w.insert(w.end(), {"freed", "unmapped", "released", "double free"}); break;
      case STRATA_ERROR_FOREIGN_POINTER:
        w.insert(w.end(), {"not allocated", "foreign", "not a strata", "not strata", "unknown", "not owned"});
        break;
      case STRATA_ERROR_INTERIOR_POINTER: w.insert(w.end(), {"inside", "interior"}); break;
      case STRATA_ERROR_WRONG_POOL: w.insert(w.end(), {"pool"}); break;
      case STRATA_ERROR_CORRUPTION: w.insert(w.end(), {"corrupt", "overwritten"}); break;
      case STRATA_ERROR_WRONG_SIZE: w.insert(w.end(), {"wrong size", "larger than the block"}); break;
      default: break;
    }
  }
  return w;
}

// A page shared with forked children so they can tell the parent which
// address they passed.
struct Shared {
  void* addr;
};
Shared* shared_page() {
  static Shared* s = [] {
    void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    return static_cast<Shared*>(m);
  }();
  return s;
}

// Runs in a forked child, with the default handler: prepare() makes the bad
// pointer (null: the setup failed), act(bad) makes the bad call.  The child
// must die of SIGABRT with the address and a diagnosis for one of `kinds`
// on stderr; with `exact_name`, the diagnosis must name the kind itself.
void expect_child_abort(const std::string& what, const std::vector<strata_error_kind>& kinds,
                        const std::function<void*()>& prepare, const std::function<void(void*)>& act,
                        bool exact_name = false) {
  Shared* sh = shared_page();
  sh->addr = nullptr;
  st::ChildResult r = st::run_in_child([&] {
    void* bad = prepare();
    sh->addr = bad;
    __sync_synchronize();
    if (!bad) ::_exit(3);
    act(bad);
  });
  std::string addr = st::fmt_ptr(sh->addr);
  INFO("case: " << what << ", address " << addr << ", child: " << r.describe());
  REQUIRE(sh->addr != nullptr);
  CHECK(r.signaled(SIGABRT));
  CHECK(r.err.find(addr) != std::string::npos);
  std::string low = st::lower(r.err);
  bool has_word = false;
  for (const std::string& w : words_for(kinds))
    if (!w.empty() && low.find(w) != std::string::npos) has_word = true;
  CHECK(has_word);
  if (exact_name)
    for (strata_error_kind k : kinds) CHECK(low.find(st::lower(strata_error_kind_name(k))) != std::string::npos);
}

void expect_default_abort(const BadPointer& c, bool use_realloc) {
  expect_child_abort(std::string(c.name) + (use_realloc ? " (strata_realloc)" : " (strata_free)"), c.kinds, c.prepare,
                     [use_realloc](void* bad) {
                       if (use_realloc) {
                         void* q = strata_realloc(bad, 100);
                         (void)q;
                       } else {
                         strata_free(bad);
                       }
                     });
}

// ---- in-process custom handler -------------------------------------------

struct Recorded {
  int calls = 0;
  strata_error_kind kind = STRATA_ERROR_NONE;
  const void* address = nullptr;
  std::string operation;
  std::string message;
  void* user = nullptr;
};
Recorded g_rec;

void recording_handler(const strata_error_t* e, void* user) {
  ++g_rec.calls;
  g_rec.kind = e->kind;
  g_rec.address = e->address;
  g_rec.operation = e->operation ? e->operation : "";
  g_rec.message = e->message ? e->message : "";
  g_rec.user = user;
}

struct HandlerScope {
  strata_error_handler_t prev;
  explicit HandlerScope(void* user) { prev = strata_set_error_handler(recording_handler, user); }
  ~HandlerScope() { strata_set_error_handler(prev, nullptr); }
};

bool kind_ok(strata_error_kind k, const std::vector<strata_error_kind>& kinds) {
  for (strata_error_kind a : kinds)
    if (a == k) return true;
  return false;
}

// The heap keeps working: fresh blocks are distinct, usable and keep content.
void check_heap_still_works(std::size_t related_size) {
  struct B { void* p; std::size_t n; };
  std::vector<B> v;
  std::set<void*> seen;
  auto add = [&](std::size_t n) {
    void* p = strata_malloc(n);
    REQUIRE(p != nullptr);
    REQUIRE(seen.insert(p).second);  // a double-freed block must not come back twice
    REQUIRE(strata_usable_size(p) >= n);
    st::fill(p, n, st::block_seed(p, n));
    v.push_back({p, n});
  };
  // Enough blocks of the related size to reuse whatever the bad call freed.
  int count = related_size == 0 ? 0 : related_size <= st::kSmallMax ? 300 : related_size <= 300000 ? 40 : 4;
  for (int i = 0; i < count; ++i) add(related_size);
  for (std::size_t n : {16, 64, 100, 1000, 2624, 2625, 30000, 50000, 200000, 600000, 2 << 20})
    for (int i = 0; i < 4; ++i) add(n);
  for (const B& b : v) {
    REQUIRE(st::check(b.p, b.n, st::block_seed(b.p, b.n)));
    strata_free(b.p);
  }
}

}  // namespace

TEST_CASE("default handler: bad pointer to strata_free aborts with the address and a diagnosis",
          "[corruption][default]") {
  for (const BadPointer& c : cases()) expect_default_abort(c, false);
}

TEST_CASE("default handler: bad pointer to strata_realloc aborts with the address and a diagnosis",
          "[corruption][default]") {
  for (const BadPointer& c : cases()) expect_default_abort(c, true);
}

TEST_CASE("default handler: block of another pool to strata_pool_free aborts", "[corruption][default]") {
  Shared* sh = shared_page();
  st::ChildResult r = st::run_in_child([&] {
    strata_pool_t* a = strata_pool_create();
    strata_pool_t* b = strata_pool_create();
    void* p = strata_pool_malloc(a, 100);
    sh->addr = p;
    strata_pool_free(b, p);
  });
  std::string addr = st::fmt_ptr(sh->addr);
  INFO("address " << addr << ", child: " << r.describe());
  CHECK(r.signaled(SIGABRT));
  CHECK(r.err.find(addr) != std::string::npos);
  CHECK(st::lower(r.err).find("pool") != std::string::npos);
}

TEST_CASE("a valid free in a child does not abort (control)", "[corruption][default]") {
  st::ChildResult r = st::run_in_child([] {
    void* p = strata_malloc(100);
    void* q = strata_malloc(100000);
    void* l = strata_malloc(3 << 20);
    strata_free(p);
    strata_free(q);
    strata_free(l);
  });
  INFO(r.describe());
  CHECK(r.exited(0));
  CHECK(r.err.empty());
}

TEST_CASE("custom handler: every bad pointer is reported and the program continues", "[corruption][handler]") {
  int user_token = 42;
  for (const BadPointer& c : cases()) {
    HandlerScope scope(&user_token);
    void* bad = c.prepare();
    INFO("case: " << c.name << ", address " << bad);

    g_rec = Recorded{};
    strata_free(bad);
    INFO("free reported: calls " << g_rec.calls << " kind " << g_rec.kind << " op '" << g_rec.operation << "' msg '"
                                 << g_rec.message << "'");
    CHECK(g_rec.calls == 1);
    CHECK(kind_ok(g_rec.kind, c.kinds));
    CHECK(g_rec.address == bad);
    CHECK(g_rec.operation == "strata_free");
    CHECK(!g_rec.message.empty());
    CHECK(g_rec.user == &user_token);

    g_rec = Recorded{};
    void* q = strata_realloc(bad, 100);
    INFO("realloc reported: calls " << g_rec.calls << " kind " << g_rec.kind << " op '" << g_rec.operation << "'");
    CHECK(q == nullptr);
    CHECK(g_rec.calls == 1);
    CHECK(kind_ok(g_rec.kind, c.kinds));
    CHECK(g_rec.address == bad);
    CHECK(g_rec.operation == "strata_realloc");

    // A size the block would keep in place: the case strata_realloc decides
    // on its fast path, which must check as much as the slow one.
    if (c.related_size) {
      g_rec = Recorded{};
      q = strata_realloc(bad, c.related_size);
      INFO("realloc to " << c.related_size << " reported: calls " << g_rec.calls << " kind " << g_rec.kind);
      CHECK(q == nullptr);
      CHECK(g_rec.calls == 1);
      CHECK(kind_ok(g_rec.kind, c.kinds));
      CHECK(g_rec.address == bad);
    }

    check_heap_still_works(c.related_size);
  }
  for (void* p : g_glibc_blocks) ::free(p);
  g_glibc_blocks.clear();
}

TEST_CASE("custom handler: usable_size of a bad pointer is reported and returns 0", "[corruption][handler]") {
  HandlerScope scope(nullptr);
  alignas(16) static char buf[64];
  g_rec = Recorded{};
  CHECK(strata_usable_size(buf) == 0);
  CHECK(g_rec.calls == 1);
  CHECK(g_rec.kind == STRATA_ERROR_FOREIGN_POINTER);
  CHECK(g_rec.address == static_cast<void*>(buf));
  CHECK(g_rec.operation == "strata_usable_size");
  // A pointer inside a live block of each tier.
  for (std::size_t n : {std::size_t{64}, std::size_t{5000}, 2 * st::MiB}) {
    INFO("interior pointer of a live block of " << n << " bytes");
    void* in = interior_of(n, 48);
    g_rec = Recorded{};
    CHECK(strata_usable_size(in) == 0);
    CHECK(g_rec.calls == 1);
    CHECK(g_rec.kind == STRATA_ERROR_INTERIOR_POINTER);
    CHECK(g_rec.address == in);
    CHECK(g_rec.operation == "strata_usable_size");
    // and the block itself is still live
    g_rec = Recorded{};
    void* start = static_cast<char*>(in) - 48;
    CHECK(strata_usable_size(start) >= n);
    strata_free(start);
    CHECK(g_rec.calls == 0);
  }
}

TEST_CASE("custom handler: a block of another pool is WRONG_POOL and stays live", "[corruption][handler]") {
  HandlerScope scope(nullptr);
  strata_pool_t* a = strata_pool_create();
  strata_pool_t* b = strata_pool_create();
  REQUIRE(a);
  REQUIRE(b);
  for (std::size_t n : {std::size_t{100}, std::size_t{50000}, std::size_t{2} << 20}) {
    void* p = strata_pool_malloc(a, n);
    REQUIRE(p != nullptr);
    st::fill(p, n, n);
    g_rec = Recorded{};
    strata_pool_free(b, p);
    CHECK(g_rec.calls == 1);
    CHECK(g_rec.kind == STRATA_ERROR_WRONG_POOL);
    CHECK(g_rec.address == p);
    g_rec = Recorded{};
    CHECK(strata_pool_realloc(b, p, n * 2) == nullptr);
    CHECK(g_rec.calls == 1);
    CHECK(g_rec.kind == STRATA_ERROR_WRONG_POOL);
    // process-heap block given to a pool
    void* h = strata_malloc(n);
    REQUIRE(h);
    g_rec = Recorded{};
    strata_pool_free(a, h);
    CHECK(g_rec.calls == 1);
    CHECK(g_rec.kind == STRATA_ERROR_WRONG_POOL);
    // both blocks are still live and intact
    CHECK(st::check(p, n, n));
    CHECK(strata_pool_of(p) == a);
    CHECK(strata_pool_of(h) == nullptr);
    CHECK(strata_usable_size(h) >= n);
    strata_pool_free(a, p);
    strata_free(h);
  }
  CHECK(g_rec.calls == 1);  // no spurious reports for the valid frees
  strata_pool_destroy(a);
  strata_pool_destroy(b);
}

TEST_CASE("error kind names are distinct and non-empty", "[corruption]") {
  // Every kind of strata.h, STRATA_ERROR_NONE to the last, STRATA_ERROR_WRONG_SIZE.
  const strata_error_kind kinds[] = {
      STRATA_ERROR_NONE,         STRATA_ERROR_FOREIGN_POINTER, STRATA_ERROR_INTERIOR_POINTER,
      STRATA_ERROR_DOUBLE_FREE,  STRATA_ERROR_FREED_MEMORY,    STRATA_ERROR_WRONG_POOL,
      STRATA_ERROR_CORRUPTION,   STRATA_ERROR_WRONG_SIZE};
  std::set<std::string> names;
  for (strata_error_kind k : kinds) {
    const char* n = strata_error_kind_name(k);
    INFO("kind " << static_cast<int>(k));
    REQUIRE(n != nullptr);
    REQUIRE(std::strlen(n) > 0);
    CHECK(names.insert(n).second);
  }
  CHECK(names.size() == 8);
  const std::string unknown = strata_error_kind_name(static_cast<strata_error_kind>(STRATA_ERROR_WRONG_SIZE + 1));
  CHECK(names.count(unknown) == 0);  // past the last kind: no kind's name
  CHECK(st::lower(strata_error_kind_name(STRATA_ERROR_DOUBLE_FREE)).find("double") != std::string::npos);
  CHECK(st::lower(strata_error_kind_name(STRATA_ERROR_CORRUPTION)).find("corrupt") != std::string::npos);
  CHECK(st::lower(strata_error_kind_name(STRATA_ERROR_WRONG_SIZE)).find("size") != std::string::npos);
}

TEST_CASE("set_error_handler returns the previous handler", "[corruption][handler]") {
  strata_error_handler_t prev = strata_set_error_handler(recording_handler, nullptr);
  CHECK(prev != recording_handler);
  strata_error_handler_t mine = strata_set_error_handler(prev, nullptr);
  CHECK(mine == recording_handler);
}

// ---- a sized free naming more bytes than the block has: WRONG_SIZE ---------

namespace {

struct SizedCase {
  const char* name;
  std::size_t n;      // the block's request
  std::size_t extra;  // bytes named beyond its usable size
  std::size_t strata_heap_summary_t::*blocks;
};
const SizedCase kSizedCases[] = {
    {"small", 64, 1, &strata_heap_summary_t::small_blocks},
    {"small", 64, 4096, &strata_heap_summary_t::small_blocks},
    {"small (largest class)", st::kSmallMax, 16, &strata_heap_summary_t::small_blocks},
    {"medium", 10000, 1, &strata_heap_summary_t::medium_blocks},
    {"medium", 10000, 300000, &strata_heap_summary_t::medium_blocks},
    {"medium (smallest)", st::kSmallMax + 1, 1, &strata_heap_summary_t::medium_blocks},
    {"large", 4 * st::MiB, 1, &strata_heap_summary_t::large_blocks},
    {"large", 4 * st::MiB, 8 * st::MiB, &strata_heap_summary_t::large_blocks},
};

void* block_of(strata_pool_t* pool, std::size_t n) { return pool ? strata_pool_malloc(pool, n) : strata_malloc(n); }

}  // namespace

TEST_CASE("default handler: a sized free larger than the block aborts with WRONG_SIZE", "[corruption][default]") {
  for (const SizedCase& c : kSizedCases) {
    expect_child_abort(std::string("free_sized, ") + c.name + " block of " + std::to_string(c.n) + " + " +
                           std::to_string(c.extra),
                       {STRATA_ERROR_WRONG_SIZE}, [&c] { return strata_malloc(c.n); },
                       [&c](void* p) { strata_free_sized(p, strata_usable_size(p) + c.extra); },
                       /*exact_name=*/true);
  }
}

TEST_CASE("custom handler: a sized free larger than the block is WRONG_SIZE, and the block is freed",
          "[corruption][handler]") {
  int user_token = 7;
  HandlerScope scope(&user_token);
  for (const SizedCase& c : kSizedCases) {
    for (bool in_pool : {false, true}) {
      INFO("case: " << c.name << " block of " << c.n << " bytes, " << c.extra << " too many, "
                    << (in_pool ? "in a pool" : "process heap"));
      strata_pool_t* pool = in_pool ? strata_pool_create() : nullptr;
      if (in_pool) REQUIRE(pool != nullptr);
      void* p = block_of(pool, c.n);
      REQUIRE(p != nullptr);
      const std::size_t usable = strata_usable_size(p);
      REQUIRE(usable >= c.n);
      g_rec = Recorded{};
      strata_free_sized(p, usable + c.extra);
      INFO("reported: calls " << g_rec.calls << " kind " << g_rec.kind << " op '" << g_rec.operation << "'");
      CHECK(g_rec.calls == 1);
      CHECK(g_rec.kind == STRATA_ERROR_WRONG_SIZE);
      CHECK(g_rec.address == p);
      CHECK(g_rec.operation == "free_sized");
      CHECK(!g_rec.message.empty());
      CHECK(g_rec.user == &user_token);
      // Freed all the same: the pool counts no block, and a second free of
      // it is a double free.
      if (in_pool) {
        const strata_heap_summary_t s = st::summary(pool);
        CHECK(s.*c.blocks == 0);
        CHECK(s.in_use_bytes == 0);
      }
      g_rec = Recorded{};
      strata_free(p);
      CHECK(g_rec.calls == 1);
      CHECK(kind_ok(g_rec.kind, {STRATA_ERROR_DOUBLE_FREE, STRATA_ERROR_FREED_MEMORY}));
      // Control: the usable size and the requested size are right sizes.
      void* q = block_of(pool, c.n);
      void* r = block_of(pool, c.n);
      REQUIRE(q != nullptr);
      REQUIRE(r != nullptr);
      g_rec = Recorded{};
      strata_free_sized(q, strata_usable_size(q));
      strata_free_sized(r, c.n);
      CHECK(g_rec.calls == 0);
      if (in_pool) {
        CHECK(st::summary(pool).*c.blocks == 0);
        strata_pool_destroy(pool);
      }
    }
    check_heap_still_works(c.n);
  }
}

// ---- metadata next to a block overwritten: CORRUPTION ----------------------
//
// A medium boundary tag is believed only if its size agrees with the pool's
// start bitmap and the neighbours' tags (medium_extent_valid, check_locked in
// medium.cpp), a large header only if it agrees with the chunk map
// (large_header_valid in classify.cpp): zeroed, garbage (0x41s, 0xffs, a
// 16-byte overflow of the block before) or forged sizes (made larger or
// smaller with the in-use bit kept) are all CORRUPTION (issue 23).

namespace {

// The layout these cases overwrite (mm/src/heap.hpp): a medium block's
// 16-byte tag {prev_size, size_flags} sits right before the pointer, its
// size in the bits above the low 8 and bit 0 "in use"; a large block of
// default alignment has its LargeBlock header 64 bytes below the pointer,
// the first word the magic "STRLARGE".
constexpr std::uint64_t kLargeMagicWord = 0x5354524c41524745ull;
constexpr std::size_t kMediumTag = 16, kLargeHeader = 64;

struct Overwritten {
  void* p = nullptr;
  std::size_t n = 0;
  std::vector<std::pair<std::uint64_t*, std::uint64_t>> saved;  // word, its value before
  void restore() {
    for (auto& [w, v] : saved) *w = v;
  }
};

struct CorruptCase {
  const char* name;
  std::size_t n;
  bool in_pool;
  bool large;
  // overwrites the metadata of the live block o.p; false: the layout is not
  // the expected one (nothing was written)
  bool (*overwrite)(Overwritten& o);
};

bool zero_medium_size_word(Overwritten& o) {
  auto* w = static_cast<std::uint64_t*>(o.p) - 1;  // size_flags
  const std::size_t usable = strata_usable_size(o.p);
  if ((*w & ~std::uint64_t{255}) != usable + kMediumTag || !(*w & 1)) return false;
  o.saved.push_back({w, *w});
  *w = 0;
  return true;
}

bool zero_medium_tag(Overwritten& o) {
  auto* w = static_cast<std::uint64_t*>(o.p) - 2;  // prev_size, size_flags
  if ((w[1] & ~std::uint64_t{255}) != strata_usable_size(o.p) + kMediumTag) return false;
  o.saved.push_back({&w[0], w[0]});
  o.saved.push_back({&w[1], w[1]});
  std::memset(w, 0, kMediumTag);
  return true;
}

// The whole tag, or the size word alone, set to `byte`s.
bool fill_medium_tag(Overwritten& o, int byte, bool size_word_only) {
  auto* w = static_cast<std::uint64_t*>(o.p) - 2;  // prev_size, size_flags
  if ((w[1] & ~std::uint64_t{255}) != strata_usable_size(o.p) + kMediumTag) return false;
  o.saved.push_back({&w[0], w[0]});
  o.saved.push_back({&w[1], w[1]});
  if (size_word_only)
    std::memset(&w[1], byte, 8);
  else
    std::memset(w, byte, kMediumTag);
  return true;
}

// What a 16-byte overflow of the block before writes: text.
bool overflow_into_medium_tag(Overwritten& o) {
  auto* w = static_cast<std::uint64_t*>(o.p) - 2;
  if ((w[1] & ~std::uint64_t{255}) != strata_usable_size(o.p) + kMediumTag) return false;
  o.saved.push_back({&w[0], w[0]});
  o.saved.push_back({&w[1], w[1]});
  std::memcpy(w, "overflowing text", kMediumTag);
  return true;
}

// The size word changed by `delta` bytes, its flags (in use) kept.
bool forge_medium_size(Overwritten& o, std::int64_t delta) {
  auto* w = static_cast<std::uint64_t*>(o.p) - 1;
  if ((*w & ~std::uint64_t{255}) != strata_usable_size(o.p) + kMediumTag || !(*w & 1)) return false;
  o.saved.push_back({w, *w});
  *w = static_cast<std::uint64_t>(static_cast<std::int64_t>(*w) + delta);
  return true;
}

// A large header's word `index` (LargeBlock: magic, heap, next, prev, base,
// map_size, user, requested) changed by `delta`.
bool forge_large_word(Overwritten& o, int index, std::int64_t delta) {
  auto* w = reinterpret_cast<std::uint64_t*>(static_cast<char*>(o.p) - kLargeHeader);
  if (w[0] != kLargeMagicWord) return false;
  o.saved.push_back({&w[index], w[index]});
  w[index] = static_cast<std::uint64_t>(static_cast<std::int64_t>(w[index]) + delta);
  return true;
}

bool overwrite_large_magic(Overwritten& o, std::uint64_t with) {
  auto* w = reinterpret_cast<std::uint64_t*>(static_cast<char*>(o.p) - kLargeHeader);
  if (*w != kLargeMagicWord) return false;
  o.saved.push_back({w, *w});
  *w = with;
  return true;
}

const CorruptCase kCorruptCases[] = {
    {"medium 10000 B, tag size word zeroed", 10000, false, false, zero_medium_size_word},
    {"medium (smallest), tag size word zeroed", st::kSmallMax + 1, false, false, zero_medium_size_word},
    {"medium 200000 B, tag size word zeroed", 200000, false, false, zero_medium_size_word},
    {"medium 10000 B, whole tag zeroed", 10000, false, false, zero_medium_tag},
    {"pool medium 10000 B, tag size word zeroed", 10000, true, false, zero_medium_size_word},
    {"medium 10000 B, tag set to 0x41s", 10000, false, false, [](Overwritten& o) { return fill_medium_tag(o, 0x41, false); }},
    {"medium 10000 B, tag set to 0xffs", 10000, false, false, [](Overwritten& o) { return fill_medium_tag(o, 0xff, false); }},
    {"medium 10000 B, size word set to 0x41s", 10000, false, false,
     [](Overwritten& o) { return fill_medium_tag(o, 0x41, true); }},
    {"medium 200000 B, tag overwritten by the block before", 200000, false, false, overflow_into_medium_tag},
    {"medium 10000 B, size + 64 KiB (in use kept)", 10000, false, false,
     [](Overwritten& o) { return forge_medium_size(o, 65536); }},
    {"medium 10000 B, size + 256 (in use kept)", 10000, false, false,
     [](Overwritten& o) { return forge_medium_size(o, 256); }},
    {"medium 200000 B, size - 256 (in use kept)", 200000, false, false,
     [](Overwritten& o) { return forge_medium_size(o, -256); }},
    {"pool medium 10000 B, size + 64 KiB", 10000, true, false, [](Overwritten& o) { return forge_medium_size(o, 65536); }},
    {"large 4 MiB, map_size + 4 MiB", 4 * st::MiB, false, true,
     [](Overwritten& o) { return forge_large_word(o, 5, 4 * st::MiB); }},
    {"large 4 MiB, map_size - 64 KiB", 4 * st::MiB, false, true,
     [](Overwritten& o) { return forge_large_word(o, 5, -65536); }},
    {"large 4 MiB, base - 64 KiB", 4 * st::MiB, false, true,
     [](Overwritten& o) { return forge_large_word(o, 4, -65536); }},
    {"large 4 MiB, heap pointer shifted", 4 * st::MiB, false, true,
     [](Overwritten& o) { return forge_large_word(o, 1, 4096); }},
    {"large 4 MiB, magic overwritten with 0x41s", 4 * st::MiB, false, true,
     [](Overwritten& o) { return overwrite_large_magic(o, 0x4141414141414141ull); }},
    {"large 4 MiB, magic zeroed", 4 * st::MiB, false, true, [](Overwritten& o) { return overwrite_large_magic(o, 0); }},
    {"large 20 MiB (not parked), magic overwritten", 20 * st::MiB, false, true,
     [](Overwritten& o) { return overwrite_large_magic(o, 0x0123456789abcdefull); }},
    {"pool large 4 MiB, magic overwritten", 4 * st::MiB, true, true,
     [](Overwritten& o) { return overwrite_large_magic(o, 0x4141414141414141ull); }},
};

// A live block of the case's size (in a fresh pool if it says so) with its
// content set and its metadata overwritten; o.p null if the layout was not
// the expected one.
Overwritten corrupt(const CorruptCase& c) {
  Overwritten o;
  strata_pool_t* pool = c.in_pool ? strata_pool_create() : nullptr;  // lives on (like pool_double_free_of)
  if (c.in_pool && !pool) return o;
  o.p = block_of(pool, c.n);
  o.n = c.n;
  if (!o.p) return o;
  st::fill(o.p, c.n, st::block_seed(o.p, c.n));
  if (!c.overwrite(o)) o.p = nullptr;
  return o;
}

}  // namespace

TEST_CASE("default handler: a free after a medium tag or large header was overwritten aborts with CORRUPTION",
          "[corruption][default]") {
  for (const CorruptCase& c : kCorruptCases)
    expect_child_abort(std::string(c.name) + " (strata_free)", {STRATA_ERROR_CORRUPTION},
                       [&c] { return corrupt(c).p; }, [](void* p) { strata_free(p); }, /*exact_name=*/true);
}

TEST_CASE("custom handler: a medium tag or large header overwritten is CORRUPTION, and nothing is freed",
          "[corruption][handler]") {
  int user_token = 9;
  HandlerScope scope(&user_token);
  for (const CorruptCase& c : kCorruptCases) {
    INFO("case: " << c.name);
    Overwritten o = corrupt(c);
    REQUIRE(o.p != nullptr);  // the layout is the one described above
    INFO("address " << o.p);

    g_rec = Recorded{};
    strata_free(o.p);
    INFO("free reported: calls " << g_rec.calls << " kind " << g_rec.kind << " op '" << g_rec.operation << "' msg '"
                                 << g_rec.message << "'");
    CHECK(g_rec.calls == 1);
    CHECK(g_rec.kind == STRATA_ERROR_CORRUPTION);
    CHECK(g_rec.address == o.p);
    CHECK(g_rec.operation == "strata_free");
    CHECK(!g_rec.message.empty());
    CHECK(g_rec.user == &user_token);

    g_rec = Recorded{};
    CHECK(strata_usable_size(o.p) == 0);
    CHECK(g_rec.calls == 1);
    CHECK(g_rec.kind == STRATA_ERROR_CORRUPTION);
    CHECK(g_rec.address == o.p);

    // A realloc checks the tag or header too.
    {
      g_rec = Recorded{};
      CHECK(strata_realloc(o.p, 100) == nullptr);
      CHECK(g_rec.calls == 1);
      CHECK(g_rec.kind == STRATA_ERROR_CORRUPTION);
      CHECK(g_rec.address == o.p);
      CHECK(g_rec.operation == "strata_realloc");
    }

    // The reported calls left the block as it was: with its metadata mended
    // it is a live block with its content, and frees without a report.
    o.restore();
    g_rec = Recorded{};
    CHECK(strata_usable_size(o.p) >= c.n);
    CHECK(st::check(o.p, c.n, st::block_seed(o.p, c.n)));
    strata_free(o.p);
    CHECK(g_rec.calls == 0);
    check_heap_still_works(c.n);
  }
}
