// The reallocation rules of mm/src/realloc.hpp that strata_realloc's fast
// path applies in one predicate: medium_keeps_untouched(n, usable) must say
// yes exactly when heap_realloc keeps a medium block in place and does not
// trim its tail (medium_keeps_in_place and not medium_trims_tail), and never
// for n = 0 (realloc(p, 0) frees).  Checked by exhaustive search over every
// usable size a medium block can have and every request up to a granule
// past it.
#include <catch2/catch.hpp>

#include <cstddef>

#include "realloc.hpp"

using namespace strata::detail;

TEST_CASE("medium_keeps_untouched is keep-in-place without a trim, never for 0", "[realloc]") {
  std::size_t mismatches = 0, first_n = 0, first_usable = 0, kept = 0;
  for (std::size_t block = kMediumGranule; block <= kMaxMediumBlock; block += kMediumGranule) {
    const std::size_t usable = block - kMediumHeaderSize;
    for (std::size_t n = 0; n <= usable + kMediumGranule; ++n) {
      const bool want = n != 0 && medium_keeps_in_place(n, usable) && !medium_trims_tail(n, usable);
      const bool got = medium_keeps_untouched(n, usable);
      kept += got;
      if (got != want && mismatches++ == 0) first_n = n, first_usable = usable;
    }
  }
  INFO("first mismatch: n " << first_n << ", usable " << first_usable);
  REQUIRE(mismatches == 0);
  REQUIRE(kept > 0);
  // Requests no medium block can hold: the wrap of n - 1 and the products.
  for (std::size_t n : {~std::size_t{0}, ~std::size_t{0} / 2, ~std::size_t{0} / 4 + 1})
    REQUIRE_FALSE(medium_keeps_untouched(n, kMaxMediumSize));
}
