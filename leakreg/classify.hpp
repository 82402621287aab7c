// leakreg — what a leaked block is: the class of a C++ object with a vtable,
// proven from the block's first word, and the block's first bytes.
//
// The proof (Itanium C++ ABI, as GCC and Clang lay out vtables): the block's
// first word V must point into a loaded module's read-only data (a PT_LOAD
// segment without write permission, or its PT_GNU_RELRO part), V[-2] (the
// offset to the top) must be 0, V[-1] must point into read-only data at a
// type_info T whose own vtable's type_info names one of libstdc++'s
// __cxxabiv1::__class_type_info, __si_class_type_info or
// __vmi_class_type_info, and T's name must be a well-formed mangled name in
// read-only data.  Every read goes through process_vm_readv (a pipe where
// that is refused), so memory that is not mapped — or gets unmapped by
// another thread meanwhile — is never touched.
// Layer: leakreg (the OS and the C library only).
#pragma once
#include <cstddef>
#include <cstdint>

#include "scratch.hpp"
#include "table.hpp"

namespace strata::leakreg {

// Reads n bytes at `from` into `to`; false if any of them is not readable.
bool safe_read(void* to, std::uintptr_t from, std::size_t n) noexcept;

// Copies the mangled name (a type_info::name() string, with no leading '*')
// into out as C++ source would spell it ("app::Widget", "std::vector<int>");
// false (out then holds the mangled name) for a form this demangler does not know.
bool demangle(const char* mangled, char* out, std::size_t cap) noexcept;

class Classifier {
 public:
  struct Range {  // a read-only range of a loaded module
    std::uintptr_t lo, hi;
  };
  Classifier() noexcept = default;
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;
  ~Classifier() { cache_.clear(); }

  // Reads the loaded modules' read-only ranges (dl_iterate_phdr); false if
  // that failed (every block is then "unknown").
  bool load_modules() noexcept;
  // The class of the object whose first word is `vptr`: its mangled name
  // (plain, no '*') and its demangled name, as offsets for name(), or false.
  bool class_of(std::uintptr_t vptr, std::size_t* mangled, std::size_t* pretty) noexcept;
  // A name class_of gave (valid until the next class_of).
  const char* name(std::size_t off) const noexcept { return names_.at(off); }

 private:
  struct Seen {
    std::uint64_t key;  // the vtable pointer
    std::size_t mangled, pretty;  // offsets in names_ + 1; 0: not a class
  };
  // The end of the read-only range that holds a, 0 if none does.
  std::uintptr_t read_only_end(std::uintptr_t a) const noexcept;
  bool read_only(std::uintptr_t a, std::size_t n) const noexcept;
  bool read_word(std::uintptr_t a, std::uintptr_t* w) const noexcept;
  // The type_info name at `p` (read-only, well-formed) into buf.
  bool read_name(std::uintptr_t p, char* buf, std::size_t cap) const noexcept;
  bool prove(std::uintptr_t vptr, char* mangled, std::size_t cap) const noexcept;

  detail::Scratch<Range> ranges_;
  detail::ScratchStrings names_;
  Table<Seen> cache_;
};

}  // namespace strata::leakreg
