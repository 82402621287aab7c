// strata — the error handler and the messages (error.hpp).
#include "error.hpp"

#include <stdlib.h>

#include <atomic>

#include "log.hpp"

namespace strata::detail {

namespace {
std::atomic<strata_error_handler_t> g_handler{nullptr};
std::atomic<void*> g_handler_user{nullptr};
std::atomic<bool> g_silenced{false};

const char* const kKindNames[] = {"no error",    "foreign pointer", "interior pointer", "double free",
                                  "freed memory", "wrong pool",      "heap corruption", "wrong size"};
static_assert(sizeof(kKindNames) / sizeof(kKindNames[0]) == STRATA_ERROR_WRONG_SIZE + 1);
}  // namespace

void report(strata_error_kind kind, const void* p, const char* op, const char* msg) noexcept {
  if (g_silenced.load(std::memory_order_relaxed)) return;
  strata_error_t e{kind, p, op, msg};
  strata_error_handler_t h = g_handler.load(std::memory_order_acquire);
  if (h) {
    h(&e, g_handler_user.load(std::memory_order_acquire));
    return;
  }
  MessageBuilder m;
  m.str("strata: ").str(op).str("(").ptr(p).str("): ").str(kKindNames[kind]).str(": ").str(msg).str("\n");
  m.write(2);
  abort();
}

void silence_errors() noexcept { g_silenced.store(true, std::memory_order_relaxed); }

const char* medium_message(strata_error_kind err) noexcept {
  switch (err) {
    case STRATA_ERROR_INTERIOR_POINTER: return "the address points inside a medium block, not at its start";
    case STRATA_ERROR_DOUBLE_FREE: return "the medium block is already free";
    default: return "the boundary tag before the medium block was overwritten";
  }
}

strata_error_handler_t set_error_handler(strata_error_handler_t handler, void* user) noexcept {
  g_handler_user.store(user, std::memory_order_release);
  return g_handler.exchange(handler, std::memory_order_acq_rel);
}

const char* error_kind_name(strata_error_kind kind) noexcept {
  unsigned k = static_cast<unsigned>(kind);
  return k < sizeof(kKindNames) / sizeof(kKindNames[0]) ? kKindNames[k] : "unknown error";
}

}  // namespace strata::detail
