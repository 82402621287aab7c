// A plugin for the share tests (tests/share/CMakeLists.txt builds it four
// times): with strata::simple_share (share_plugin_a, share_plugin_b), with
// strata::share and an allocation before it tries to switch
// (share_plugin_late, SHARE_PLUGIN_LATE), and with strata::module_heap, a
// private heap that shares nothing (share_plugin_private).  Its own code
// calls plain malloc, free, new and delete; the exported plug_* functions
// are what the host calls.
#include <strata/strata.h>
#ifndef SHARE_PLUGIN_PRIVATE
#include <strata/share.h>
#endif

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define PLUG extern "C" __attribute__((visibility("default")))

namespace {
#ifdef SHARE_PLUGIN_LATE
// Allocated before the module tries to switch: it must keep its own heap.
void* g_early = nullptr;
int g_attempt = -1;
__attribute__((constructor)) void late_init() {
  g_early = std::malloc(100);
  g_attempt = strata_attempt_to_use_shared_memory_manager();
}
#endif
// The last error this module's strata reported (through the handler of the
// heap it uses: its own, or the shared manager's).
strata_error_kind g_error = STRATA_ERROR_NONE;
void on_error(const strata_error_t* e, void*) { g_error = e->kind; }
}  // namespace

PLUG void* plug_malloc(size_t n) { return std::malloc(n); }
PLUG void plug_free(void* p) { std::free(p); }
PLUG void* plug_realloc(void* p, size_t n) { return std::realloc(p, n); }
PLUG void* plug_fill(size_t n, int byte) {
  void* p = std::malloc(n);
  if (p) std::memset(p, byte, n);
  return p;
}
PLUG std::string* plug_new_string(const char* s) { return new std::string(s); }
PLUG void plug_append(std::string* s, const char* more) { s->append(more); }
PLUG void plug_delete_string(std::string* s) { delete s; }
PLUG std::vector<int>* plug_new_vector(int n) {
  auto* v = new std::vector<int>();
  for (int i = 0; i < n; ++i) v->push_back(i);
  return v;
}
PLUG void plug_push(std::vector<int>* v, int n) {
  for (int i = 0; i < n; ++i) v->push_back(i);
}
PLUG void plug_delete_vector(std::vector<int>* v) { delete v; }
// strata_free through this module's strata, with its error handler caught:
// the kind reported (STRATA_ERROR_NONE if none).
PLUG int plug_strata_free(void* p) {
  g_error = STRATA_ERROR_NONE;
  strata_error_handler_t previous = strata_set_error_handler(on_error, nullptr);
  strata_free(p);
  strata_set_error_handler(previous, nullptr);
  return g_error;
}
// The small blocks live in the heap this module's strata calls go to.
PLUG size_t plug_small_blocks() {
  strata_heap_summary_t s;
  s.size = sizeof s;
  return strata_heap_summary(nullptr, &s) == 0 ? s.small_blocks : 0;
}
#ifndef SHARE_PLUGIN_PRIVATE
PLUG int plug_status(strata_mm_status_t* out) { return strata_memory_manager_status(out); }
PLUG int plug_attempt() { return strata_attempt_to_use_shared_memory_manager(); }
PLUG int plug_share() { return strata_share_memory_manager(); }
#endif
#ifdef SHARE_PLUGIN_LATE
PLUG int plug_late_attempt() { return g_attempt; }
PLUG void plug_free_early() { std::free(g_early); g_early = nullptr; }
#endif
