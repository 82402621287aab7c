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
namespace {
std::atomic<const Table*> g_use{nullptr};
}
void client_use(const Table* t) noexcept { g_use.store(t, std::memory_order_release); }
const Table* client_table() noexcept { return g_use.load(std::memory_order_acquire); }
}  // namespace strata::share

using strata::share::g_use;
using strata::share::Table;

#define STRATA_SHARE_FN(name, ret, params, args)                                    \
  extern "C" STRATA_API ret name params noexcept {                                  \
    if (const Table* t = g_use.load(std::memory_order_acquire)) return t->name args; \
    return name##_own args;                                                         \
  }
#include "api.def"
#undef STRATA_SHARE_FN
