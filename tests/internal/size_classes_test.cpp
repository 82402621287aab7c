// The size-class table: recomputes the properties the comment table in
// mm/src/size_classes.hpp claims, and checks the lookup table against a
// linear search.
#include <catch2/catch.hpp>

#include "size_classes.hpp"

using namespace strata::detail;

TEST_CASE("size classes are multiples of 16, strictly increasing, end at kMaxSmallSize") {
  REQUIRE(kNumClasses == 45);
  for (unsigned c = 0; c < kNumClasses; ++c) {
    CHECK(kClassSize[c] % 16 == 0);
    if (c) CHECK(kClassSize[c] > kClassSize[c - 1]);
  }
  CHECK(kClassSize[kNumClasses - 1] == kMaxSmallSize);
  STATIC_REQUIRE(classes_are_valid());
}

TEST_CASE("worst-case internal waste stays at or below 12.5% from 128 bytes up") {
  for (unsigned c = 1; c < kNumClasses; ++c) {
    if (kClassSize[c] < 128) continue;
    double worst = double(kClassSize[c] - kClassSize[c - 1] - 1) / kClassSize[c];
    INFO("class " << kClassSize[c] << " worst waste " << worst);
    CHECK(worst <= 0.125);
  }
}

TEST_CASE("a span wastes at most 4% at its tail and holds at least 24 blocks") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    std::size_t n = blocks_per_span(c);
    std::size_t tail = kSpanSize - kSpanHeaderSize - n * kClassSize[c];
    INFO("class " << kClassSize[c] << " blocks " << n << " tail " << tail);
    CHECK(n >= 24);
    CHECK(tail < kClassSize[c]);
    CHECK(double(tail) / kSpanSize <= 0.04);
  }
}

TEST_CASE("size_to_class gives the smallest class that fits, for every small size") {
  for (std::size_t n = 0; n <= kMaxSmallSize; ++n) {
    unsigned c = size_to_class(n);
    REQUIRE(c < kNumClasses);
    REQUIRE(kClassSize[c] >= n);
    if (c) REQUIRE(kClassSize[c - 1] < (n ? n : 1));
  }
}

TEST_CASE("the reciprocal divides exactly for every 16-byte offset in a span") {
  for (unsigned c = 0; c < kNumClasses; ++c)
    for (std::uint32_t off = 0; off < kSpanSize; off += 16)
      REQUIRE(((std::uint64_t{off} * class_reciprocal(c)) >> 32) == off / kClassSize[c]);
}

TEST_CASE("batches stay within 4..64 blocks") {
  for (unsigned c = 0; c < kNumClasses; ++c) {
    CHECK(batch_for_class(c) >= 4);
    CHECK(batch_for_class(c) <= 64);
  }
}
