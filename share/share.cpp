// strata — sharing one memory manager between the modules of a process
// (SimpleShareMem for Linux, docs/sharing.md): publishing this copy's heap
// under the process's name, switching to the heap another module published,
// and the status of both.
//
// Compiled into every copy of strata.  In a copy built as strata::share
// (STRATA_SHARE_CLIENT: the core's strata_* functions renamed strata_own_*,
// share/dispatch.cpp defining the strata_* entry points) a module can also
// use another's heap; any other copy can only publish its own.
// Layer: above the public API (takes the API's addresses for its table).
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "chunk_map.hpp"
#include "heap.hpp"
#include "lock.hpp"
#include "log.hpp"
#include "options.hpp"
#include "os.hpp"
#include "record.hpp"
#include "../report/report.hpp"
#ifdef STRATA_SHARE_CLIENT
#include "client.hpp"
#endif

extern "C" __attribute__((visibility("hidden"))) void strata_detail_mark_not_unloadable() noexcept;

namespace strata::share {
namespace {

using detail::LockGuard;
using detail::MessageBuilder;

// Whether p is a block of this copy: what the chunk map knows and has not
// given back (an address given back and mapped again is someone else's).
bool owns(const void* p) noexcept {
  using namespace detail;
  ChunkKind k = chunk_map::kind_of(chunk_map::lookup(reinterpret_cast<std::uintptr_t>(p)));
  if (k == ChunkKind::kNone) return false;
  return !(k == ChunkKind::kFreed && os::is_mapped(p));
}

}  // namespace

// The malloc family's free of this copy, if it has one (mm/src/module_heap.cpp
// or mm/src/override_malloc.cpp define it).
extern "C" __attribute__((weak, visibility("hidden"))) void strata_detail_free_any(void* p) noexcept;

// This copy's table (its real functions: strata_own_* in a strata::share
// copy).  Constant: it lies in the read-only part of the module once
// relocated, which is what a user checks before following it.
extern const Table kTable;
const Table kTable = {
    kTableMagic, kAbi, sizeof(Table), kLayout, &kTable, &owns, &strata_detail_free_any,
#define STRATA_SHARE_FN(name, ret, params, args) &name,
#include "api.def"
#undef STRATA_SHARE_FN
};

namespace {

struct State {
  detail::Lock lock;
  strata_mm_role role = STRATA_MM_OWN;
  std::uint64_t since_ns = 0;
  char module[256] = {};
  char provider[256] = {};
  char name[64] = {};
  char reason[256] = {};
  bool main_program = false;
  // Publishing: the file this copy linked under `name`, and in which process.
  std::int64_t published_pid = 0;
  dev_t dev = 0;
  ino_t ino = 0;
};
State g_state;

std::uint64_t realtime_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// The report layer's bounded copy (mm/report/report.hpp).
using strata::report::copy_string;

void identify_locked() noexcept {
  if (g_state.module[0]) return;
  if (!module_of(&kTable, g_state.module, &g_state.main_program)) copy_string(g_state.module, 256, "?");
  copy_string(g_state.provider, sizeof g_state.provider, g_state.module);
  g_state.since_ns = realtime_ns();
}

// Records the decision; one line on stderr when verbose.
void decide_locked(const char* reason) noexcept {
  copy_string(g_state.reason, sizeof g_state.reason, reason);
  if (detail::option_enabled(detail::Option::kVerbose)) {
    MessageBuilder m;
    m.str("strata: share: ").str(g_state.module).str(": ").str(reason).str("\n");
    m.write(2);
  }
}

void set_role_locked(strata_mm_role role, const char* provider) noexcept {
  g_state.role = role;
  g_state.since_ns = realtime_ns();
  copy_string(g_state.provider, sizeof g_state.provider, provider);
}

// Removes the file at `path` only if it is still the one looked at.
bool unlink_if_same(const char* path, dev_t dev, ino_t ino) noexcept {
  struct stat st;
  if (::lstat(path, &st) != 0 || st.st_dev != dev || st.st_ino != ino) return false;
  return ::unlink(path) == 0;
}

// The module cannot be unloaded from now on (a shared library only).
bool pin_locked(MessageBuilder& why) noexcept {
  if (g_state.main_program) return true;
  void* h = dlopen(g_state.module, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
  if (!h) {
    why.str("cannot pin ").str(g_state.module).str(" in memory (dlopen RTLD_NODELETE failed): not shared");
    return false;
  }
  dlclose(h);  // the reference NOLOAD took; RTLD_NODELETE stays
  return true;
}

// Writes this process's record under its name.  1 published; 0 refused (why).
int publish_locked(MessageBuilder& why) noexcept {
  Self s = self();
  char path[64];
  record_path(path, s);
  copy_string(g_state.name, sizeof g_state.name, path);
  Record r = make_record(s, &kTable, g_state.module);
  // The record is written whole under a private temporary name, then linked
  // to the real one, which fails if that exists: a reader never sees half a
  // record, and two modules racing cannot both win.
  char tmp[96];
  {
    MessageBuilder t;
    t.str(path).str(".tmp-").hex(detail::os::random_u64());
    copy_string(tmp, sizeof tmp, t.c_str());
  }
  int fd = ::open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    why.str("cannot create ").str(tmp).str(" (errno ").dec(static_cast<unsigned>(errno)).str("): not shared");
    return 0;
  }
  bool written = ::fchmod(fd, 0600) == 0 && ::write(fd, &r, sizeof r) == static_cast<ssize_t>(sizeof r);
  struct stat st;
  written = written && ::fstat(fd, &st) == 0;
  ::close(fd);
  if (!written) {
    ::unlink(tmp);
    why.str("cannot write ").str(tmp).str(": not shared");
    return 0;
  }
  MessageBuilder replaced;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (::link(tmp, path) == 0) {
      ::unlink(tmp);
      g_state.published_pid = s.pid;
      g_state.dev = st.st_dev;
      g_state.ino = st.st_ino;
      why.str(replaced.c_str()).str("shares its heap under ").str(path);
      if (!g_state.main_program) why.str(" (pinned: this library stays loaded until the process exits)");
      return 1;
    }
    if (errno != EEXIST) break;
    MessageBuilder seen;
    Lookup l = lookup(path, s, seen);
    switch (l.found) {
      case Found::kNone:
        continue;  // removed meanwhile: link again
      case Found::kValid:
        ::unlink(tmp);
        why.str("a manager is shared already in this process, by ").str(l.record.module).str(": not shared");
        return 0;
      case Found::kStale:
      case Found::kBad:
      case Found::kLoose:
        // This user's file, but not a live record of this process: replaced.
        if (unlink_if_same(path, l.dev, l.ino)) replaced.str("replaced what was there (").str(seen.c_str()).str("); ");
        continue;
      case Found::kVersion:
      case Found::kForeignOwner:
      case Found::kError:
        ::unlink(tmp);
        why.str(seen.c_str()).str(": not shared");
        return 0;
    }
  }
  ::unlink(tmp);
  why.str("cannot link ").str(path).str(" (errno ").dec(static_cast<unsigned>(errno)).str("): not shared");
  return 0;
}

// Normal exit (or the provider's finalisation): the name goes, if it is
// still this copy's and this is the process that published it.
__attribute__((destructor)) void unpublish() {
  LockGuard g(g_state.lock);
  if (g_state.role != STRATA_MM_SHARING || g_state.published_pid != static_cast<std::int64_t>(::getpid())) return;
  unlink_if_same(g_state.name, g_state.dev, g_state.ino);
  g_state.published_pid = 0;
}

// fork's child is another process: a provider publishes again under the
// child's pid (the parent's name stays the parent's); a user keeps using the
// provider's copy, which is in the child too.
void after_fork_child() noexcept {
  g_state.lock.reset_after_fork();
  if (g_state.role != STRATA_MM_SHARING) return;
  LockGuard g(g_state.lock);
  MessageBuilder why;
  if (!publish_locked(why)) {
    set_role_locked(STRATA_MM_OWN, g_state.module);
    decide_locked(why.c_str());
  }
}
__attribute__((constructor)) void register_fork_handler() { pthread_atfork(nullptr, nullptr, after_fork_child); }

}  // namespace
}  // namespace strata::share

using namespace strata::share;

extern "C" {

STRATA_API int strata_share_memory_manager(void) noexcept {
  LockGuard g(g_state.lock);
  identify_locked();
  if (g_state.role == STRATA_MM_SHARING) {
    decide_locked("this module shares its manager already: only one manager is shared per process");
    return 0;
  }
  if (g_state.role == STRATA_MM_USING_SHARED) {
    MessageBuilder m;
    m.str("this module uses the manager of ").str(g_state.provider).str(": it cannot share one");
    decide_locked(m.c_str());
    return 0;
  }
  MessageBuilder why;
  if (!pin_locked(why) || !publish_locked(why)) {
    decide_locked(why.c_str());
    return 0;
  }
  set_role_locked(STRATA_MM_SHARING, g_state.module);
  // Other modules' blocks live in this copy's heap: it is never released,
  // not even at the process's exit (as a copy in the main program).
  strata_detail_mark_not_unloadable();
  decide_locked(why.c_str());
  return 1;
}

STRATA_API int strata_attempt_to_use_shared_memory_manager(void) noexcept {
  LockGuard g(g_state.lock);
  identify_locked();
  if (g_state.role == STRATA_MM_USING_SHARED) return 1;
  if (g_state.role == STRATA_MM_SHARING) return 1;  // it is the shared manager (FastMM5's rule)
#ifndef STRATA_SHARE_CLIENT
  decide_locked("this copy of strata was not built as strata::share or strata::simple_share: it keeps its heap");
  return 0;
#else
  using namespace strata::detail;
  bool pools;
  {
    LockGuard hl(g_heaps_lock);
    pools = g_heaps && (g_heaps != &g_default_heap || g_default_heap.next);
  }
  if (pools || g_default_heap.tl_count || heap_has_live_blocks(&g_default_heap)) {
    decide_locked("this module's own heap has live blocks, pools or thread-local handles already: it keeps "
                  "its own heap (switch before allocating)");
    return 0;
  }
  Self s = self();
  char path[64];
  record_path(path, s);
  copy_string(g_state.name, sizeof g_state.name, path);
  MessageBuilder why;
  Lookup l = lookup(path, s, why);
  if (l.found != Found::kValid) {
    why.str(": keeps its own heap");
    decide_locked(why.c_str());
    return 0;
  }
  if (l.table == &kTable) {
    decide_locked("the record names this module's own manager: nothing to switch to");
    return 0;
  }
  client_use(l.table);
  set_role_locked(STRATA_MM_USING_SHARED, l.record.module);
  MessageBuilder m;
  m.str("uses the manager of ").str(l.record.module).str(" (").str(path).str(")");
  decide_locked(m.c_str());
  return 1;
#endif
}

STRATA_API int strata_memory_manager_status(strata_mm_status_t* out) noexcept {
  if (!out || out->size < sizeof(strata_mm_status_t)) return -1;
  LockGuard g(g_state.lock);
  identify_locked();
  out->role = g_state.role;
  out->abi = kAbi;
  out->since_ns = g_state.since_ns;
  copy_string(out->module, sizeof out->module, g_state.module);
  copy_string(out->provider, sizeof out->provider, g_state.provider);
  copy_string(out->name, sizeof out->name, g_state.name);
  copy_string(out->reason, sizeof out->reason,
       g_state.reason[0] ? g_state.reason : "its own heap: neither shared nor switched");
  return 0;
}

STRATA_API const char* strata_mm_role_name(strata_mm_role role) noexcept {
  switch (role) {
    case STRATA_MM_OWN: return "own";
    case STRATA_MM_SHARING: return "sharing";
    case STRATA_MM_USING_SHARED: return "using shared";
  }
  return "?";
}

}  // extern "C"

#ifdef STRATA_SHARE_CLIENT
namespace strata::share {
// strata::simple_share's step at load (share/auto.cpp).
void simple_share_at_load() noexcept {
  if (!detail::option_enabled(detail::Option::kShare)) {
    LockGuard g(g_state.lock);
    identify_locked();
    decide_locked("STRATA_SHARE=0: keeps its own heap, shares nothing");
    return;
  }
  if (strata_attempt_to_use_shared_memory_manager()) return;
  if (strata_share_memory_manager()) return;
  // Another module published between the look-up and the link.
  strata_attempt_to_use_shared_memory_manager();
}
}  // namespace strata::share
#endif
