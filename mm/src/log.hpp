// strata — a formatter that writes to a file descriptor without allocating
// (a fixed stack buffer; nothing here calls malloc or stdio).
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata::detail {

class MessageBuilder {
 public:
  MessageBuilder& str(const char* s) noexcept;
  MessageBuilder& dec(std::uint64_t v) noexcept;
  MessageBuilder& hex(std::uint64_t v) noexcept;  // 0x-prefixed, like %p
  MessageBuilder& ptr(const void* p) noexcept { return hex(reinterpret_cast<std::uintptr_t>(p)); }
  MessageBuilder& bytes(std::uint64_t v) noexcept;  // "12.3 MiB (12901234 bytes)"
  void write(int fd) const noexcept;
  const char* c_str() noexcept { buf_[len_] = 0; return buf_; }

 private:
  char buf_[1024];
  std::size_t len_ = 0;
};

}  // namespace strata::detail
