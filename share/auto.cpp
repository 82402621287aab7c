// strata — strata::simple_share: at the module's load, before its own
// constructors allocate, use the manager shared in this process if there is
// one, and otherwise share this module's own (docs/sharing.md).
#include <strata/share.h>

namespace strata::share {
void simple_share_at_load() noexcept;  // share.cpp
}

namespace {
// Priority 101, the first a program may use: before the module's own
// constructors (default priority) and its C++ static objects.
__attribute__((constructor(101))) void strata_simple_share_load() { strata::share::simple_share_at_load(); }
}  // namespace
