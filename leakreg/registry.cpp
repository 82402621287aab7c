// leakreg — the expected-leak registry (registry.hpp) and its C API.
// Layer: leakreg.
#include "registry.hpp"

#include <algorithm>
#include <cstring>

#include "config.hpp"
#include "size_classes.hpp"

namespace strata::leakreg {

using detail::LockGuard;

Registry& registry() noexcept {
  static constinit Registry r{};  // no constructor to run: usable before main and from any constructor
  return r;
}

std::uint64_t name_key(const char* name) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (const char* c = name; *c; ++c) h = (h ^ static_cast<unsigned char>(*c)) * 0x100000001b3ull;
  return h ? h : 1;
}

namespace {

// The record of `name` in t, probing on past a different name under the same key.
ClassEntry* find_class(Table<ClassEntry>& t, const char* name) noexcept {
  for (std::uint64_t k = name_key(name);; k = mix(k) | 1) {
    ClassEntry* e = t.find(k);
    if (!e || std::strcmp(e->name, name) == 0) return e;
  }
}
ClassEntry* insert_class(Table<ClassEntry>& t, const char* name, const char* stored) noexcept {
  for (std::uint64_t k = name_key(name);; k = mix(k) | 1) {
    bool fresh;
    ClassEntry* e = t.insert(k, &fresh);
    if (!e) return nullptr;
    if (fresh) {
      e->name = stored;
      return e;
    }
    if (std::strcmp(e->name, name) == 0) return e;
  }
}
// Unregistering leaves a record of count 0 in place (a class's name is kept
// for the life of the process), so that find_class never has to re-probe
// past a hole.

// The name as type_info::name() gives it may start with '*' (GCC: compare
// by address, a type of internal linkage); the registry files it without.
const char* plain(const char* name) noexcept { return name[0] == '*' ? name + 1 : name; }

}  // namespace

Registry::Known Registry::known(const strata_block_info_t& b) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(b.address);
  LockGuard g(lock);
  if (addrs.find(a)) return Known::kExpected;
  if (b.pool) return Known::kNo;
  const StartupEntry* e = startup.find(a);
  return e && e->size == b.usable_size ? Known::kStartup : Known::kNo;
}

void Registry::note_startup() noexcept {
  strata_heap_walk(
      nullptr, 0,
      [](const strata_block_info_t* b, void* ctx) noexcept -> int {
        auto* r = static_cast<Registry*>(ctx);
        if (!b->live) return 1;
        LockGuard g(r->lock);
        bool fresh;
        if (StartupEntry* e = r->startup.insert(reinterpret_cast<std::uintptr_t>(b->address), &fresh))
          e->size = b->usable_size;
        return 1;
      },
      this, STRATA_WAIT_FOREVER);
}

bool Registry::budget(Budget& out) noexcept {
  LockGuard g(lock);
  bool ok = true;
  sizes.for_each([&](SizeEntry& e) {
    std::size_t size = e.key - 1;
    if (size <= detail::kMaxSmallSize) out.small_[detail::size_to_class(size)] += e.count;
    else if (!out.big_.push(e)) ok = false;
  });
  classes.for_each([&](ClassEntry& e) {
    if (!e.count) return;
    bool fresh;
    ClassEntry* c = out.classes_.insert(e.key, &fresh);
    if (!c) ok = false;
    else *c = e;
  });
  std::sort(out.big_.begin(), out.big_.end(), [](const SizeEntry& a, const SizeEntry& b) { return a.key < b.key; });
  return ok;
}

bool size_expects(std::size_t size, const strata_block_info_t& b) noexcept {
  switch (b.tier) {
    case STRATA_TIER_SMALL:
      return size <= detail::kMaxSmallSize && detail::size_to_class(size) == b.size_class;
    case STRATA_TIER_MEDIUM:  // granule rounding, and a split's remainder too small to keep
      return size > detail::kMaxSmallSize && size <= b.usable_size && b.usable_size < size + 2 * detail::kMediumGranule;
    case STRATA_TIER_LARGE:   // the mapping's rounding to chunks, and its header
      return size <= b.usable_size && b.usable_size < size + detail::kChunkSize + detail::kPageSize;
  }
  return false;
}

bool Budget::spend(const strata_block_info_t& b, const char* cls) noexcept {
  if (cls && classes_.size()) {
    // Probe as find_class does; the names are in the registry's arena.
    for (std::uint64_t k = name_key(cls);; k = mix(k) | 1) {
      ClassEntry* e = classes_.find(k);
      if (!e) break;
      if (std::strcmp(e->name, cls) == 0) {
        if (e->count) {
          --e->count;
          return true;
        }
        break;
      }
    }
  }
  if (b.tier == STRATA_TIER_SMALL) {
    if (b.size_class < 64 && small_[b.size_class]) {
      --small_[b.size_class];
      return true;
    }
    return false;
  }
  // The registered sizes a block of this usable size can satisfy are the
  // ones just below it: from the first within the window, up to its size.
  const std::size_t window = b.tier == STRATA_TIER_MEDIUM ? 2 * detail::kMediumGranule
                                                          : detail::kChunkSize + detail::kPageSize;
  const std::uint64_t lo = b.usable_size >= window ? b.usable_size - window + 1 : 0;
  SizeEntry* it = std::lower_bound(big_.begin(), big_.end(), lo + 1,
                                   [](const SizeEntry& e, std::uint64_t key) { return e.key < key; });
  for (; it != big_.end() && it->key - 1 <= b.usable_size; ++it)
    if (it->count && size_expects(it->key - 1, b)) {
      --it->count;
      return true;
    }
  return false;
}

}  // namespace strata::leakreg

using namespace strata::leakreg;
using strata::detail::LockGuard;

extern "C" {

STRATA_API int strata_register_expected_leak(const void* p) noexcept {
  if (!p) return 0;
  Registry& r = registry();
  LockGuard g(r.lock);
  bool fresh;
  return r.addrs.insert(reinterpret_cast<std::uintptr_t>(p), &fresh) && fresh;
}

STRATA_API int strata_unregister_expected_leak(const void* p) noexcept {
  if (!p) return 0;
  Registry& r = registry();
  LockGuard g(r.lock);
  return r.addrs.erase(reinterpret_cast<std::uintptr_t>(p));
}

STRATA_API int strata_register_expected_leak_size(size_t size, size_t count) noexcept {
  if (!count || size == SIZE_MAX) return 0;
  Registry& r = registry();
  LockGuard g(r.lock);
  bool fresh;
  SizeEntry* e = r.sizes.insert(size + 1, &fresh);
  if (!e) return 0;
  e->count += count;
  return 1;
}

STRATA_API int strata_unregister_expected_leak_size(size_t size, size_t count) noexcept {
  if (!count || size == SIZE_MAX) return 0;
  Registry& r = registry();
  LockGuard g(r.lock);
  SizeEntry* e = r.sizes.find(size + 1);
  if (!e) return 0;
  e->count -= count < e->count ? count : e->count;
  if (!e->count) r.sizes.erase(size + 1);
  return 1;
}

STRATA_API int strata_register_expected_leak_class(const char* type_name, size_t count) noexcept {
  if (!type_name || !*type_name || !count) return 0;
  const char* name = plain(type_name);
  std::size_t n = std::strlen(name);
  if (!n || n > 4096) return 0;
  Registry& r = registry();
  LockGuard g(r.lock);
  ClassEntry* e = find_class(r.classes, name);
  if (!e) {
    auto* stored = static_cast<char*>(r.names.alloc(n + 1));
    if (!stored) return 0;
    std::memcpy(stored, name, n + 1);
    e = insert_class(r.classes, name, stored);
    if (!e) return 0;
  }
  e->count += count;
  return 1;
}

STRATA_API int strata_unregister_expected_leak_class(const char* type_name, size_t count) noexcept {
  if (!type_name || !*type_name || !count) return 0;
  Registry& r = registry();
  LockGuard g(r.lock);
  ClassEntry* e = find_class(r.classes, plain(type_name));
  if (!e || !e->count) return 0;
  e->count -= count < e->count ? count : e->count;
  return 1;
}

}  // extern "C"
