// strata report layer — Sink: buffered output to a file descriptor with the
// number formats the reports use (decimal, grouped, padded, hex, fixed
// point, JSON and XML escaping).  No allocation, no stdio: a report is
// written at exit and from any thread, by the heap it describes.
// Layer: report (no strata core includes).
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace strata::report {

class Sink {
 public:
  explicit Sink(int fd) noexcept : fd_(fd) {}
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  ~Sink() { flush(); }

  Sink& ch(char c) noexcept {
    if (len_ == sizeof buf_) flush();
    buf_[len_++] = c;
    return *this;
  }
  Sink& str(const char* s) noexcept {
    while (s && *s) ch(*s++);
    return *this;
  }
  Sink& str(const char* s, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) ch(s[i]);
    return *this;
  }
  Sink& dec(std::uint64_t v) noexcept { return field(v, 0, false); }
  Sink& sdec(std::int64_t v) noexcept {
    if (v < 0) {
      ch('-');
      return dec(static_cast<std::uint64_t>(-(v + 1)) + 1);
    }
    return dec(static_cast<std::uint64_t>(v));
  }
  // Right-aligned in `width` columns, with thousands separators when `group`.
  Sink& field(std::uint64_t v, unsigned width, bool group) noexcept {
    char tmp[32];
    int n = 0, digits = 0;
    do {
      if (group && digits && digits % 3 == 0) tmp[n++] = ',';
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
      ++digits;
    } while (v);
    for (unsigned i = static_cast<unsigned>(n); i < width; ++i) ch(' ');
    while (n) ch(tmp[--n]);
    return *this;
  }
  Sink& grouped(std::uint64_t v, unsigned width = 0) noexcept { return field(v, width, true); }
  // 0x-prefixed lower-case hex, at least `digits` digits.
  Sink& hex(std::uint64_t v, unsigned digits = 1) noexcept {
    char tmp[20];
    unsigned n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v || n < digits);
    str("0x");
    while (n) ch(tmp[--n]);
    return *this;
  }
  // v with `decimals` digits after the point (rounded), right-aligned in width.
  Sink& fixed(double v, unsigned decimals, unsigned width = 0) noexcept {
    char tmp[48];
    std::size_t n = format_fixed(tmp, v, decimals);
    for (std::size_t i = n; i < width; ++i) ch(' ');
    return str(tmp, n);
  }
  // "12.3 MiB"
  Sink& bytes(std::uint64_t v) noexcept {
    static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double x = static_cast<double>(v);
    int u = 0;
    while (x >= 1024 && u < 5) {
      x /= 1024;
      ++u;
    }
    if (u == 0) dec(v);
    else fixed(x, 1);
    return ch(' ').str(units[u]);
  }
  Sink& pad(const char* s, unsigned width) noexcept {  // left-aligned
    unsigned n = 0;
    for (; s[n]; ++n) ch(s[n]);
    for (; n < width; ++n) ch(' ');
    return *this;
  }
  // A JSON string literal, quotes included.
  Sink& json_string(const char* s) noexcept {
    ch('"');
    for (; s && *s; ++s) {
      auto c = static_cast<unsigned char>(*s);
      if (c == '"' || c == '\\') ch('\\').ch(static_cast<char>(c));
      else if (c == '\n') str("\\n");
      else if (c == '\t') str("\\t");
      else if (c < 0x20 || c == 0x7f) {
        str("\\u00");
        ch("0123456789abcdef"[c >> 4]).ch("0123456789abcdef"[c & 15]);
      } else {
        ch(static_cast<char>(c));
      }
    }
    return ch('"');
  }
  // Text for XML content or an attribute value.
  Sink& xml(const char* s) noexcept {
    for (; s && *s; ++s) {
      auto c = static_cast<unsigned char>(*s);
      if (c == '<') str("&lt;");
      else if (c == '>') str("&gt;");
      else if (c == '&') str("&amp;");
      else if (c == '"') str("&quot;");
      else if (c < 0x20 && c != '\t') ch('?');
      else ch(static_cast<char>(c));
    }
    return *this;
  }

  void flush() noexcept {
    std::size_t off = 0;
    while (off < len_ && !failed_) {
      ssize_t n = ::write(fd_, buf_ + off, len_ - off);
      if (n <= 0) failed_ = true;
      else off += static_cast<std::size_t>(n);
    }
    len_ = 0;
  }
  bool failed() const noexcept { return failed_; }

  // Formats v into out (at least 48 bytes); returns the length.
  static std::size_t format_fixed(char* out, double v, unsigned decimals) noexcept {
    std::size_t n = 0;
    if (v != v) {  // NaN
      std::memcpy(out, "nan", 3);
      return 3;
    }
    if (v < 0) {
      out[n++] = '-';
      v = -v;
    }
    std::uint64_t scale = 1;
    for (unsigned i = 0; i < decimals; ++i) scale *= 10;
    if (v > 1e15) v = 1e15;
    auto scaled = static_cast<std::uint64_t>(v * static_cast<double>(scale) + 0.5);
    std::uint64_t whole = scaled / scale, frac = scaled % scale;
    char tmp[24];
    int k = 0;
    do {
      tmp[k++] = static_cast<char>('0' + whole % 10);
      whole /= 10;
    } while (whole);
    while (k) out[n++] = tmp[--k];
    if (decimals) {
      out[n++] = '.';
      for (unsigned i = decimals; i-- > 0;) {
        out[n + i] = static_cast<char>('0' + frac % 10);
        frac /= 10;
      }
      n += decimals;
    }
    return n;
  }

 private:
  int fd_;
  std::size_t len_ = 0;
  bool failed_ = false;
  char buf_[8192];
};

}  // namespace strata::report
