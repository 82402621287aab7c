// strata — a strata::share copy's switch to another module's manager
// (share/dispatch.cpp): the table every strata_* entry point of this module
// goes through once set.
// Layer: the module's entry points (above the renamed core).
#pragma once
#include <atomic>

#include "table.hpp"

namespace strata::share {

// The table in use, or null while this module uses its own heap.
extern std::atomic<const Table*> g_client_table;
inline const Table* client_table() noexcept { return g_client_table.load(std::memory_order_acquire); }
// Sets the table this module's calls go to from now on (never unset: the
// module's blocks live in that heap).
void client_use(const Table* t) noexcept;

}  // namespace strata::share

