// large_churn: large-block churn.  Each thread keeps 8 live blocks of 64 KiB to
// 8 MiB (log-uniform sizes) and replaces a random one per step.  Every new
// block is written one byte per 4 KiB page (the page-fault cost of fresh
// memory is part of what an allocator decides: keep freed pages or return
// them) and checked, page by page, before it is freed.  A realloc step in
// every 8 grows or shrinks a live block by up to 2x instead.
#include "common.hpp"

namespace {
constexpr int kLive = 8;
constexpr std::size_t kPage = 4096;

std::size_t LargeSize(wl::Rng& r) {
  // 2^16 .. 2^23 bytes, log-uniform, not page multiples.
  const double e = 16.0 + static_cast<double>(r.Below(7000)) / 1000.0;
  return static_cast<std::size_t>(__builtin_exp2(e)) + r.Below(4096);
}

void Touch(unsigned char* p, std::size_t size, std::uint64_t id, std::size_t from) {
  for (std::size_t o = from; o < size; o += kPage) p[o] = static_cast<unsigned char>(id + o / kPage);
  p[size - 1] = static_cast<unsigned char>(id);
}

void Verify(const unsigned char* p, std::size_t size, std::uint64_t id) {
  for (std::size_t o = 0; o + 1 < size; o += kPage)
    if (p[o] != static_cast<unsigned char>(id + o / kPage)) wl::Fail("content check failed", p, size);
  if (p[size - 1] != static_cast<unsigned char>(id)) wl::Fail("content check failed", p, size);
}
}  // namespace

int main(int argc, char** argv) {
  const wl::Args a = wl::ParseArgs(argc, argv, "large_churn");
  const int T = a.threads;
  const long steps = wl::Scaled(3000, a.scale);  // per thread
  std::vector<std::uint64_t> sums(T, 0);
  const double elapsed = wl::RunThreads(T, [&](int t) {
    wl::Rng rng(4000 + t);
    std::uint64_t id = 0, sum = 0;
    wl::Slot live[kLive];
    for (auto& s : live) {
      s.size = LargeSize(rng);
      s.id = ++id;
      s.p = wl::Alloc(s.size);
      Touch(static_cast<unsigned char*>(s.p), s.size, s.id, 0);
    }
    for (long i = 0; i < steps; ++i) {
      wl::Slot& s = live[rng.Below(kLive)];
      Verify(static_cast<unsigned char*>(s.p), s.size, s.id);
      sum += s.size ^ s.id;
      if ((i & 7) == 7) {
        // realloc: keep the common prefix, rewrite the tags for the new id.
        const std::size_t n = LargeSize(rng);
        void* q = std::realloc(s.p, n);
        if (q == nullptr) wl::Fail("realloc returned NULL", s.p, n);
        const std::size_t keep = n < s.size ? n : s.size;
        auto* c = static_cast<unsigned char*>(q);
        for (std::size_t o = 0; o + 1 < keep; o += kPage)
          if (c[o] != static_cast<unsigned char>(s.id + o / kPage)) wl::Fail("realloc lost content", q, keep);
        s.p = q;
        s.size = n;
        s.id = ++id;
        Touch(c, n, s.id, 0);
      } else {
        std::free(s.p);
        s.size = LargeSize(rng);
        s.id = ++id;
        s.p = wl::Alloc(s.size);
        Touch(static_cast<unsigned char*>(s.p), s.size, s.id, 0);
      }
    }
    for (auto& s : live) {
      Verify(static_cast<unsigned char*>(s.p), s.size, s.id);
      sum += s.size ^ s.id;
      std::free(s.p);
    }
    sums[t] = sum;
  });
  std::uint64_t checksum = 0;
  for (auto s : sums) checksum ^= s;
  wl::Report("large_churn", a, elapsed, checksum, static_cast<double>(T) * steps);
  return 0;
}
