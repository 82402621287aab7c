#!/usr/bin/env bash
# strata's test command: installs the build dependencies, configures and
# builds a CMake preset into build/<preset>, and runs the CTest suite without
# the slow tests.  Without --preset: the release preset (every suite), then
# the debug-full preset (every validator after every change) on the suites
# that drive the heap directly (labels unit, api, corruption, stress,
# unload; the real programs of label override run in release only).
#
#   scripts/run-tests.sh [--preset NAME] [--slow] [--no-deps] [--jobs N] [-- CTEST-ARGS...]
#
#   --preset NAME  configure/build/test only this preset from CMakePresets.json:
#                  release, debug, debug-full, asan, tsan
#   --slow         also register and run the slow suites (label "slow")
#   --no-deps      do not run scripts/install-deps.sh
#   --jobs N       build parallelism (default: nproc)
#   -- ARGS        passed on to ctest (e.g. -- -L unit, -- -R install)
#
# Exits non-zero if the configure, the build or any test fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

preset=
slow=0
deps=1
jobs="$(nproc 2>/dev/null || echo 2)"
ctest_jobs=2
extra=()

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --preset) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; preset="$2"; shift 2 ;;
    --preset=*) preset="${1#--preset=}"; shift ;;
    --slow) slow=1; shift ;;
    --no-deps) deps=0; shift ;;
    --jobs|-j) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; jobs="$2"; shift 2 ;;
    --jobs=*) jobs="${1#--jobs=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run-tests.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

case "${preset:-release}" in
  release|debug|debug-full|asan|tsan) ;;
  *) echo "run-tests.sh: unknown preset '$preset' (release, debug, debug-full, asan, tsan)" >&2; exit 2 ;;
esac

step() { printf '\n==== strata: %s\n' "$*"; }

if ((deps)); then
  step "dependencies (scripts/install-deps.sh)"
  bash scripts/install-deps.sh
fi

# run_preset NAME [CTEST-ARGS...]: configure, build and test one preset.
run_preset() {
local preset="$1"
shift
local build_dir
build_dir="build/$preset"
slow_opt=OFF; ((slow)) && slow_opt=ON

step "configure $build_dir (preset $preset, STRATA_SLOW_TESTS=$slow_opt)"
cmake --preset "$preset" -DSTRATA_SLOW_TESTS="$slow_opt"

step "build $build_dir (-j$jobs)"
cmake --build "$build_dir" -j "$jobs"

# Sanitizer runtime options (the test presets set the same).
case "$preset" in
  asan)
    export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" ;;
  tsan)
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}" ;;
esac

ctest_args=(--test-dir "$build_dir" --output-on-failure -j "$ctest_jobs" --no-tests=error)
((slow)) || ctest_args+=(-LE slow)
ctest_args+=("$@")

step "test: ctest ${ctest_args[*]}"
log="$build_dir/run-tests.log"
set +e
ctest "${ctest_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

summary="$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)"
step "result ($preset): ${summary:-no ctest summary line (ctest exit code $rc)}"
if ((rc != 0)); then
  echo "strata: tests FAILED (ctest exit code $rc); full log: $log" >&2
  return "$rc"
fi
echo "strata: all tests passed ($preset)"
}

if [[ -n "$preset" ]]; then
  run_preset "$preset" "${extra[@]}"
else
  run_preset release "${extra[@]}"
  run_preset debug-full -L 'unit|api|corruption|stress|unload' "${extra[@]}"
fi
