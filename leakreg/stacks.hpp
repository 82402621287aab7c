// leakreg — call stacks for the leak report: captured at allocation through
// the core's tracking hook (mm/src/track.hpp) with libunwind, which is
// loaded (dlopen) when stacks are first switched on, and symbolised at
// report time with elfutils' libdw, loaded then (function, file and line
// where there is debug information; module + offset otherwise, through
// dladdr when libdw is absent).  Neither library is linked: the allocator
// core and a program that never asks for stacks do not load them.
//
// Storage, all mapped from the OS: stacks interned once each (a table keyed
// by their hash, frames in an arena), and the stack of each address handed
// out while tracking (a table per lock stripe).  A free records nothing:
// the address's stack is replaced when it is handed out again.
// Layer: leakreg (the core's track.hpp; libunwind and libdw by dlopen).
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata::leakreg {

inline constexpr unsigned kMaxFrames = 32;
// The stack key of a block strata's own leak layer allocated (the
// unwinder's and the symboliser's libraries, loaded by dlopen): never a leak.
inline constexpr std::uint64_t kInternalStack = 1;

bool stacks_on() noexcept;
// Switches tracking on (loading libunwind the first time) or off (the
// recorded stacks are dropped).  False if on was asked and libunwind could
// not be loaded.
bool stacks_switch(bool on) noexcept;
// Reads STRATA_LEAK_STACKS once the process is set up (api.cpp's constructor).
void stacks_from_environment() noexcept;

// The stack recorded for the block at p: its key (0: none) and frames.
std::uint64_t stack_of(const void* p) noexcept;
// The frames of a stack key into out (at most kMaxFrames); their count.
unsigned stack_frames(std::uint64_t key, std::uintptr_t* out) noexcept;

// One symbolised frame.
struct Frame {
  std::uintptr_t pc;
  std::uintptr_t offset;  // pc - the module's load address
  char module[256];
  char function[256];
  char file[256];
  unsigned line;
};

// Symbolises frames for one report: libdw if it can be loaded, else dladdr.
class Symbolizer {
 public:
  Symbolizer() noexcept;
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;
  void resolve(std::uintptr_t pc, Frame& out) noexcept;
  // Whether the frame is strata's own (the allocator, the malloc family and
  // operator new of the module carrying it, the tracking hook): such frames
  // at the top of a stack are not shown.
  static bool is_strata_frame(const Frame& f) noexcept;
  bool with_libdw() const noexcept { return dwfl_ != nullptr; }

 private:
  void* dwfl_ = nullptr;
};

// Allocations of the calling thread between these are strata's own
// (recorded as kInternalStack while tracking is on).
void internal_begin() noexcept;
void internal_end() noexcept;

// fork: every lock of the stack tables taken before, released after (in
// the child: reset), so that the child's next tracked allocation cannot
// wait for a thread that is not there.
void stacks_fork_prepare() noexcept;
void stacks_fork_parent() noexcept;
void stacks_fork_child() noexcept;

// VLD's disable/enable for the calling thread (nestable).
void tracking_disable() noexcept;
void tracking_enable() noexcept;

}  // namespace strata::leakreg
