#!/bin/sh
# CPython with PYTHONMALLOC=malloc (every object through malloc): a set of
# allocation-heavy stdlib test modules (regrtest, two workers) and a
# deterministic workload.  Prints only deterministic lines.  Arguments: the
# test modules (default: a short list).  Runs in the current directory.
set -u
PY=${STRATA_OVERRIDE_PYTHON:-/usr/bin/python3}
export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
here=$(dirname "$0")
if ! "$PY" -c 'import test.test_json, test.libregrtest' 2>/dev/null; then
  echo "python_stdlib.sh: $PY has no stdlib test suite; install libpython3.11-testsuite (scripts/install-deps.sh)" >&2
  exit 2
fi
"$PY" "$here/py_workload.py" || { echo "py_workload.py failed: $?"; }
[ $# -gt 0 ] || set -- test_json test_re test_dict test_list test_set test_unicode test_pickle test_collections test_deque test_weakref test_gc test_threading
"$PY" -m test -j2 --timeout=600 "$@" > regrtest.log 2>&1
rc=$?
echo "regrtest exit status $rc"
grep -E '^(All [0-9]+ tests OK\.|[0-9]+ tests? (OK|failed)|Tests result: )' regrtest.log
grep -E '^    test_' regrtest.log || true
[ $rc -eq 0 ] || { echo "---- regrtest.log" >&2; cat regrtest.log >&2; }
exit $rc
