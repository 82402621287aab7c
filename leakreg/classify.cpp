// leakreg — what a leaked block is (classify.hpp).
// Layer: leakreg.
#include "classify.hpp"

#include <fcntl.h>
#include <link.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lock.hpp"

namespace strata::leakreg {

// ---- reading memory that may not be there ------------------------------------

namespace {

detail::Lock g_pipe_lock;
int g_pipe[2] = {-1, -1};
bool g_vm_readv_refused = false;

// A write of the bytes into a pipe fails with EFAULT, never a fault, when
// they are not readable; then they are read back.
bool read_through_pipe(void* to, std::uintptr_t from, std::size_t n) noexcept {
  detail::LockGuard g(g_pipe_lock);
  if (g_pipe[0] < 0 && ::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  auto* out = static_cast<char*>(to);
  while (n) {
    std::size_t k = n > 4096 ? 4096 : n;
    ssize_t w = ::write(g_pipe[1], reinterpret_cast<const void*>(from), k);
    if (w <= 0) return false;
    ssize_t r = ::read(g_pipe[0], out, static_cast<std::size_t>(w));
    if (r != w) return false;
    out += w;
    from += static_cast<std::uintptr_t>(w);
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

bool safe_read(void* to, std::uintptr_t from, std::size_t n) noexcept {
  if (!n) return true;
  if (from + n < from) return false;
  if (!__atomic_load_n(&g_vm_readv_refused, __ATOMIC_RELAXED)) {
    iovec local{to, n};
    iovec remote{reinterpret_cast<void*>(from), n};
    ssize_t r = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
    if (r == static_cast<ssize_t>(n)) return true;
    if (r >= 0 || errno == EFAULT) return false;
    __atomic_store_n(&g_vm_readv_refused, true, __ATOMIC_RELAXED);  // ENOSYS, EPERM (seccomp): the pipe then
  }
  return read_through_pipe(to, from, n);
}

// ---- the modules' read-only ranges ------------------------------------------

namespace {
int collect_range(dl_phdr_info* info, std::size_t, void* ctx) {
  auto* ranges = static_cast<detail::Scratch<Classifier::Range>*>(ctx);
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    bool ro = (ph.p_type == PT_LOAD && !(ph.p_flags & PF_W)) || ph.p_type == PT_GNU_RELRO;
    if (!ro || !ph.p_memsz) continue;
    std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (!ranges->push(Classifier::Range{lo, lo + ph.p_memsz})) return 1;
  }
  return 0;
}
}  // namespace

bool Classifier::load_modules() noexcept {
  ranges_.reset();
  if (dl_iterate_phdr(collect_range, &ranges_) != 0 || ranges_.failed()) return false;
  std::sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  return true;
}

std::uintptr_t Classifier::read_only_end(std::uintptr_t a) const noexcept {
  // The ranges starting at or below a (RELRO lies inside a PT_LOAD: a few
  // may overlap); the furthest end of those that hold a.
  const Range* b = ranges_.data();
  const Range* e = b + ranges_.size();
  const Range* it = std::upper_bound(b, e, a, [](std::uintptr_t x, const Range& r) { return x < r.lo; });
  std::uintptr_t end = 0;
  for (const Range* r = it; r != b && it - r <= 4;) {
    --r;
    if (a >= r->lo && a < r->hi && r->hi > end) end = r->hi;
  }
  return end;
}

bool Classifier::read_only(std::uintptr_t a, std::size_t n) const noexcept {
  return a + n >= a && a + n <= read_only_end(a);
}

bool Classifier::read_word(std::uintptr_t a, std::uintptr_t* w) const noexcept {
  return (a & 7) == 0 && read_only(a, sizeof *w) && safe_read(w, a, sizeof *w);
}

// A mangled class name: what type_info::name() holds for a class type
// (starts with a digit, 'N' or 'S'; letters, digits and '_' only).
bool Classifier::read_name(std::uintptr_t p, char* buf, std::size_t cap) const noexcept {
  // One read of what the read-only range holds from p, at most cap bytes.
  const std::uintptr_t end = read_only_end(p);
  if (!end || cap < 2) return false;
  std::size_t n = end - p < cap ? static_cast<std::size_t>(end - p) : cap;
  if (!safe_read(buf, p, n)) return false;
  if (buf[0] == '*' && n > 1) std::memmove(buf, buf + 1, --n);  // GCC: a type of internal linkage, compared by address
  for (std::size_t i = 0; i < n && i + 1 < cap; ++i) {
    char c = buf[i];
    if (c == 0) return i > 0 && (buf[0] == 'N' || buf[0] == 'S' || (buf[0] >= '1' && buf[0] <= '9'));
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return false;
}

bool Classifier::prove(std::uintptr_t vptr, char* mangled, std::size_t cap) const noexcept {
  std::uintptr_t offset_to_top, ti, ti_vptr, ti_ti, ti_ti_name;
  if (!read_word(vptr, &ti_vptr) || !read_word(vptr - 16, &offset_to_top) || offset_to_top != 0) return false;
  if (!read_word(vptr - 8, &ti) || !read_word(ti, &ti_vptr)) return false;
  // T's own vtable names the kind of class type_info it is.
  if (!read_word(ti_vptr - 8, &ti_ti) || !read_word(ti_ti + 8, &ti_ti_name)) return false;
  char kind[48];
  if (!read_name(ti_ti_name, kind, sizeof kind)) return false;
  if (std::strcmp(kind, "N10__cxxabiv117__class_type_infoE") != 0 &&
      std::strcmp(kind, "N10__cxxabiv120__si_class_type_infoE") != 0 &&
      std::strcmp(kind, "N10__cxxabiv121__vmi_class_type_infoE") != 0)
    return false;
  std::uintptr_t name;
  return read_word(ti + 8, &name) && read_name(name, mangled, cap);
}

bool Classifier::class_of(std::uintptr_t vptr, std::size_t* mangled, std::size_t* pretty) noexcept {
  if (!vptr || (vptr & 7) || !read_only(vptr, 8)) return false;  // most blocks stop here, without a system call
  if (Seen* s = cache_.find(vptr)) {
    if (!s->mangled) return false;
    *mangled = s->mangled - 1;
    *pretty = s->pretty - 1;
    return true;
  }
  char m[512];
  char p[1024];
  bool is_class = prove(vptr, m, sizeof m);
  bool fresh;
  Seen* s = cache_.insert(vptr, &fresh);
  if (!is_class) {
    if (s) s->mangled = 0;
    return false;
  }
  demangle(m, p, sizeof p);
  std::size_t a = names_.add(m, std::strlen(m));
  std::size_t b = names_.add(p, std::strlen(p));
  if (names_.failed()) return false;
  if (s) {
    s->mangled = a + 1;
    s->pretty = b + 1;
  }
  *mangled = a;
  *pretty = b;
  return true;
}

// ---- a small demangler for class names -------------------------------------------
// <name> ::= N <prefix>* <unqualified> E | St <source> | <source>
// <source> ::= <length> <identifier>; template arguments I <type>+ E of
// builtin types, class names and pointers/references to them.  Anything
// else (substitutions, expressions, function types) gives up.

namespace {

struct Out {
  char* p;
  std::size_t cap, n = 0;
  bool ok = true;
  void put(const char* s, std::size_t len) noexcept {
    if (n + len + 1 > cap) {
      ok = false;
      return;
    }
    std::memcpy(p + n, s, len);
    n += len;
    p[n] = 0;
  }
  void put(const char* s) noexcept { put(s, std::strlen(s)); }
};

bool type(const char*& s, Out& o, int depth) noexcept;

bool source_name(const char*& s, Out& o) noexcept {
  if (*s < '1' || *s > '9') return false;
  std::size_t len = 0;
  while (*s >= '0' && *s <= '9') {
    len = len * 10 + static_cast<std::size_t>(*s++ - '0');
    if (len > 4096) return false;
  }
  if (std::strlen(s) < len) return false;
  if (len == 12 && std::strncmp(s, "_GLOBAL__N_1", 12) == 0) o.put("(anonymous namespace)");
  else o.put(s, len);
  s += len;
  return true;
}

bool template_args(const char*& s, Out& o, int depth) noexcept {
  if (*s != 'I') return true;
  ++s;
  o.put("<");
  for (bool first = true; *s != 'E'; first = false) {
    if (!*s) return false;
    if (!first) o.put(", ");
    if (*s == 'L') {  // a literal: L <type> <value> E, integers only
      ++s;
      if (!type(s, o, depth + 1)) return false;
      bool neg = *s == 'n';
      if (neg) ++s;
      const char* digits = s;
      while (*s >= '0' && *s <= '9') ++s;
      if (*s != 'E' || s == digits) return false;
      o.put(neg ? "(-" : "(");
      o.put(digits, static_cast<std::size_t>(s - digits));
      o.put(")");
      ++s;
      continue;
    }
    if (!type(s, o, depth + 1)) return false;
  }
  ++s;
  o.put(">");
  return true;
}

bool name(const char*& s, Out& o, int depth) noexcept {
  if (depth > 16) return false;
  if (*s == 'N') {
    ++s;
    bool first = true;
    while (*s != 'E') {
      if (!*s) return false;
      if (s[0] == 'S' && s[1] == 't') {
        s += 2;
        o.put("std");
        first = false;
        continue;
      }
      if (*s == 'I') {
        if (first || !template_args(s, o, depth)) return false;
        continue;
      }
      if (!first) o.put("::");
      if (!source_name(s, o)) return false;
      first = false;
    }
    ++s;
    return true;
  }
  if (s[0] == 'S' && s[1] == 't') {
    s += 2;
    o.put("std::");
  }
  return source_name(s, o) && template_args(s, o, depth);
}

bool type(const char*& s, Out& o, int depth) noexcept {
  static const struct { char code; const char* text; } kBuiltin[] = {
      {'v', "void"}, {'b', "bool"}, {'c', "char"}, {'a', "signed char"}, {'h', "unsigned char"},
      {'s', "short"}, {'t', "unsigned short"}, {'i', "int"}, {'j', "unsigned int"}, {'l', "long"},
      {'m', "unsigned long"}, {'x', "long long"}, {'y', "unsigned long long"}, {'f', "float"},
      {'d', "double"}, {'e', "long double"}, {'w', "wchar_t"}};
  if (depth > 16) return false;
  for (const auto& b : kBuiltin)
    if (*s == b.code) {
      ++s;
      o.put(b.text);
      return true;
    }
  if (*s == 'P' || *s == 'R' || *s == 'K') {
    char q = *s++;
    if (!type(s, o, depth + 1)) return false;
    o.put(q == 'P' ? "*" : q == 'R' ? "&" : " const");
    return true;
  }
  return name(s, o, depth + 1);
}

}  // namespace

bool demangle(const char* mangled, char* out, std::size_t cap) noexcept {
  if (!cap) return false;
  out[0] = 0;
  Out o{out, cap};
  const char* s = mangled;
  if (name(s, o, 0) && *s == 0 && o.ok) return true;
  std::size_t n = std::strlen(mangled);
  if (n >= cap) n = cap - 1;
  std::memcpy(out, mangled, n);
  out[n] = 0;
  return false;
}

}  // namespace strata::leakreg
