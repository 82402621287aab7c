// churn: object churn with the realistic size mix (99.2 % of blocks under
// 2 KiB, see common.hpp).  Each thread keeps a working set of kLive objects;
// a step frees a random live object and allocates a new one, and every 64th
// step a short burst of 32 temporary objects is allocated and freed in
// reverse order (the stack-like temporaries of real programs).  Threads are
// independent: this measures the single-thread paths and their scaling.
#include "common.hpp"

namespace {
constexpr int kLive = 10000;
constexpr int kBurst = 32;
}

int main(int argc, char** argv) {
  const wl::Args a = wl::ParseArgs(argc, argv, "churn");
  const int T = a.threads;
  const long steps = wl::Scaled(3000000, a.scale);  // per thread
  std::vector<std::uint64_t> sums(T, 0);
  const double elapsed = wl::RunThreads(T, [&](int t) {
    wl::Rng rng(3000 + t);
    std::uint64_t id = 0, sum = 0;
    std::vector<wl::Slot> live(kLive);
    for (auto& s : live) {
      s.size = wl::MixSize(rng);
      s.id = ++id;
      s.p = wl::Alloc(s.size);
      wl::Fill(s.p, s.size, s.id);
    }
    wl::Slot burst[kBurst];
    for (long i = 0; i < steps; ++i) {
      wl::Slot& s = live[rng.Below(kLive)];
      wl::Check(s.p, s.size, s.id);
      sum += s.size ^ s.id;
      std::free(s.p);
      s.size = wl::MixSize(rng);
      s.id = ++id;
      s.p = wl::Alloc(s.size);
      wl::Fill(s.p, s.size, s.id);
      if ((i & 63) == 0) {
        for (auto& b : burst) {
          b.size = wl::MixSize(rng);
          b.id = ++id;
          b.p = wl::Alloc(b.size);
          wl::Fill(b.p, b.size, b.id);
        }
        for (int k = kBurst - 1; k >= 0; --k) {
          wl::Check(burst[k].p, burst[k].size, burst[k].id);
          sum += burst[k].size;
          std::free(burst[k].p);
        }
      }
    }
    for (auto& s : live) {
      wl::Check(s.p, s.size, s.id);
      sum += s.size ^ s.id;
      std::free(s.p);
    }
    sums[t] = sum;
  });
  std::uint64_t checksum = 0;
  for (auto s : sums) checksum ^= s;
  wl::Report("churn", a, elapsed, checksum, static_cast<double>(T) * steps * (1 + kBurst / 64.0));
  return 0;
}
