// strata — compile-time configuration: every constant that ties the layout
// together, with static_asserts for the relations between them.
// Layer: bottom (included by everything in mm/src).
#pragma once
#include <cstddef>
#include <cstdint>

#ifndef STRATA_DEBUG_LEVEL
#define STRATA_DEBUG_LEVEL 0
#endif

namespace strata::detail {

inline constexpr int kDebugLevel = STRATA_DEBUG_LEVEL;
#ifndef STRATA_LINK_ROTATE
#define STRATA_LINK_ROTATE 0
#endif
// The bits a small block's stored free-list link is rotated by (CMake option
// STRATA_LINK_ROTATE; small.hpp, docs/security.md): 48 puts the stored
// word's two low bytes -- what an overflow of 9 to 13 bytes out of the block
// before reaches first -- on the decoded link's top 16 bits, which the pop's
// check requires to be zero.  0 by default: it costs 2 instructions a pair.
inline constexpr unsigned kLinkRotate = STRATA_LINK_ROTATE ? 48 : 0;

// Vocabulary (see docs/design.md):
//   chunk   64 KiB of address space, 64 KiB aligned; the unit of the chunk map.
//   span    one chunk holding equal-size small blocks of one size class.
//   pool    (medium) a 1.25 MiB mapping carved into 256-byte-granular blocks.
//   large   a block with a mapping of its own.
//   heap    the object that owns all of the above plus its thread caches.
inline constexpr unsigned kChunkShift = 16;
inline constexpr std::size_t kChunkSize = std::size_t{1} << kChunkShift;
inline constexpr std::size_t kPageSize = 4096;
inline constexpr std::size_t kMinAlign = 16;

// User address space covered by the chunk map: 48 bits (x86-64 4-level paging;
// mmap never returns higher addresses without a hint).
inline constexpr unsigned kAddressBits = 48;

// ---- small tier ----
inline constexpr std::size_t kMaxSmallSize = 2624;       // largest small block (bytes)
inline constexpr std::size_t kSpanHeaderSize = 256;      // first block offset inside a span
inline constexpr std::size_t kSpanSize = kChunkSize;     // one span == one chunk
inline constexpr std::size_t kThreadCacheBytesPerClass = 8192;  // batch = this / block size (clamped)
// Slow start of a thread's refills of one class: the first refill takes
// kCacheSlowStartBytes of blocks (at least one), each further one twice as
// many, until the full batch after kCacheSlowStartSteps refills.
inline constexpr std::size_t kCacheSlowStartBytes = 1024;
inline constexpr unsigned kCacheSlowStartSteps = 3;
// Empty small spans a heap keeps mapped: always kFreeSpansKept, and beyond
// that every span that went empty less than the purge delay ago
// (STRATA_PURGE_DELAY_MS, options.hpp: 1 s by default, like mimalloc's purge
// delay).  A heap whose spans empty and fill again all the time (CPython's
// object churn) would otherwise unmap and map spans by the thousand, each a
// system call, a TLB shootdown and up to 16 page faults (about 11 us each on
// the benchmark VM).  (Until issue 24 it also kept one per 4 spans in use
// however long they had been free: 78 spans, 5 MiB, in the RSS benchmark's
// flush phase with nothing live.)
inline constexpr unsigned kFreeSpansKept = 16;
// Spans in the first region mapped for spans; each later region doubles,
// up to 16 times this (4 MiB): a big heap maps its spans in few system calls.
inline constexpr unsigned kSpansPerMap = 4;

// ---- medium tier ----
inline constexpr std::size_t kMediumGranule = 256;
inline constexpr std::size_t kMediumHeaderSize = 16;     // boundary tag before each medium block
inline constexpr std::size_t kMediumPoolSize = 20 * kChunkSize;  // 1.25 MiB
// Pool data starts so that (data + header) is 4 KiB aligned: user pointers of
// medium blocks are then 256-byte aligned, which aligned allocation builds on.
inline constexpr std::size_t kMediumDataOffset = kPageSize - kMediumHeaderSize;
inline constexpr std::size_t kMediumPoolGranules =
    (kMediumPoolSize - kMediumDataOffset - kMediumHeaderSize) / kMediumGranule;
inline constexpr std::size_t kMaxMediumBlock = 260 * 1024;          // block bytes incl. header
inline constexpr std::size_t kMaxMediumSize = kMaxMediumBlock - kMediumHeaderSize;  // user bytes
inline constexpr unsigned kMediumBins = 1024;
inline constexpr unsigned kEmptyMediumPoolsKept = 1;  // per medium arena
// A free run at the end of a medium pool whose dirty pages reach this many
// bytes gives them back to the OS (madvise), as glibc trims the top of its
// heap at M_TRIM_THRESHOLD: memory a program freed stops counting in its RSS.
inline constexpr std::size_t kMediumTrimThreshold = 128 * 1024;
// The first bytes of such a free run stay dirty (glibc's M_TOP_PAD): the
// next allocations from the top of the pool reuse them without page faults.
// This is a pool's initial pad; each time a trim's pages are written again
// the pool's pad doubles (up to the pool), so a top that shrinks and grows
// over and over stops trimming and faulting its pages back in (producer/
// consumer patterns did: 8,500 madvise calls and 80,000 faults in a 2-second
// xmalloc run; a fault costs about 11 us on the benchmark VM).
inline constexpr std::size_t kMediumTopKeep = 64 * 1024;
// A pool's top is given back only once it has stayed free, and over the
// threshold, for this long (checked when medium blocks of its arena are
// freed): memory a program frees and soon allocates again (a phase of a
// long-running program, a burst of requests) keeps its pages instead of
// paying a page fault for each of them (about 11 us on the benchmark VM).
// strata_heap_trim / malloc_trim give the pages back at once.
inline constexpr std::uint64_t kMediumTrimDelayMs = 100;
// An aligned medium request looks at this many free blocks for an exact fit
// before it takes one big enough for any placement (medium.cpp, bin_find_aligned).
inline constexpr unsigned kMediumAlignedScan = 32;
inline constexpr unsigned kMediumArenas = 8;  // medium arenas per heap (at most; one per CPU in use), each with its own lock
static_assert((kMediumArenas & (kMediumArenas - 1)) == 0);

// Bytes of medium blocks a thread cache keeps.  256 KiB measured the same
// speed with 7-11 % more peak RSS on the Larson workload (a cached block also
// keeps its pool from coalescing the space around it).  A cache at the
// budget gives back all its medium blocks at the next free and keeps the
// new block, whatever its size (the last one may take it over the budget by
// up to the largest medium block): a program repeating one size is served
// from the cache whatever it used before (a 256 KiB malloc+free pair took
// 69 ns through the arena's lock, 8 ns through the cache).
inline constexpr std::size_t kMediumCacheBudget = std::size_t{128} << 10;

// Bytes a thread hands out of (or takes back into) the shared tiers before
// the heap's count of them, and its peak, hears of it: one shared atomic
// update per this many bytes instead of one per refill or medium block
// (with 4 threads on 2 cores that cache line's round trips were 3 % of the
// xmalloc workload's time).  The peak in a summary is then exact to within
// this much per thread.
inline constexpr std::ptrdiff_t kCentralAccountSlack = 64 * 1024;

// ---- large tier ----
// The largest request strata tries to serve: 64 TiB, half of the 47-bit
// user address space.  Anything larger fails at once (ENOMEM) without a
// system call; anything up to it that the machine cannot back fails in the
// kernel's overcommit check (large mappings are not MAP_NORESERVE, os.hpp).
inline constexpr std::size_t kMaxRequest = std::size_t{1} << 46;
inline constexpr std::size_t kLargeHeaderSize = 64;
// Freed large mappings kept for reuse (against mmap/munmap churn and the page
// faults of fresh memory): at most this many blocks, and at most
// max(kLargeCacheMinBytes, live + min(live, kLargeCacheMaxExtra)) bytes in all,
// where live is the heap's live large bytes.  strata_trim gives them all back.
inline constexpr std::size_t kLargeCacheMaxBlocks = 256;
inline constexpr std::size_t kLargeCacheMinBytes = std::size_t{128} << 20;
inline constexpr std::size_t kLargeCacheMaxExtra = std::size_t{1} << 30;
inline constexpr std::size_t kLargeCacheMaxBlock = std::size_t{64} << 20;  // larger blocks are unmapped at once
// realloc copies a large block of up to this many bytes that cannot grow in
// place into a kept (or fresh) mapping, as tcmalloc, jemalloc and mimalloc
// do, and moves a bigger one with mremap, as glibc does.  Moving pages costs
// their next access: on the benchmark VM (shadow-paged) the large_churn
// workload at 1 thread spent about 50 ms more user time per 3,000 steps
// touching pages realloc had moved than it spends copying them, and a moved
// block leaves kept mappings unused, so more fresh pages fault.
inline constexpr std::size_t kLargeCopyMax = std::size_t{16} << 20;
inline constexpr std::size_t kLargeMapMin = std::size_t{4} << 20;  // a fresh cacheable mapping is at least this big
// The smallest piece of a large mapping worth keeping: one chunk.  A piece
// too small to serve a large request alone is still kept, because it merges
// with its neighbours when they come back.
inline constexpr std::size_t kLargeMinKeptPiece = kChunkSize;
// A thread's last freed large block of up to this many mapped bytes waits in
// its cache (one block per thread and heap) for the thread's next large
// request of about its size, which then takes it without the tier's lock or
// the chunk map (a 1 MiB malloc+free pair took 73 ns through the kept
// mappings, about six atomic operations and 100 chunk-map entries).
inline constexpr std::size_t kLargeParkMax = std::size_t{16} << 20;

// ---- thread caches ----
// Thread slots: a thread's slot indexes each heap's directory of its caches,
// kSlotsPerDirPage slots to a directory page.
inline constexpr unsigned kSlotsPerDirPage = 256;
inline constexpr unsigned kMaxThreadSlots = 65536;
// Thread-local blocks (strata_thread_local_*): handles per heap, and the
// per-thread table of block pointers, kThreadLocalPerPage to a page.
inline constexpr unsigned kThreadLocalPerPage = 64;
inline constexpr unsigned kThreadLocalPages = 64;  // 4,096 handles per heap
// Functions a copy of strata runs at its finalisation (process exit, or the
// unload of the module that carries it): process.cpp.
inline constexpr unsigned kMaxFinalizers = 16;

static_assert(kMaxThreadSlots % kSlotsPerDirPage == 0);
static_assert(kMediumDataOffset + kMediumPoolGranules * kMediumGranule + kMediumHeaderSize == kMediumPoolSize);
static_assert(kMaxMediumBlock % kMediumGranule == 0);
static_assert((kMediumGranule & (kMediumGranule - 1)) == 0);  // a power of two: medium_is_live_start's rotate
static_assert(kMaxMediumBlock / kMediumGranule <= kMediumPoolGranules);
static_assert(kMaxSmallSize % kMinAlign == 0);
static_assert(kMediumPoolSize % kChunkSize == 0);

}  // namespace strata::detail
