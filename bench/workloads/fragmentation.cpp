// fragmentation: a long-running program whose object population shifts over
// time, and what it costs in resident memory.  Each thread runs kPhases
// phases; a phase allocates kPerPhase objects whose sizes come from a band
// that moves with the phase (small, then medium-sized, then small again, ...),
// then frees a random 90 % of them.  The 10 % survivors of each phase stay
// live for kKeep phases (long-lived objects pinning the memory their phase
// used), then are freed.  At the end a tenth of the survivors of the last
// phases is still live.  Reports the elapsed time, the peak resident set
// (VmHWM) and the final resident set after the last phase (VmRSS); bench/run
// shows final_rss_kb in a table of its own.
#include "common.hpp"

namespace {
constexpr int kPhases = 24;
constexpr int kKeep = 4;

std::size_t BandSize(wl::Rng& r, int phase) {
  switch (phase % 4) {
    case 0: return 16 + r.Below(112);         // 16..127 B
    case 1: return 256 + r.Below(1792);       // 256 B..2 KiB
    case 2: return wl::MixSize(r);            // the realistic mix
    default: return 2048 + r.Below(14336);    // 2..16 KiB
  }
}
}  // namespace

int main(int argc, char** argv) {
  const wl::Args a = wl::ParseArgs(argc, argv, "fragmentation");
  const int T = a.threads;
  const long per_phase = wl::Scaled(30000, a.scale / T);  // per thread: total live memory independent of T
  std::vector<std::uint64_t> sums(T, 0);
  std::vector<std::vector<wl::Slot>> keep_at_end(T);
  const double elapsed = wl::RunThreads(T, [&](int t) {
    wl::Rng rng(5000 + t);
    std::uint64_t id = 0, sum = 0;
    std::vector<std::vector<wl::Slot>> survivors(kPhases);
    std::vector<wl::Slot> cur(per_phase);
    std::vector<std::uint32_t> order(per_phase);
    for (int ph = 0; ph < kPhases; ++ph) {
      for (auto& s : cur) {
        s.size = BandSize(rng, ph);
        s.id = ++id;
        s.p = wl::Alloc(s.size);
        wl::Fill(s.p, s.size, s.id);
      }
      for (long i = 0; i < per_phase; ++i) order[i] = static_cast<std::uint32_t>(i);
      for (long i = per_phase - 1; i > 0; --i) std::swap(order[i], order[rng.Below(i + 1)]);
      const long survive = per_phase / 10;
      for (long k = 0; k < per_phase; ++k) {
        wl::Slot& s = cur[order[k]];
        if (k < survive) {
          survivors[ph].push_back(s);
        } else {
          wl::Check(s.p, s.size, s.id);
          sum += s.size ^ s.id;
          std::free(s.p);
        }
      }
      if (ph >= kKeep) {
        for (auto& s : survivors[ph - kKeep]) {
          wl::Check(s.p, s.size, s.id);
          sum += s.size ^ s.id;
          std::free(s.p);
        }
        survivors[ph - kKeep].clear();
        survivors[ph - kKeep].shrink_to_fit();
      }
    }
    // Keep a tenth of the last phases' survivors live until the end.
    for (int ph = kPhases - kKeep; ph < kPhases; ++ph) {
      for (std::size_t k = 0; k < survivors[ph].size(); ++k) {
        wl::Slot& s = survivors[ph][k];
        if (k % 10 == 0) {
          keep_at_end[t].push_back(s);
        } else {
          wl::Check(s.p, s.size, s.id);
          sum += s.size ^ s.id;
          std::free(s.p);
        }
      }
    }
    sums[t] = sum;
  });
  // Final resident memory with the long-lived tenth still live.
  const long final_kb = wl::StatusKb("VmRSS:");
  std::uint64_t checksum = 0;
  for (auto s : sums) checksum ^= s;
  for (auto& v : keep_at_end)
    for (auto& s : v) {
      wl::Check(s.p, s.size, s.id);
      std::free(s.p);
    }
  wl::Report("fragmentation", a, elapsed, checksum, static_cast<double>(T) * per_phase * kPhases,
             "final_rss_kb=" + std::to_string(final_kb));
  return 0;
}
