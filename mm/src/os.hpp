// strata — the operating-system layer.  The only place that talks to the
// kernel (mmap, munmap, mremap, futex, getrandom, environment).  Nothing here
// allocates through malloc.
//
// Preconditions common to all: sizes and addresses are multiples of the page
// size; functions return nullptr / false on failure and never abort.
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata::detail::os {

// Maps `size` bytes of zeroed read-write memory whose address is a multiple of
// `align` (a power of two >= page size).  nullptr when the kernel refuses.
// Mapped MAP_NORESERVE unless `checked`: a checked mapping passes the
// kernel's overcommit check (as glibc's large blocks do), so a request no
// machine can back fails at once instead of succeeding on paper.
void* map_aligned(std::size_t size, std::size_t align, bool checked = false) noexcept;
// Unmaps [addr, addr+size).
void unmap(void* addr, std::size_t size) noexcept;
// Grows or shrinks the mapping at addr in place; false if it cannot.
bool remap_in_place(void* addr, std::size_t old_size, std::size_t new_size) noexcept;
// Moves the mapping at addr (old_size bytes) to a new `align`-aligned address,
// resized to new_size, without copying pages.  nullptr on failure (the old
// mapping is then untouched).
void* remap_move_aligned(void* addr, std::size_t old_size, std::size_t new_size, std::size_t align) noexcept;
// Gives the pages back to the kernel while keeping the range mapped.
void discard(void* addr, std::size_t size) noexcept;
// Names an anonymous mapping in /proc/self/maps ("[anon:name]") where the
// kernel supports it; harmless no-op otherwise.
void name_region(void* addr, std::size_t size, const char* name) noexcept;

void futex_wait(const void* addr, std::uint32_t expected) noexcept;
void futex_wake_one(const void* addr) noexcept;

// Whether the page holding addr is mapped (mincore); for the rare checks
// that must not read memory that may be gone.
bool is_mapped(const void* addr) noexcept;
// Gives the CPU to another thread (sched_yield).
void yield() noexcept;

// A coarse monotonic clock in milliseconds (CLOCK_MONOTONIC_COARSE: a vDSO
// read, no system call); for decay decisions, not for measuring.
std::uint64_t now_ms() noexcept;

// CPUs this process may run on (sched_getaffinity), at least 1.
unsigned cpu_count() noexcept;

// 64 random bits (getrandom, falling back to time and addresses).
std::uint64_t random_u64() noexcept;
// Reads an environment variable without allocating (nullptr if absent or the
// environment is not yet available).
const char* getenv_raw(const char* name) noexcept;
// Whether the environment can be read yet (very early in start-up it cannot).
bool environment_ready() noexcept;

}  // namespace strata::detail::os
