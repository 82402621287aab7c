// larson: a Larson-style server simulation (Larson & Krishnan, "Memory
// allocation for long-running server applications", 1998).
//
// Each thread owns a table of kSlots live blocks (sizes from the realistic
// mix).  A step replaces a random slot: the old block is checked and freed, a
// new one is allocated and filled.  After every round the tables rotate
// between the threads (thread t takes over the table of thread t+1), as
// Larson's server hands connections to new threads: most frees then hit
// blocks another thread allocated.  Fixed seeds: the same sequence of sizes
// and slots for every allocator.
#include "common.hpp"

namespace {
constexpr int kSlots = 2000;
}

int main(int argc, char** argv) {
  const wl::Args a = wl::ParseArgs(argc, argv, "larson");
  const long rounds = 20;
  const long steps = wl::Scaled(6000000, a.scale);  // per thread, over all rounds
  const long per_round = steps / rounds > 0 ? steps / rounds : 1;
  const int T = a.threads;

  std::vector<std::vector<wl::Slot>> tables(T, std::vector<wl::Slot>(kSlots));
  std::vector<std::uint64_t> sums(T, 0);
  wl::Barrier barrier(T);

  const double elapsed = wl::RunThreads(T, [&](int t) {
    wl::Rng rng(1000 + t);
    std::uint64_t next_id = static_cast<std::uint64_t>(t) << 40;
    std::uint64_t sum = 0;
    // Fill this thread's initial table.
    for (auto& s : tables[t]) {
      s.size = wl::MixSize(rng);
      s.id = ++next_id;
      s.p = wl::Alloc(s.size);
      wl::Fill(s.p, s.size, s.id);
    }
    barrier.Wait();
    for (long r = 0; r < rounds; ++r) {
      auto& table = tables[(t + r) % T];
      for (long i = 0; i < per_round; ++i) {
        wl::Slot& s = table[rng.Below(kSlots)];
        wl::Check(s.p, s.size, s.id);
        sum += s.size ^ s.id;
        std::free(s.p);
        s.size = wl::MixSize(rng);
        s.id = ++next_id;
        s.p = wl::Alloc(s.size);
        wl::Fill(s.p, s.size, s.id);
      }
      barrier.Wait();
    }
    // Free the table this thread holds now.
    auto& table = tables[(t + rounds) % T];
    for (auto& s : table) {
      wl::Check(s.p, s.size, s.id);
      sum += s.size ^ s.id;
      std::free(s.p);
      s.p = nullptr;
    }
    sums[t] = sum;
  });
  std::uint64_t checksum = 0;
  for (auto s : sums) checksum ^= s;
  wl::Report("larson", a, elapsed, checksum, static_cast<double>(T) * (per_round * rounds + kSlots));
  return 0;
}
