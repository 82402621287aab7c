// leakreg — what the core's API calls of the leak layer: one hook, at load.
// Layer: leakreg.
#pragma once

namespace strata::leakreg {

// Registers the leak report at shutdown with the core's finalisation
// (STRATA_REPORT_LEAKS, strata_report_memory_leaks_on_shutdown) and reads
// STRATA_LEAK_STACKS; called once at load (api.cpp).  `replaces_malloc`:
// this copy is libstrata.so, whose heap already holds what the libraries
// initialised before it allocated (counted apart from the program's leaks).
void register_leak_report(bool replaces_malloc) noexcept;

}  // namespace strata::leakreg
