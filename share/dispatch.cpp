// strata — the entry points of a module built as strata::share: every
// strata_* function of api.def goes to the shared manager's table once the
// module switched to it (strata_attempt_to_use_shared_memory_manager), and
// to this module's own copy (its functions renamed *_own, share/rename.h)
// until then.  One load and one test per call on the module's own heap.
// Layer: the module's entry points, above the renamed core.
#include <strata/leaks.h>
#include <strata/state.h>
#include <strata/strata.h>

#include <atomic>

#include "client.hpp"

#define STRATA_SHARE_FN(name, ret, params, args) extern "C" ret name##_own params noexcept;
#include "api.def"
#undef STRATA_SHARE_FN

namespace strata::share {
std::atomic<const Table*> g_client_table{nullptr};
}  // namespace strata::share
// The module's malloc family's switch (mm/src/module_heap.cpp, or
// mm/src/override_malloc.cpp in an executable's copy).
extern "C" __attribute__((weak, visibility("hidden"))) void strata_detail_route_shared() noexcept;
namespace strata::share {
void client_use(const Table* t) noexcept {
  g_client_table.store(t, std::memory_order_release);
  if (strata_detail_route_shared) strata_detail_route_shared();
}
}  // namespace strata::share

using strata::share::g_client_table;
using strata::share::Table;

#define STRATA_SHARE_FN(name, ret, params, args)                                    \
  extern "C" STRATA_API ret name params noexcept {                                  \
    if (const Table* t = g_client_table.load(std::memory_order_acquire)) return t->fn_##name args; \
    return name##_own args;                                                         \
  }
#include "api.def"
#undef STRATA_SHARE_FN
