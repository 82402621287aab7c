// strata — C++ conveniences over <strata/leaks.h> (docs/leaks.md).
#pragma once
#include <cstddef>
#include <type_traits>
#include <typeinfo>

#include "leaks.h"

namespace strata {

// `count` live objects of the polymorphic class T are expected at shutdown
// (matched by the class the report proves from each block's vtable: the
// dynamic type, as FastMM matches TClass).
template <class T>
bool register_expected_leak(std::size_t count = 1) noexcept {
  static_assert(std::is_polymorphic_v<T>, "a class is recognised by its vtable: T must be polymorphic");
  return strata_register_expected_leak_class(typeid(T).name(), count) != 0;
}
template <class T>
bool unregister_expected_leak(std::size_t count = 1) noexcept {
  static_assert(std::is_polymorphic_v<T>, "a class is recognised by its vtable: T must be polymorphic");
  return strata_unregister_expected_leak_class(typeid(T).name(), count) != 0;
}
inline bool register_expected_leak(const void* p) noexcept { return strata_register_expected_leak(p) != 0; }
inline bool unregister_expected_leak(const void* p) noexcept { return strata_unregister_expected_leak(p) != 0; }

// Registers a block as an expected leak for the life of the guard.
class expected_leak {
 public:
  explicit expected_leak(const void* p) noexcept : p_(strata_register_expected_leak(p) ? p : nullptr) {}
  ~expected_leak() {
    if (p_) strata_unregister_expected_leak(p_);
  }
  expected_leak(const expected_leak&) = delete;
  expected_leak& operator=(const expected_leak&) = delete;
  bool registered() const noexcept { return p_ != nullptr; }

 private:
  const void* p_;
};

// `count` objects of class T expected for the life of the guard.
template <class T>
class expected_leaks_of {
 public:
  explicit expected_leaks_of(std::size_t count = 1) noexcept
      : count_(register_expected_leak<T>(count) ? count : 0) {}
  ~expected_leaks_of() {
    if (count_) unregister_expected_leak<T>(count_);
  }
  expected_leaks_of(const expected_leaks_of&) = delete;
  expected_leaks_of& operator=(const expected_leaks_of&) = delete;

 private:
  std::size_t count_;
};

// VLD's VLDDisable / VLDEnable for a scope: allocations of this thread are
// not tracked (no call stack) while the guard lives.
class leak_tracking_off {
 public:
  leak_tracking_off() noexcept { strata_leak_tracking_disable(); }
  ~leak_tracking_off() { strata_leak_tracking_enable(); }
  leak_tracking_off(const leak_tracking_off&) = delete;
  leak_tracking_off& operator=(const leak_tracking_off&) = delete;
};

}  // namespace strata
