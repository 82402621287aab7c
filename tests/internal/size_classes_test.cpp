// The size-class tables of mm/src/size_classes.hpp, checked against what the
// header promises in its comments (and what the allocator relies on), never
// by recomputing the formulas that build them: every check below is a
// property a wrong table breaks, found by exhaustive search over the sizes,
// offsets and granules the tables cover.
//
//   small classes  strictly increasing multiples of 16, 16 .. kMaxSmallSize,
//                  spaced 16 up to 256, then 32, 64 and 128 bytes (about 1/8
//                  of the size); size_to_class(n) the smallest class >= n for
//                  every n; the waste the header's table lists; spans filled
//                  as its table says; exact division by the reciprocal; batch
//                  sizes within 4..64, the budget kThreadCacheBytesPerClass.
//   medium cache   classes from the smallest medium block to the largest,
//                  at most 1/8 apart; kGranulesToMediumClass the smallest
//                  class holding a granule count, for every count; a class
//                  for every medium request; medium_cache_max about 64 KiB.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "size_classes.hpp"

using namespace strata::detail;

namespace {

constexpr std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// The smallest class of at least n bytes, by linear search (kNumClasses if none).
unsigned smallest_class_at_least(std::size_t n) {
  unsigned c = 0;
  while (c < kNumClasses && kClassSize[c] < n) ++c;
  return c;
}

// The smallest request (1..kMaxSmallSize) that size_to_class serves from
// class c: the worst waste of c is kClassSize[c] minus it.
std::size_t smallest_request_of(unsigned c) {
  for (std::size_t n = 1; n <= kMaxSmallSize; ++n)
    if (size_to_class(n) == c) return n;
  return 0;
}

}  // namespace

TEST_CASE("small classes: 45 strictly increasing multiples of 16 from 16 to kMaxSmallSize") {
  REQUIRE(kNumClasses == 45);  // "45 classes up to 2,624 bytes"
  CHECK(kClassSize[0] == kMinAlign);
  CHECK(kClassSize[kNumClasses - 1] == kMaxSmallSize);
  CHECK(kMaxSmallSize == 2624);
  for (unsigned c = 0; c < kNumClasses; ++c) {
    INFO("class " << c << " size " << kClassSize[c]);
    CHECK(kClassSize[c] % 16 == 0);
    if (c) CHECK(kClassSize[c] > kClassSize[c - 1]);
  }
}

TEST_CASE("small classes: spaced 16 bytes up to 256, then 32, 64, 128 (at most 1/8 of the size)") {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    const std::size_t prev = kClassSize[c - 1], size = kClassSize[c], step = size - prev;
    INFO("class " << c << " size " << size << " step " << step);
    const std::size_t max_step = size <= 256 ? 16 : size <= 512 ? 32 : size <= 1024 ? 64 : 128;
    CHECK(step <= max_step);
    if (size <= 256) CHECK(step == 16);
    // "roughly 1/8 of the size": from 128 bytes up, no step is more than an
    // eighth of the class below it.
    if (prev >= 128) CHECK(step * 8 <= prev);
  }
}

TEST_CASE("size_to_class gives the smallest class that fits, for every size 0..kMaxSmallSize") {
  for (std::size_t n = 0; n <= kMaxSmallSize; ++n) {
    const unsigned c = size_to_class(n);
    const unsigned want = smallest_class_at_least(n);
    INFO("size " << n << ": class " << c << ", smallest fitting " << want);
    REQUIRE(want < kNumClasses);
    REQUIRE(c == want);
  }
}

TEST_CASE("the waste of a small request stays within the promised bound") {
  // Every request of 1..kMaxSmallSize bytes: at most 15 bytes lost in the
  // classes spaced 16 apart (up to 256), and from 128 bytes up at most 1/8
  // of the block (the table's largest there: 11.7%).
  for (std::size_t n = 1; n <= kMaxSmallSize; ++n) {
    const std::size_t size = kClassSize[size_to_class(n)];
    REQUIRE(size >= n);
    const std::size_t waste = size - n;
    INFO("request " << n << " -> block " << size << ", waste " << waste);
    if (size <= 256) REQUIRE(waste <= 15);
    if (size >= 128) REQUIRE(waste * 8 <= size);
  }
}

TEST_CASE("a span holds blocks_per_span(c) blocks after its header and no room for one more") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const std::size_t n = blocks_per_span(c), size = kClassSize[c];
    INFO("class " << c << " size " << size << " blocks " << n);
    CHECK(n >= 1);
    CHECK(kSpanHeaderSize + n * size <= kSpanSize);
    CHECK(kSpanHeaderSize + (n + 1) * size > kSpanSize);
  }
}

TEST_CASE("the header's table of waste, blocks and tails is what the tables give") {
  // The comment table in size_classes.hpp is the spec a reader sees; each of
  // its rows must agree with the code: worst waste (bytes and %), blocks per
  // span and the tail no block fits in.
  std::ifstream in(STRATA_SIZE_CLASSES_HEADER);
  REQUIRE(in.good());
  struct Row {
    std::size_t waste, blocks, tail;
    double pct;
  };
  std::map<std::size_t, Row> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("//", 0) != 0 || line.find('|') == std::string::npos) continue;
    std::size_t s[2], w[2], b[2], t[2];
    double p[2];
    int got = std::sscanf(line.c_str(), "// %zu %zu (%lf%%) %zu %zu | %zu %zu (%lf%%) %zu %zu", &s[0], &w[0], &p[0],
                          &b[0], &t[0], &s[1], &w[1], &p[1], &b[1], &t[1]);
    if (got != 5 && got != 10) continue;  // the heading
    for (int k = 0; k < got / 5; ++k) {
      INFO("row for size " << s[k] << ": " << line);
      CHECK(rows.emplace(s[k], Row{w[k], b[k], t[k], p[k]}).second);  // each size once
    }
  }
  CHECK(rows.size() == kNumClasses);
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const std::size_t size = kClassSize[c];
    INFO("class " << c << " size " << size);
    auto it = rows.find(size);
    REQUIRE(it != rows.end());
    const Row& r = it->second;
    const std::size_t waste = size - smallest_request_of(c);
    CHECK(r.waste == waste);
    CHECK(r.pct == Approx(100.0 * double(waste) / double(size)).margin(0.051));
    CHECK(r.blocks == blocks_per_span(c));
    CHECK(r.tail == kSpanSize - kSpanHeaderSize - std::size_t{blocks_per_span(c)} * size);
  }
}

TEST_CASE("class_reciprocal divides exactly for every offset below 2^16") {
  // "(offset * recip) >> 32 == offset / size exactly for offset < 2^16":
  // the free and realloc paths find a block's index (and reject interior
  // pointers) this way.
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const std::uint64_t recip = class_reciprocal(c);
    for (std::uint32_t off = 0; off < (std::uint32_t{1} << 16); ++off) {
      const std::uint32_t idx = static_cast<std::uint32_t>((std::uint64_t{off} * recip) >> 32);
      if (idx != off / kClassSize[c]) {
        INFO("class " << c << " size " << kClassSize[c] << " offset " << off);
        REQUIRE(idx == off / kClassSize[c]);
      }
    }
  }
}

TEST_CASE("an address inside a span header never divides to a carved block") {
  // small_block_start subtracts kSpanHeaderSize from the 32-bit offset, so an
  // address in the header wraps to 2^32 - 256 .. 2^32 - 1; the quotient it
  // gets must be no block index (the carved check then rejects it).
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const std::uint64_t recip = class_reciprocal(c);
    for (std::uint32_t k = 1; k <= kSpanHeaderSize; ++k) {
      const std::uint32_t off = 0u - k;
      const std::uint64_t idx = (std::uint64_t{off} * recip) >> 32;
      INFO("class " << c << " header offset -" << k << " index " << idx);
      REQUIRE(idx >= blocks_per_span(c));
    }
  }
}

TEST_CASE("batches are 4..64 blocks, as many as fit kThreadCacheBytesPerClass") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    const std::size_t b = batch_for_class(c), size = kClassSize[c];
    INFO("class " << c << " size " << size << " batch " << b);
    CHECK(b >= 4);
    CHECK(b <= 64);
    // the byte budget, unless the lower bound forces more
    if (b > 4) CHECK(b * size <= kThreadCacheBytesPerClass);
    // and no fewer than fit it, unless the upper bound stops there
    if (b < 64) CHECK((b + 1) * size > kThreadCacheBytesPerClass);
    if (c) CHECK(b <= batch_for_class(c - 1));
  }
}

TEST_CASE("medium cache classes: from the smallest medium block to the largest, at most 1/8 apart") {
  const std::size_t smallest_block = round_up(kMaxSmallSize + 1 + kMediumHeaderSize, kMediumGranule);
  CHECK(medium_class_block(0) == smallest_block);
  CHECK(kMediumClassGranules[0] == 11);  // "11..16"
  CHECK(medium_class_block(kNumMediumClasses - 1) == kMaxMediumBlock);
  for (unsigned c = 0; c < kNumMediumClasses; ++c) {
    INFO("medium class " << c << " granules " << kMediumClassGranules[c]);
    CHECK(medium_class_block(c) == std::size_t{kMediumClassGranules[c]} * kMediumGranule);
    if (kMediumClassGranules[c] <= 16 && c) CHECK(kMediumClassGranules[c] == kMediumClassGranules[c - 1] + 1);
    if (c + 1 < kNumMediumClasses) {
      CHECK(kMediumClassGranules[c + 1] > kMediumClassGranules[c]);
      CHECK((kMediumClassGranules[c + 1] - kMediumClassGranules[c]) * 8u <= kMediumClassGranules[c]);
    }
  }
  // The classes' indices fit the uint8_t lookup table.
  CHECK(kNumMediumClasses <= 256);
}

TEST_CASE("kGranulesToMediumClass: the smallest class holding g granules, for every g") {
  REQUIRE(kGranulesToMediumClass.size() == kMaxMediumBlock / kMediumGranule + 1);
  for (std::size_t g = 0; g < kGranulesToMediumClass.size(); ++g) {
    const unsigned c = kGranulesToMediumClass[g];
    INFO("granules " << g << " -> class " << c);
    REQUIRE(c < kNumMediumClasses);
    REQUIRE(kMediumClassGranules[c] >= g);
    if (c) REQUIRE(kMediumClassGranules[c - 1] < g);
    if (g) REQUIRE(c >= kGranulesToMediumClass[g - 1]);  // monotone
  }
}

TEST_CASE("every medium request has a cache class whose blocks all fit it") {
  // medium_cache_pop looks a request of n bytes up as the granules of
  // n + tag; a block is filed under the largest class not above its size,
  // so a class's blocks are all at least its size: its own class must hold
  // the request, and the class below must not (else it would be its class).
  for (std::size_t n = kMaxSmallSize + 1; n <= kMaxMediumSize; ++n) {
    const std::size_t need = round_up(n + kMediumHeaderSize, kMediumGranule);
    REQUIRE(need / kMediumGranule < kGranulesToMediumClass.size());
    const unsigned c = kGranulesToMediumClass[need / kMediumGranule];
    INFO("request " << n << " need " << need << " class " << c);
    REQUIRE(c < kNumMediumClasses);
    REQUIRE(medium_class_block(c) >= need);
    if (c) REQUIRE(medium_class_block(c - 1) < need);
  }
}

TEST_CASE("a thread keeps about 64 KiB of each medium class, 1..16 blocks") {
  for (unsigned c = 0; c < kNumMediumClasses; ++c) {
    const std::size_t m = static_cast<std::size_t>(medium_cache_max(c)), block = medium_class_block(c);
    INFO("medium class " << c << " block " << block << " keeps " << m);
    CHECK(m >= 1);
    CHECK(m <= 16);
    if (m > 1) CHECK(m * block <= 64 * 1024);
    if (m < 16) CHECK((m + 1) * block > 64 * 1024);
  }
}
