// strata — bad input reported: the error handler, the names of the error
// kinds and the messages.  Every invalid free, realloc or size query ends in
// report(): the handler the program set (strata_set_error_handler), or one
// line on stderr and abort().
// Layer: above the tiers (used by classify, free, realloc and the API).
#pragma once
#include <strata/strata.h>

#include "check.hpp"

namespace strata::detail {

// Calls the error handler with (kind, p, op, msg); without one, writes
// "strata: op(p): kind: msg" to stderr and aborts.
STRATA_SLOW_PATH void report(strata_error_kind kind, const void* p, const char* op, const char* msg) noexcept;
// The explanation for a medium block's error as medium_check returns it.
const char* medium_message(strata_error_kind err) noexcept;
strata_error_handler_t set_error_handler(strata_error_handler_t handler, void* user) noexcept;
const char* error_kind_name(strata_error_kind kind) noexcept;
// After this copy's final release (its module's unload, or its finalisation
// at exit) a late call with a pointer it handed out before is not an error
// worth stopping the process for: report() ignores everything from then on.
void silence_errors() noexcept;

}  // namespace strata::detail
