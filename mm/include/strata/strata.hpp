// strata — C++ API: namespace strata, strata::allocator<T> for standard
// containers, and strata::Pool, an owning handle of a strata_pool_t.
// Header-only on top of <strata/strata.h>.
#ifndef STRATA_STRATA_HPP
#define STRATA_STRATA_HPP

#include <strata/strata.h>

#include <cstddef>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

namespace strata {

// Thin wrappers over the C API; they keep its contracts (null on failure).
inline void* malloc(std::size_t n) noexcept { return strata_malloc(n); }
inline void* calloc(std::size_t c, std::size_t n) noexcept { return strata_calloc(c, n); }
inline void* realloc(void* p, std::size_t n) noexcept { return strata_realloc(p, n); }
inline void free(void* p) noexcept { strata_free(p); }
inline void* aligned_alloc(std::size_t a, std::size_t n) noexcept { return strata_aligned_alloc(a, n); }
inline std::size_t usable_size(const void* p) noexcept { return strata_usable_size(p); }

namespace detail {
inline void* allocate_or_throw(strata_pool_t* pool, std::size_t bytes, std::size_t align) {
  void* p;
  if (align <= 16)
    p = pool ? strata_pool_malloc(pool, bytes) : strata_malloc(bytes);
  else
    p = pool ? strata_pool_aligned_alloc(pool, align, bytes) : strata_aligned_alloc(align, bytes);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace detail

// A standard allocator that takes its memory from the process heap of strata.
template <class T>
struct allocator {
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_move_assignment = std::true_type;
  using is_always_equal = std::true_type;

  constexpr allocator() noexcept = default;
  template <class U>
  constexpr allocator(const allocator<U>&) noexcept {}

  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(detail::allocate_or_throw(nullptr, n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept { strata_free(p); }

  template <class U>
  friend constexpr bool operator==(const allocator&, const allocator<U>&) noexcept { return true; }
};

// Owning handle of a pool: destroying it releases every byte the pool took
// from the OS, live blocks included.  Move-only.
class Pool {
 public:
  Pool() : pool_(strata_pool_create()) {
    if (!pool_) throw std::bad_alloc();
  }
  ~Pool() { strata_pool_destroy(pool_); }
  Pool(Pool&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
  Pool& operator=(Pool&& other) noexcept {
    if (this != &other) {
      strata_pool_destroy(pool_);
      pool_ = std::exchange(other.pool_, nullptr);
    }
    return *this;
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void* malloc(std::size_t n) noexcept { return strata_pool_malloc(pool_, n); }
  void* calloc(std::size_t c, std::size_t n) noexcept { return strata_pool_calloc(pool_, c, n); }
  void* aligned_alloc(std::size_t a, std::size_t n) noexcept { return strata_pool_aligned_alloc(pool_, a, n); }
  void* realloc(void* p, std::size_t n) noexcept { return strata_pool_realloc(pool_, p, n); }
  void free(void* p) noexcept { strata_pool_free(pool_, p); }
  // Releases everything now; the handle is empty afterwards.
  void destroy() noexcept { strata_pool_destroy(std::exchange(pool_, nullptr)); }
  // Drops every block (and every child's) at once; the pool stays usable.
  void reset() noexcept { strata_pool_reset(pool_); }
  // A pool nested in this one: destroyed or reset with it.  A child Pool
  // object must not outlive its parent's (whose destroy already destroyed
  // the child): declare it after the parent, or let go of it with detach().
  Pool make_child() {
    strata_pool_t* c = strata_pool_create_child(pool_);
    if (!c) throw std::bad_alloc();
    return Pool(c);
  }
  // Gives up ownership: the handle is empty, the pool lives on.
  strata_pool_t* detach() noexcept { return std::exchange(pool_, nullptr); }

  strata_pool_t* get() const noexcept { return pool_; }
  explicit operator bool() const noexcept { return pool_ != nullptr; }

 private:
  explicit Pool(strata_pool_t* p) noexcept : pool_(p) {}
  strata_pool_t* pool_;
};

// A standard allocator over a Pool (the pool must outlive the container, or
// be destroyed in bulk together with it without running its destructor).
template <class T>
struct pool_allocator {
  using value_type = T;
  strata_pool_t* pool;

  explicit pool_allocator(Pool& p) noexcept : pool(p.get()) {}
  explicit pool_allocator(strata_pool_t* p) noexcept : pool(p) {}
  template <class U>
  pool_allocator(const pool_allocator<U>& o) noexcept : pool(o.pool) {}

  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(detail::allocate_or_throw(pool, n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept { strata_pool_free(pool, p); }

  template <class U>
  friend bool operator==(const pool_allocator& a, const pool_allocator<U>& b) noexcept {
    return a.pool == b.pool;
  }
};

// A T per thread that leaves nothing behind (strata_thread_local_*): get()
// returns the calling thread's T, constructed in place on the thread's first
// call (value-initialised), destroyed by strata when the thread exits, when
// this object is destroyed, or when the heap is released (the unload of the
// module that carries this copy of strata), whichever comes first.  No
// pthread key, no C++ thread_local (which keeps glibc from unloading the
// module), no hook left behind.  T's constructor must not throw (a throw
// terminates); its destructor runs in the exiting thread at thread exit and
// in the destroying thread otherwise.
template <class T>
class thread_local_block {
  static_assert(alignof(T) <= 16, "strata blocks are 16-byte aligned");

 public:
  thread_local_block() : h_(strata_thread_local_create_ex(sizeof(T), &init, &fini, nullptr)) {
    if (!h_) throw std::bad_alloc();
  }
  ~thread_local_block() { strata_thread_local_destroy(h_); }
  thread_local_block(const thread_local_block&) = delete;
  thread_local_block& operator=(const thread_local_block&) = delete;

  // The calling thread's T; throws std::bad_alloc when out of memory.
  T& get() {
    void* p = strata_thread_local_get(h_);
    if (!p) throw std::bad_alloc();
    return *static_cast<T*>(p);
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }

 private:
  static void init(void* p, void*) noexcept { ::new (p) T(); }
  static void fini(void* p, void*) noexcept { static_cast<T*>(p)->~T(); }
  strata_thread_local_t* h_;
};

}  // namespace strata

#endif  // STRATA_STRATA_HPP
