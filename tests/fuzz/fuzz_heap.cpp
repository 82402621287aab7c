// fuzz_heap: libFuzzer's target for strata (issue 23).  The input is two
// streams of operations (its halves), run at once by two threads against
// libstrata.a: malloc, calloc, realloc, aligned_alloc, free, a pool's
// malloc / free / reset / destroy, a block handed to the other thread to
// free — and injected faults: bytes written into a medium block's boundary
// tag or a large block's header before its free, into a medium or large
// block just after its free (a use after free), and past a live medium
// block's end into the next block's tag (an overflow).  Every live block is kept in
// a shadow map: a block strata hands out must overlap no live block (trap),
// and, until a fault was injected, keep its contents.  strata must report
// (the handler counts) or go on correctly; it must never crash or hang.
//
// A small block gets whole words after its free (its cookie, its link or
// both, random): a part of the link's low byte is the one change the small
// fast path's check lets through with probability 1/16 (docs/security.md).
#include <strata/strata.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace {

// The handler runs in the thread whose call found the error; a free may
// report other blocks too (a flush of its cache), so the address counts.
// FUZZ_NO_FAULTS=1: no injected faults (a reported block or a dropped list
// leaks by design; without faults the resident set stays flat).
const bool g_no_faults = std::getenv("FUZZ_NO_FAULTS") != nullptr;
thread_local const void* t_watch = nullptr;
thread_local bool t_watched_reported = false;
void on_error(const strata_error_t* e, void*) {
  if (e->address == t_watch) t_watched_reported = true;
}

// Every block strata has handed out and not taken back (leaked ones too).
std::mutex g_live_lock;
std::map<std::uintptr_t, std::size_t> g_live;
std::atomic<bool> g_tainted{false};  // a fault was injected: contents may change

void track(void* p, std::size_t n) {
  if (!p) return;
  if (n == 0) n = 1;
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::lock_guard<std::mutex> g(g_live_lock);
  auto it = g_live.upper_bound(a);
  if (it != g_live.end() && it->first < a + n) __builtin_trap();  // overlaps the next live block
  if (it != g_live.begin()) {
    --it;
    if (it->first + it->second > a) __builtin_trap();  // overlaps the previous one
  }
  g_live[a] = n;
}
void untrack(void* p) {
  std::lock_guard<std::mutex> g(g_live_lock);
  g_live.erase(reinterpret_cast<std::uintptr_t>(p));
}

struct Slot {
  void* p = nullptr;
  std::size_t n = 0;
  std::uint8_t seed = 0;
  strata_pool_t* pool = nullptr;  // the pool it came from, or null
};

// The contents: whole for blocks up to 4 KiB, the first and last 256 bytes
// of bigger ones (a fuzzer must run fast).
void fill(const Slot& s) {
  auto* b = static_cast<unsigned char*>(s.p);
  if (s.n <= 4096) return (void)std::memset(b, s.seed, s.n);
  std::memset(b, s.seed, 256);
  std::memset(b + s.n - 256, s.seed, 256);
}
void check_range(const unsigned char* b, std::size_t from, std::size_t to, std::uint8_t seed) {
  for (std::size_t i = from; i < to; ++i)
    if (b[i] != seed) __builtin_trap();  // strata changed a live block's contents
}
void check(const Slot& s) {
  if (g_tainted.load(std::memory_order_relaxed)) return;
  const auto* b = static_cast<const unsigned char*>(s.p);
  if (s.n <= 4096) return check_range(b, 0, s.n, s.seed);
  check_range(b, 0, 256, s.seed);
  check_range(b, s.n - 256, s.n, s.seed);
}

// Held shared by every operation, alone by a fault.
std::shared_mutex g_gate;

// The other thread's mailbox: blocks handed over for it to free.
std::mutex g_mail_lock;
std::vector<void*> g_mail;

struct Reader {
  const std::uint8_t* d;
  std::size_t n, i = 0;
  bool more() const { return i < n; }
  std::uint8_t u8() { return i < n ? d[i++] : 0; }
  std::size_t size() {
    // Mostly small, sometimes medium, now and then large.
    std::uint8_t k = u8(), a = u8(), b = u8();
    std::size_t v = static_cast<std::size_t>(a) | static_cast<std::size_t>(b) << 8;
    if (k < 160) return v % 1025;
    if (k < 240) return 1025 + v * 4 % 300000;
    return 300000 + static_cast<std::size_t>(v) * 16;  // up to ~1.3 MiB
  }
};

// The tier of a live block, from its usable size (a realloc in place may
// leave a block in a tier its last size would not pick): above the largest
// small block (2,624 bytes, kMaxSmallSize in mm/src/config.hpp) a medium
// block with a 16-byte boundary tag before it and the next block's after it;
// above the largest medium block (266,224 bytes, kMaxMediumSize) a large
// block with a 64-byte header.
enum class Tier { kSmall, kMedium, kLarge };
Tier tier_of(void* p) {
  std::size_t u = strata_usable_size(p);
  return u <= 2624 ? Tier::kSmall : u <= 266224 ? Tier::kMedium : Tier::kLarge;
}

void release(Slot& s) {
  if (!s.p) return;
  check(s);
  untrack(s.p);
  if (s.pool)
    strata_pool_free(s.pool, s.p);
  else
    strata_free(s.p);
  s = Slot{};
}

void run(const std::uint8_t* data, std::size_t size) {
  Reader r{data, size};
  Slot slots[32];
  strata_pool_t* pool = nullptr;
  while (r.more()) {
    std::uint8_t op = r.u8();
    Slot& s = slots[r.u8() % 32];
    const unsigned kind = op % (g_no_faults ? 10 : 13);
    // A fault (kinds 10 to 12) is injected while the other thread is
    // outside strata: the claim is about corruption strata finds when it
    // next reads the memory, not about a write racing its critical sections
    // (docs/security.md, threat model).
    std::shared_lock<std::shared_mutex> inside(g_gate, std::defer_lock);
    std::unique_lock<std::shared_mutex> alone(g_gate, std::defer_lock);
    if (kind >= 10) alone.lock(); else inside.lock();
    switch (kind) {
      case 0: case 1: case 2: {  // malloc
        release(s);
        s.n = r.size();
        s.p = strata_malloc(s.n);
        if (!s.p) break;
        s.seed = r.u8();
        track(s.p, strata_usable_size(s.p));
        fill(s);
        break;
      }
      case 3: {  // calloc
        release(s);
        s.n = r.size();
        s.p = strata_calloc(1, s.n);
        if (!s.p) break;
        track(s.p, strata_usable_size(s.p));
        // (Not once a fault was injected: a use after free of the other
        // thread's may land in this block between strata's zeroing and the
        // shadow's record of it.)
        if (!g_tainted.load(std::memory_order_relaxed))
          check_range(static_cast<unsigned char*>(s.p), 0, s.n < 4096 ? s.n : 4096, 0);
        s.seed = 0;
        fill(s);
        break;
      }
      case 4: {  // realloc
        if (!s.p || s.pool) break;
        check(s);
        std::size_t n = r.size();
        untrack(s.p);
        void* q = strata_realloc(s.p, n);
        if (!q && n) {  // failed: the old block stays
          track(s.p, strata_usable_size(s.p));
          break;
        }
        if (!q) { s = Slot{}; break; }
        s.p = q;
        std::size_t keep = n < s.n ? n : s.n;
        if (!g_tainted.load(std::memory_order_relaxed))  // the first bytes moved with it
          check_range(static_cast<unsigned char*>(q), 0, keep < 256 ? keep : 256, s.seed);
        s.n = n;
        track(s.p, strata_usable_size(s.p));
        fill(s);
        break;
      }
      case 5: {  // aligned_alloc
        release(s);
        std::size_t align = std::size_t{16} << (r.u8() % 12);
        s.n = r.size();
        s.p = strata_aligned_alloc(align, s.n);
        if (!s.p) break;
        if (reinterpret_cast<std::uintptr_t>(s.p) % align) __builtin_trap();
        s.seed = r.u8();
        track(s.p, strata_usable_size(s.p));
        fill(s);
        break;
      }
      case 6: release(s); break;
      case 7: {  // a pool's block
        if (!pool) pool = strata_pool_create();
        release(s);
        s.n = r.size();
        s.p = strata_pool_malloc(pool, s.n);
        if (!s.p) break;
        s.pool = pool;
        s.seed = r.u8();
        track(s.p, strata_usable_size(s.p));
        fill(s);
        break;
      }
      case 8: {  // reset or destroy the pool: its blocks go
        if (!pool) break;
        for (Slot& t : slots)
          if (t.p && t.pool == pool) {
            untrack(t.p);
            t = Slot{};
          }
        if (r.u8() & 1) {
          strata_pool_reset(pool);
        } else {
          strata_pool_destroy(pool);
          pool = nullptr;
        }
        break;
      }
      case 9: {  // hand a block to the other thread
        if (!s.p || s.pool) break;
        check(s);
        untrack(s.p);
        {
          std::lock_guard<std::mutex> g(g_mail_lock);
          g_mail.push_back(s.p);
        }
        s = Slot{};
        std::vector<void*> mine;
        {
          std::lock_guard<std::mutex> g(g_mail_lock);
          if (g_mail.size() > 4) mine.swap(g_mail);
        }
        for (void* p : mine) strata_free(p);
        break;
      }
      case 10: {  // a fault in a live block's metadata, then its free
        if (!s.p || s.pool) break;
        const Tier tier = tier_of(s.p);
        if (tier == Tier::kSmall) break;
        g_tainted = true;
        const std::size_t kept = strata_usable_size(s.p);
        // The medium tag (16 bytes), or the words of the large header strata
        // checks: magic, heap, next, prev, base, map_size, user (not the size
        // last asked for, which only the reports read, bounded).
        auto* meta = static_cast<unsigned char*>(s.p) - (tier == Tier::kLarge ? 64 : 16);
        std::size_t at, len = 1 + r.u8() % 8;
        if (tier == Tier::kLarge) {
          at = (r.u8() % 7) * 8;
        } else {
          at = r.u8() % 16;
          if (at + len > 16) len = 16 - at;
        }
        for (std::size_t i = 0; i < len; ++i) meta[at + i] ^= static_cast<unsigned char>(r.u8() | 1);
        // Out of the shadow before the free (the other thread may get the
        // memory at once), back in if strata reported and kept it.
        untrack(s.p);
        t_watch = s.p;
        t_watched_reported = false;
        strata_free(s.p);
        t_watch = nullptr;
        // Reported: strata keeps the block (a leak), it is live again in the
        // shadow; not reported: the fault was harmless and the block freed.
        if (t_watched_reported) track(s.p, kept);
        s = Slot{};
        break;
      }
      case 11: {  // a use after free
        if (!s.p || s.pool) break;
        g_tainted = true;
        void* p = s.p;
        std::size_t n = s.n;
        const Tier tier = tier_of(p);
        release(s);
        if (tier == Tier::kSmall) {  // a small block: in this thread's bin now
          if (n < 16) break;
          unsigned which = r.u8() % 3;  // the cookie, the link, or both
          std::uint64_t w[2];
          for (auto& x : w) x = std::uint64_t{r.u8()} << 56 | std::uint64_t{r.u8()} << 24 | r.u8() * 0x10101u;
          std::lock_guard<std::mutex> g(g_live_lock);
          auto it = g_live.upper_bound(reinterpret_cast<std::uintptr_t>(p) + 15);
          if (it != g_live.begin()) {  // reused already: leave it alone
            --it;
            if (it->first + it->second > reinterpret_cast<std::uintptr_t>(p)) break;
          }
          if (which != 1) std::memcpy(p, &w[0], 8);
          if (which != 0) std::memcpy(static_cast<char*>(p) + 8, &w[1], 8);
          break;
        }
        // Only where no other block can be yet: right after the free, this
        // thread's cache or the tier holds it.  The other thread may take a
        // medium block from the tier at once; its contents are then tainted.
        std::size_t len = 1 + r.u8() % 16, at = r.u8() % 32;
        if (at + len > n) break;
        std::lock_guard<std::mutex> g(g_live_lock);
        auto it = g_live.upper_bound(reinterpret_cast<std::uintptr_t>(p) + at + len - 1);
        if (it != g_live.begin()) {  // reused already: leave it alone
          --it;
          if (it->first + it->second > reinterpret_cast<std::uintptr_t>(p)) break;
        }
        // A freed block's memory may be unmapped already (a large block, an
        // empty medium pool), or be so at any moment (the other thread's
        // free may empty the pool): written through process_vm_writev,
        // which fails with EFAULT instead of faulting.
        unsigned char bytes[16];
        for (std::size_t i = 0; i < len; ++i) bytes[i] = r.u8();
        struct iovec local{bytes, len}, remote{static_cast<char*>(p) + at, len};
        (void)process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
        break;
      }
      case 12: {  // an overflow of a live medium block into the next block's tag
        if (!s.p || tier_of(s.p) != Tier::kMedium) break;
        g_tainted = true;
        // The 16 bytes after its usable end are the next block's tag (a
        // free run's, a live block's, or the pool's sentinel).  The block
        // stays live; strata must notice when it next believes that tag.
        auto* tag = static_cast<unsigned char*>(s.p) + strata_usable_size(s.p);
        std::size_t at = r.u8() % 16, len = 1 + r.u8() % 8;
        if (at + len > 16) len = 16 - at;
        for (std::size_t i = 0; i < len; ++i) tag[at + i] ^= static_cast<unsigned char>(r.u8() | 1);
        break;
      }
    }
  }
  std::shared_lock<std::shared_mutex> inside(g_gate);
  for (Slot& s : slots)
    if (s.p) release(s);
  if (pool) strata_pool_destroy(pool);
  strata_thread_flush();  // what its exit would flush, before the other thread's next fault
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  strata_set_error_handler(on_error, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t half = size / 2;
  std::thread other(run, data + half, size - half);
  run(data, half);
  other.join();
  std::vector<void*> mail;
  {
    std::lock_guard<std::mutex> g(g_mail_lock);
    mail.swap(g_mail);
  }
  for (void* p : mail) strata_free(p);
  // Blocks a fault left behind stay live in strata (reported, not freed):
  // forget them here, and start the next input with a clean shadow.
  std::lock_guard<std::mutex> g(g_live_lock);
  g_live.clear();
  g_tainted = false;
  return 0;
}
