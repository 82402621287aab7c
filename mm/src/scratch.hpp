// strata — scratch memory for the introspection calls and the reports: a
// growable array of plain records mapped straight from the OS (mmap, grown
// with mremap), never from a heap of strata, so that a report of a heap
// never changes the heap it reports.  Unmapped when it goes out of scope.
// Layer: bottom (the OS only); used by inspect.cpp and the report layer.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace strata::detail {

template <class T>
class Scratch {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  Scratch() noexcept = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { reset(); }

  // Appends v; false (and `failed` set) when the OS refuses more memory.
  bool push(const T& v) noexcept {
    if (n_ == cap_ && !grow(n_ + 1)) return false;
    data_[n_++] = v;
    return true;
  }
  // Room for `count` more records without another mapping.
  bool reserve(std::size_t count) noexcept { return n_ + count <= cap_ || grow(n_ + count); }
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return n_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + n_; }
  void truncate(std::size_t n) noexcept { if (n < n_) n_ = n; }
  bool failed() const noexcept { return failed_; }
  void reset() noexcept {
    if (data_) munmap(data_, cap_ * sizeof(T));
    data_ = nullptr;
    n_ = cap_ = 0;
  }

 private:
  bool grow(std::size_t want) noexcept {
    std::size_t cap = cap_ ? cap_ * 2 : (std::size_t{64} << 10) / sizeof(T);
    while (cap < want) cap *= 2;
    void* p = data_ ? mremap(data_, cap_ * sizeof(T), cap * sizeof(T), MREMAP_MAYMOVE)
                    : mmap(nullptr, cap * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      failed_ = true;
      return false;
    }
    data_ = static_cast<T*>(p);
    cap_ = cap;
    return true;
  }
  T* data_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;
  bool failed_ = false;
};

// A string table in scratch memory: interned copies of names (the memory
// map's mapping names), addressed by offset.
class ScratchStrings {
 public:
  // Appends s (n bytes) and a NUL; returns its offset, or ~0 on failure.
  std::size_t add(const char* s, std::size_t n) noexcept {
    if (!bytes_.reserve(n + 1)) return ~std::size_t{0};
    std::size_t at = bytes_.size();
    for (std::size_t i = 0; i < n; ++i) bytes_.push(s[i]);
    bytes_.push('\0');
    return at;
  }
  const char* at(std::size_t off) const noexcept { return bytes_.data() + off; }
  bool failed() const noexcept { return bytes_.failed(); }

 private:
  Scratch<char> bytes_;
};

}  // namespace strata::detail
