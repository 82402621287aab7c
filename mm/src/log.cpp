// strata — allocation-free message formatting to a file descriptor.
#include "log.hpp"

#include <unistd.h>

#include "check.hpp"

namespace strata::detail {

MessageBuilder& MessageBuilder::str(const char* s) noexcept {
  while (s && *s && len_ + 1 < sizeof(buf_)) buf_[len_++] = *s++;
  return *this;
}

MessageBuilder& MessageBuilder::dec(std::uint64_t v) noexcept {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n && len_ + 1 < sizeof(buf_)) buf_[len_++] = tmp[--n];
  return *this;
}

MessageBuilder& MessageBuilder::hex(std::uint64_t v) noexcept {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  str("0x");
  while (n && len_ + 1 < sizeof(buf_)) buf_[len_++] = tmp[--n];
  return *this;
}

MessageBuilder& MessageBuilder::bytes(std::uint64_t v) noexcept {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::uint64_t whole = v, tenth = 0;
  int u = 0;
  while (whole >= 1024 && u < 4) {
    tenth = (whole % 1024) * 10 / 1024;
    whole /= 1024;
    ++u;
  }
  dec(whole);
  if (u) str(".").dec(tenth);
  return str(" ").str(units[u]);
}

void MessageBuilder::write(int fd) const noexcept {
  std::size_t off = 0;
  while (off < len_) {
    ssize_t n = ::write(fd, buf_ + off, len_ - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
}

[[noreturn]] void fatal(const char* file, int line, const char* what) noexcept {
  MessageBuilder m;
  m.str("strata: internal check failed at ").str(file).str(":").dec(static_cast<unsigned>(line)).str(": ").str(what).str("\n");
  m.write(2);
  __builtin_trap();
}

}  // namespace strata::detail
