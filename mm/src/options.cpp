// strata — the run-time options (options.hpp).
#include "options.hpp"

#include <atomic>

#include "os.hpp"

namespace strata::detail {

namespace {

constexpr OptionInfo kOptions[] = {
#define STRATA_OPTION_ROW(id, env, kind, def, lo, hi, doc) {env, OptionKind::kind, def, lo, hi, doc},
    STRATA_OPTIONS(STRATA_OPTION_ROW)
#undef STRATA_OPTION_ROW
};
static_assert(sizeof(kOptions) / sizeof(kOptions[0]) == static_cast<unsigned>(Option::kCount));

// Per option: 0 not read yet, else value + 1 (values are < 2^63).
std::atomic<std::uint64_t> g_values[static_cast<unsigned>(Option::kCount)];

}  // namespace

const OptionInfo& option_info(Option o) noexcept { return kOptions[static_cast<unsigned>(o)]; }

bool option_parse(Option o, const char* text, std::uint64_t* out) noexcept {
  const OptionInfo& info = option_info(o);
  if (!text) return false;
  if (info.kind == OptionKind::kBool) {
    *out = (*text && !(text[0] == '0' && text[1] == 0)) ? 1 : 0;
    return true;
  }
  if (info.kind == OptionKind::kPath) {
    std::size_t n = 0;
    for (; text[n]; ++n)
      if (n >= 4095 || static_cast<unsigned char>(text[n]) < 0x20 || text[n] == 0x7f) return false;
    *out = n;  // its length
    return n != 0;
  }
  if (info.max == kOptionNever && text[0] == '-' && text[1] == '1' && text[2] == 0) {
    *out = kOptionNever;
    return true;
  }
  if (*text < '0' || *text > '9') return false;
  std::uint64_t v = 0;
  for (; *text; ++text) {
    if (*text < '0' || *text > '9') return false;
    const auto d = static_cast<std::uint64_t>(*text - '0');
    if (d > info.max || v > (info.max - d) / 10) return false;  // v * 10 + d > max, without overflow
    v = v * 10 + d;
  }
  if (v < info.min) return false;
  *out = v;
  return true;
}

const char* option_path(Option o) noexcept {
  if (option_info(o).kind != OptionKind::kPath || !os::environment_ready()) return nullptr;
  const char* text = os::getenv_raw(option_info(o).env);
  std::uint64_t n;
  return option_parse(o, text, &n) ? text : nullptr;
}

std::uint64_t option_value(Option o) noexcept {
  auto& slot = g_values[static_cast<unsigned>(o)];
  if (std::uint64_t v = slot.load(std::memory_order_relaxed)) return v - 1;
  const OptionInfo& info = option_info(o);
  if (!os::environment_ready()) return info.def;
  std::uint64_t v = info.def;
  if (const char* text = os::getenv_raw(info.env)) {
    std::uint64_t parsed;
    if (option_parse(o, text, &parsed)) v = parsed;
  }
  slot.store(v + 1, std::memory_order_relaxed);
  return v;
}

}  // namespace strata::detail
