// strata — the small-block size classes, as data.
//
// Small blocks carry no header: a block of class c is exactly kClassSize[c]
// bytes, blocks of a class live in 64 KiB spans whose first kSpanHeaderSize
// bytes hold the span header.  Spacing: 16 bytes up to 256, then 32, 64 and
// 128 bytes per step (roughly 1/8 of the size, as FastMM), 45 classes up to
// 2,624 bytes.  Worst-case internal waste (request one byte above the previous
// class), and the tail a span cannot use (65536 - 256 - n*size):
//
//   size  worst waste    blocks  tail  |   size  worst waste    blocks  tail
//     16    15 (93.8%)   4080      0  |    512    31 ( 6.1%)    127    256
//     32    15 (46.9%)   2040      0  |    576    63 (10.9%)    113    192
//     48    15 (31.2%)   1360      0  |    640    63 ( 9.8%)    102      0
//     64    15 (23.4%)   1020      0  |    704    63 ( 8.9%)     92    512
//     80    15 (18.8%)    816      0  |    768    63 ( 8.2%)     85      0
//     96    15 (15.6%)    680      0  |    832    63 ( 7.6%)     78    384
//    112    15 (13.4%)    582     96  |    896    63 ( 7.0%)     72    768
//    128    15 (11.7%)    510      0  |    960    63 ( 6.6%)     68      0
//    144    15 (10.4%)    453     48  |   1024    63 ( 6.2%)     63    768
//    160    15 ( 9.4%)    408      0  |   1152   127 (11.0%)     56    768
//    176    15 ( 8.5%)    370    160  |   1280   127 ( 9.9%)     51      0
//    192    15 ( 7.8%)    340      0  |   1408   127 ( 9.0%)     46    512
//    208    15 ( 7.2%)    313    176  |   1536   127 ( 8.3%)     42    768
//    224    15 ( 6.7%)    291     96  |   1664   127 ( 7.6%)     39    384
//    240    15 ( 6.2%)    272      0  |   1792   127 ( 7.1%)     36    768
//    256    15 ( 5.9%)    255      0  |   1920   127 ( 6.6%)     34      0
//    288    31 (10.8%)    226    192  |   2048   127 ( 6.2%)     31   1792
//    320    31 ( 9.7%)    204      0  |   2176   127 ( 5.8%)     30      0
//    352    31 ( 8.8%)    185    160  |   2304   127 ( 5.5%)     28    768
//    384    31 ( 8.1%)    170      0  |   2432   127 ( 5.2%)     26   2048
//    416    31 ( 7.5%)    156    384  |   2560   127 ( 5.0%)     25   1280
//    448    31 ( 6.9%)    145    320  |   2624    63 ( 2.4%)     24   2304
//    480    31 ( 6.5%)    136      0  |  
// (worst waste: bytes lost for a request one byte above the previous class; blocks:
// blocks per span; tail: bytes at the end of a span no block fits in.  Recomputed
// and checked by tests/internal/size_classes_test.cpp.)
#pragma once
#include <array>
#include <cstdint>

#include "config.hpp"

namespace strata::detail {

inline constexpr std::array<std::uint16_t, 45> kClassSize = {
    16,   32,   48,   64,   80,   96,   112,  128,  144,  160,  176,  192,  208,  224,  240,
    256,  288,  320,  352,  384,  416,  448,  480,  512,  576,  640,  704,  768,  832,  896,
    960,  1024, 1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2176, 2304, 2432, 2560, 2624};
inline constexpr unsigned kNumClasses = kClassSize.size();
static_assert(kClassSize[kNumClasses - 1] == kMaxSmallSize);

// (n + 15) / 16 -> class, for n in [0, kMaxSmallSize].
inline constexpr std::size_t kLookupEntries = kMaxSmallSize / 16 + 1;
inline constexpr auto kSizeToClass = [] {
  std::array<std::uint8_t, kLookupEntries> t{};
  unsigned c = 0;
  for (std::size_t i = 0; i < kLookupEntries; ++i) {
    std::size_t n = i * 16;
    while (kClassSize[c] < n) ++c;
    t[i] = static_cast<std::uint8_t>(c);
  }
  return t;
}();

inline constexpr unsigned size_to_class(std::size_t n) noexcept { return kSizeToClass[(n + 15) >> 4]; }

inline constexpr std::uint32_t blocks_per_span(unsigned c) noexcept {
  return static_cast<std::uint32_t>((kSpanSize - kSpanHeaderSize) / kClassSize[c]);
}
// Blocks moved between a thread cache and the shared class per transfer.
inline constexpr std::uint32_t batch_for_class(unsigned c) noexcept {
  std::uint32_t b = static_cast<std::uint32_t>(kThreadCacheBytesPerClass / kClassSize[c]);
  return b < 4 ? 4 : (b > 64 ? 64 : b);
}
// ceil(2^32 / size): (offset * recip) >> 32 == offset / size exactly for offset < 2^16.
inline constexpr std::uint32_t class_reciprocal(unsigned c) noexcept {
  return static_cast<std::uint32_t>(((std::uint64_t{1} << 32) + kClassSize[c] - 1) / kClassSize[c]);
}

// ---- medium cache classes ----
// Medium blocks are 256-byte granular; a thread cache files those it keeps
// under these block sizes (in granules, tag included), spaced at most 1/8
// apart: 11..16, then steps of 2, 4, 8, ... granules up to the largest
// medium block.  A block is filed under the largest class not above its
// size (medium_cache_push and medium_cache_pop in fast_path.hpp).
inline constexpr auto kMediumClassGranules = [] {
  std::array<std::uint16_t, 55> t{};
  unsigned n = 0;
  for (unsigned g = 11; g <= 16; ++g) t[n++] = static_cast<std::uint16_t>(g);
  for (unsigned step = 2, g = 16; n < t.size() - 1; step *= 2)
    for (int i = 0; i < 8 && n < t.size() - 1; ++i) t[n++] = static_cast<std::uint16_t>(g += step);
  t[n++] = static_cast<std::uint16_t>(kMaxMediumBlock / kMediumGranule);
  return t;
}();
inline constexpr unsigned kNumMediumClasses = kMediumClassGranules.size();
static_assert(kMediumClassGranules[kNumMediumClasses - 2] == 1024);
static_assert(kMediumClassGranules[kNumMediumClasses - 1] == 1040);

// granules (1 .. 1040) -> smallest medium class holding them
inline constexpr auto kGranulesToMediumClass = [] {
  std::array<std::uint8_t, kMaxMediumBlock / kMediumGranule + 1> t{};
  unsigned c = 0;
  for (std::size_t g = 0; g < t.size(); ++g) {
    while (kMediumClassGranules[c] < g) ++c;
    t[g] = static_cast<std::uint8_t>(c);
  }
  return t;
}();
inline constexpr std::size_t medium_class_block(unsigned c) noexcept {
  return std::size_t{kMediumClassGranules[c]} * kMediumGranule;
}
// Blocks a thread keeps per medium class: about 64 KiB worth, at least 1.
inline constexpr std::int32_t medium_cache_max(unsigned c) noexcept {
  std::size_t n = (std::size_t{64} << 10) / medium_class_block(c);
  return static_cast<std::int32_t>(n < 1 ? 1 : (n > 16 ? 16 : n));
}

constexpr bool classes_are_valid() {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    if (kClassSize[c] % 16) return false;
    if (c && kClassSize[c] <= kClassSize[c - 1]) return false;
    // exact division by reciprocal for every offset inside a span
    for (std::uint32_t off = 0; off < kSpanSize; off += 16)
      if (((std::uint64_t{off} * class_reciprocal(c)) >> 32) != off / kClassSize[c]) return false;
  }
  return true;
}

}  // namespace strata::detail
