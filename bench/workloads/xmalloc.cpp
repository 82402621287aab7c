// xmalloc: producer/consumer cross-thread free (after xmalloc-test, Lever &
// Boreham).  max(threads, 2) threads form a ring: each allocates batches of
// kBatch blocks (realistic size mix), fills them and hands each batch to the
// next thread, which checks and frees the blocks it receives.  Every free is
// a free of a block another thread allocated.  Hand-over is through a small
// bounded queue per thread (at most kDepth batches in flight), so the memory
// in flight is bounded.
#include <condition_variable>
#include <mutex>

#include "common.hpp"

namespace {
constexpr int kBatch = 256;
constexpr int kDepth = 8;

struct Batch {
  wl::Slot slots[kBatch];
};

class Queue {
 public:
  void Push(Batch* b) {
    std::unique_lock<std::mutex> l(m_);
    not_full_.wait(l, [&] { return n_ < kDepth; });
    q_[(head_ + n_) % kDepth] = b;
    ++n_;
    not_empty_.notify_one();
  }
  Batch* Pop() {
    std::unique_lock<std::mutex> l(m_);
    not_empty_.wait(l, [&] { return n_ > 0; });
    Batch* b = q_[head_];
    head_ = (head_ + 1) % kDepth;
    --n_;
    not_full_.notify_one();
    return b;
  }

 private:
  std::mutex m_;
  std::condition_variable not_full_, not_empty_;
  Batch* q_[kDepth] = {};
  int head_ = 0, n_ = 0;
};
}  // namespace

int main(int argc, char** argv) {
  const wl::Args a = wl::ParseArgs(argc, argv, "xmalloc");
  const int T = a.threads < 2 ? 2 : a.threads;
  const long batches = wl::Scaled(20000, a.scale / T * 2);  // per thread; total work grows slowly with T
  std::vector<Queue> queues(T);
  std::vector<std::uint64_t> sums(T, 0);

  const double elapsed = wl::RunThreads(T, [&](int t) {
    wl::Rng rng(2000 + t);
    std::uint64_t next_id = static_cast<std::uint64_t>(t) << 40;
    std::uint64_t sum = 0;
    Queue& out = queues[(t + 1) % T];
    Queue& in = queues[t];
    // Produce one batch ahead so that every thread has work in flight.
    auto produce = [&] {
      auto* b = static_cast<Batch*>(wl::Alloc(sizeof(Batch)));
      for (auto& s : b->slots) {
        s.size = wl::MixSize(rng);
        s.id = ++next_id;
        s.p = wl::Alloc(s.size);
        wl::Fill(s.p, s.size, s.id);
      }
      out.Push(b);
    };
    for (long i = 0; i < batches; ++i) {
      produce();
      Batch* b = in.Pop();
      for (auto& s : b->slots) {
        wl::Check(s.p, s.size, s.id);
        sum += s.size ^ s.id;
        std::free(s.p);
      }
      std::free(b);
    }
    sums[t] = sum;
  });
  std::uint64_t checksum = 0;
  for (auto s : sums) checksum ^= s;
  wl::Report("xmalloc", a, elapsed, checksum, static_cast<double>(T) * batches * kBatch,
             "ring_threads=" + std::to_string(T));
  return 0;
}
