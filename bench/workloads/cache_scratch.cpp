// cache-scratch: sensitivity to passive false sharing (after Hoard's
// cache-scratch, Berger et al. 2000).  The main thread allocates one small
// object per worker, back to back, and hands object t to worker t, which frees
// it.  Each worker then repeatedly allocates a small object, writes it many
// times and frees it.  An allocator that reuses the freed neighbours for
// different threads puts their hot objects on one cache line, and the writes
// of the workers then bounce that line between cores.
#include "common.hpp"

namespace {
constexpr std::size_t kObject = 8;
constexpr int kWrites = 50;
}

int main(int argc, char** argv) {
  const wl::Args a = wl::ParseArgs(argc, argv, "cache_scratch");
  const int T = a.threads;
  const long iterations = wl::Scaled(12000000, a.scale);  // per thread
  std::vector<volatile char*> initial(T);
  for (int t = 0; t < T; ++t) {
    initial[t] = static_cast<volatile char*>(wl::Alloc(kObject));
    initial[t][0] = static_cast<char>(t);
  }
  std::vector<std::uint64_t> sums(T, 0);
  const double elapsed = wl::RunThreads(T, [&](int t) {
    if (initial[t][0] != static_cast<char>(t)) wl::Fail("content check failed", const_cast<char*>(initial[t]), kObject);
    std::free(const_cast<char*>(initial[t]));
    std::uint64_t sum = 0;
    for (long i = 0; i < iterations; ++i) {
      auto* p = static_cast<volatile char*>(wl::Alloc(kObject));
      for (int w = 0; w < kWrites; ++w) p[w & 7] = static_cast<char>(w + i);
      for (int k = 0; k < 8; ++k) {
        const char want = static_cast<char>((kWrites - 1 - k) / 8 * 8 + k + i);
        if (p[k] != want) wl::Fail("content check failed", const_cast<char*>(p), kObject);
        sum += static_cast<unsigned char>(want);
      }
      std::free(const_cast<char*>(p));
    }
    sums[t] = sum;
  });
  std::uint64_t checksum = 0;
  for (auto s : sums) checksum += s;
  wl::Report("cache_scratch", a, elapsed, checksum, static_cast<double>(T) * iterations);
  return 0;
}
