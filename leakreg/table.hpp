// leakreg — an open-addressing hash table of plain records, mapped from the
// OS (never from a heap of strata), that grows without bound: the registry's
// addresses, sizes and classes, and the stack table.  Linear probing,
// deletion by backward shift (no tombstones), doubled when half full.
// Not synchronised: each user holds its own lock.  Trivially destructible
// (clear() gives the memory back).
// Layer: leakreg (the OS only).
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace strata::leakreg {

inline std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// E: a trivially copyable record whose member `key` is a non-zero
// std::uint64_t (0 marks an empty slot).
template <class E>
class Table {
  static_assert(std::is_trivially_copyable_v<E>);

 public:
  Table() noexcept = default;
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;
  // No destructor: the registry's tables live as long as the process (a
  // static destructor would run before the exit report); a table of a
  // report is cleared by its owner.

  E* find(std::uint64_t key) noexcept {
    if (!cap_) return nullptr;
    for (std::size_t i = slot(key);; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i].key == key) return &slots_[i];
      if (slots_[i].key == 0) return nullptr;
    }
  }
  // The record of `key`, inserted zeroed (but for its key) when absent;
  // null when the OS refuses the memory to grow.  *fresh says which.
  E* insert(std::uint64_t key, bool* fresh) noexcept {
    if ((count_ + 1) * 2 > cap_ && !grow()) return nullptr;
    for (std::size_t i = slot(key);; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i].key == key) {
        *fresh = false;
        return &slots_[i];
      }
      if (slots_[i].key == 0) {
        std::memset(static_cast<void*>(&slots_[i]), 0, sizeof(E));
        slots_[i].key = key;
        ++count_;
        *fresh = true;
        return &slots_[i];
      }
    }
  }
  bool erase(std::uint64_t key) noexcept {
    E* e = find(key);
    if (!e) return false;
    std::size_t hole = static_cast<std::size_t>(e - slots_);
    // Backward shift: move up every later record of the run whose home is
    // not between the hole and itself.
    for (std::size_t i = (hole + 1) & (cap_ - 1); slots_[i].key; i = (i + 1) & (cap_ - 1)) {
      std::size_t home = slot(slots_[i].key);
      if (((i - home) & (cap_ - 1)) >= ((i - hole) & (cap_ - 1))) {
        slots_[hole] = slots_[i];
        hole = i;
      }
    }
    slots_[hole].key = 0;
    --count_;
    return true;
  }
  std::size_t size() const noexcept { return count_; }
  template <class F>
  void for_each(F f) noexcept {
    for (std::size_t i = 0; i < cap_; ++i)
      if (slots_[i].key) f(slots_[i]);
  }
  void clear() noexcept {
    if (slots_) ::munmap(slots_, cap_ * sizeof(E));
    slots_ = nullptr;
    cap_ = count_ = 0;
  }
  std::size_t bytes() const noexcept { return cap_ * sizeof(E); }

 private:
  std::size_t slot(std::uint64_t key) const noexcept { return static_cast<std::size_t>(mix(key)) & (cap_ - 1); }
  bool grow() noexcept {
    std::size_t cap = cap_ ? cap_ * 2 : 4096 / sizeof(E) > 16 ? 4096 / sizeof(E) : 16;
    while (cap & (cap - 1)) cap &= cap - 1;  // a power of two
    void* m = ::mmap(nullptr, cap * sizeof(E), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    E* old = slots_;
    std::size_t old_cap = cap_;
    slots_ = static_cast<E*>(m);  // zero pages: every key 0
    cap_ = cap;
    count_ = 0;
    for (std::size_t i = 0; i < old_cap; ++i)
      if (old[i].key) {
        bool fresh;
        *insert_new(old[i].key, &fresh) = old[i];
      }
    if (old) ::munmap(old, old_cap * sizeof(E));
    return true;
  }
  E* insert_new(std::uint64_t key, bool* fresh) noexcept {  // room is known to be there
    std::size_t i = slot(key);
    while (slots_[i].key) i = (i + 1) & (cap_ - 1);
    ++count_;
    *fresh = true;
    return &slots_[i];
  }

  E* slots_ = nullptr;
  std::size_t cap_ = 0, count_ = 0;
};

// Bytes kept for the life of the table that holds offsets into them (class
// names, stack frames): mapped from the OS in 1 MiB pieces, never freed
// one by one.
class Arena {
 public:
  Arena() noexcept = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  void* alloc(std::size_t n) noexcept {
    n = (n + 15) & ~std::size_t{15};
    if (!head_ || head_->used + n > head_->size) {
      std::size_t size = n + sizeof(Piece) > kPiece ? n + sizeof(Piece) : kPiece;
      void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) return nullptr;
      auto* p = static_cast<Piece*>(m);
      p->next = head_;
      p->size = size;
      p->used = (sizeof(Piece) + 15) & ~std::size_t{15};
      head_ = p;
    }
    void* r = reinterpret_cast<char*>(head_) + head_->used;
    head_->used += n;
    return r;
  }
  void clear() noexcept {
    while (Piece* p = head_) {
      head_ = p->next;
      ::munmap(p, p->size);
    }
  }

 private:
  static constexpr std::size_t kPiece = std::size_t{1} << 20;
  struct Piece {
    Piece* next;
    std::size_t size, used;
  };
  Piece* head_ = nullptr;
};

}  // namespace strata::leakreg
