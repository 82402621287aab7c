// C++ consumer of the static library (strata::strata / pkg-config strata):
// strata::allocator with std::vector, strata::Pool, usable sizes, and plain
// malloc / operator new are NOT replaced.
#include "consumer_check.h"

#include <strata/strata.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#if defined(EXPECT_STRATA_VERSION_MAJOR)
static_assert(STRATA_VERSION_MAJOR == EXPECT_STRATA_VERSION_MAJOR, "strata.h and the package version differ");
static_assert(STRATA_VERSION_MINOR == EXPECT_STRATA_VERSION_MINOR, "strata.h and the package version differ");
static_assert(STRATA_VERSION_PATCH == EXPECT_STRATA_VERSION_PATCH, "strata.h and the package version differ");
#endif

int main() {
  strata_set_error_handler(consumer_error_handler, nullptr);

  void* p = strata::malloc(100);
  CONSUMER_CHECK(p != nullptr);
  CONSUMER_CHECK(strata_usable_size(p) >= 100);
  CONSUMER_CHECK(strata::usable_size(p) == strata_usable_size(p));
  strata::free(p);

  {
    strata_heap_summary_t before = consumer_summary();
    std::vector<int, strata::allocator<int>> v;
    for (int i = 0; i < 1000; ++i) v.push_back(i);
    CONSUMER_CHECK(v.size() == 1000);
    CONSUMER_CHECK(strata_usable_size(v.data()) >= 1000 * sizeof(int));
    CONSUMER_CHECK(strata_pool_of(v.data()) == nullptr);
    long sum = 0;
    for (int x : v) sum += x;
    CONSUMER_CHECK(sum == 999L * 1000 / 2);
    strata_heap_summary_t after = consumer_summary();
    CONSUMER_CHECK(after.in_use_bytes >= before.in_use_bytes + 1000 * sizeof(int));

    using str = std::basic_string<char, std::char_traits<char>, strata::allocator<char>>;
    std::map<int, str, std::less<int>, strata::allocator<std::pair<const int, str>>> m;
    for (int i = 0; i < 200; ++i) m.emplace(i, str(static_cast<std::size_t>(i) + 20, 'x'));
    CONSUMER_CHECK(m.size() == 200 && m.at(150).size() == 170);

    auto sp = std::allocate_shared<std::vector<double>>(strata::allocator<int>(), 100, 1.5);
    CONSUMER_CHECK(sp->size() == 100 && (*sp)[99] == 1.5);
  }

  {
    strata::Pool pool;
    std::vector<int, strata::pool_allocator<int>> pv{strata::pool_allocator<int>(pool)};
    for (int i = 0; i < 500; ++i) pv.push_back(i);
    CONSUMER_CHECK(strata_pool_of(pv.data()) == pool.get());
    strata_heap_summary_t ps{};
    ps.size = sizeof ps;
    CONSUMER_CHECK(strata_heap_summary(pool.get(), &ps) == 0);
    CONSUMER_CHECK(ps.in_use_bytes >= 500 * sizeof(int));
  }

  // The static library must not replace malloc or operator new.
  strata_heap_summary_t s1 = consumer_summary();
  void* m = std::malloc(100);
  auto* n = new std::uint64_t[20];
  strata_heap_summary_t s2 = consumer_summary();
  CONSUMER_CHECK(s2.small_blocks == s1.small_blocks);
  CONSUMER_CHECK(std::strstr(consumer_symbol_owner("malloc"), "libstrata") == nullptr);
  delete[] n;
  std::free(m);

  CONSUMER_CHECK(consumer_errors == 0);
  return consumer_finish("static_consumer (C++)");
}
