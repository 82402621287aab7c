/* strata — one memory manager for an executable and its plugins
 * (SimpleShareMem for Linux).  docs/sharing.md.
 *
 * Every module (executable or shared library) that links strata statically
 * has a copy of it, with its own heap.  One module can publish its heap
 * under a name bound to the process; a module built with strata::share (or
 * strata::simple_share, which does both steps at load time) can then route
 * every strata_* call of its own, and its own malloc, free, new and delete,
 * to the published heap, so that blocks may cross between the modules.
 *
 * The name is /dev/shm/strata-mm-<euid>-<pid>.  Its contents are untrusted:
 * a record that is not owned by this user, not private (0600), not of this
 * very process (pid, start time and exec), not of this ABI, or whose table
 * is not strata's own read-only table inside a module loaded in this
 * process, is ignored (and named when STRATA_VERBOSE=1), never followed.
 */
#ifndef STRATA_SHARE_H
#define STRATA_SHARE_H

#include <strata/strata.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Which heap a module's strata calls go to. */
typedef enum strata_mm_role {
  STRATA_MM_OWN = 0,           /* its own heap, not published */
  STRATA_MM_SHARING = 1,       /* its own heap, published for the other modules */
  STRATA_MM_USING_SHARED = 2   /* the heap another module published */
} strata_mm_role;

typedef struct strata_mm_status {
  size_t size;                 /* in: sizeof(strata_mm_status_t) */
  strata_mm_role role;
  unsigned abi;                /* this module's share ABI version */
  unsigned long long since_ns; /* CLOCK_REALTIME, ns, when the role was taken (the module's load for OWN) */
  char module[256];            /* this module's file (the executable's for the main program) */
  char provider[256];          /* the module whose heap is used: this one unless USING_SHARED */
  char name[64];               /* the shared name looked up or published ("" before either) */
  char reason[256];            /* why the role is what it is: the last decision, in words */
} strata_mm_status_t;

/* Publishes this module's heap.  1 on success; 0 if it was refused, with the
 * reason in strata_memory_manager_status (and on stderr when verbose): only
 * one manager is shared per process, so a second call (by this module or
 * another) fails; a module that uses another's heap cannot share; a shared
 * library that cannot pin itself in memory (RTLD_NODELETE) does not share;
 * the name may be held by another user.  A library that shares stays loaded
 * until the process exits; the name is removed when the process exits
 * normally (a name left by a dead process is recognised as stale). */
STRATA_API int strata_share_memory_manager(void) STRATA_NOEXCEPT;

/* Looks the name up and, if a valid, compatible record is found, routes
 * every allocation, free, realloc, pool, thread-local, report and leak call
 * of this module to the shared heap.  1 on success (or if this module uses
 * it already, or is itself the module that shares); 0 and nothing changes if there is no usable record, if this
 * module's own heap has live blocks, pools or thread-local handles (FastMM's
 * rule: switch before allocating), or if this copy of strata was not built
 * as strata::share / strata::simple_share.  Call it before the module's
 * threads allocate. */
STRATA_API int strata_attempt_to_use_shared_memory_manager(void) STRATA_NOEXCEPT;

/* Which manager this module uses, since when, and why.  0, or -1 if out is
 * NULL or out->size is too small. */
STRATA_API int strata_memory_manager_status(strata_mm_status_t* out) STRATA_NOEXCEPT;

/* "own", "sharing" or "using shared". */
STRATA_API const char* strata_mm_role_name(strata_mm_role role) STRATA_NOEXCEPT;

#ifdef __cplusplus
}
#endif
#endif
