#!/usr/bin/env bash
# strata's main job, for a fresh Debian 12 machine:
#   1. installs the Debian packages (scripts/install-deps.sh; needs root or sudo)
#   2. configures a Release build in ./build (tests off) and builds the
#      micro benchmark (bench/micro.cpp, target strata_micro), the workloads
#      (bench/workloads/, target strata_workloads) and libstrata.so
#   3. runs bench/compare.py in quick mode on the micro benchmarks: time per
#      operation for strata and the peers (glibc, tbbmalloc, mimalloc,
#      jemalloc, tcmalloc), the ratios strata/glibc and strata/best peer
#      (below 1: strata is faster) and their geometric means
#   4. runs bench/run --quick: every whole workload with every allocator
#      preloaded, 1, 2 and 4 threads, 3 interleaved rounds; time and peak RSS
#      ratios to glibc and to the best peer, geometric means
#   5. times strata_pool_destroy and strata_pool_reset of a pool holding a
#      million live blocks against freeing them one by one
#   6. prints strata's heap report as the micro benchmarks left it (a row
#      per size class, the tiers, the usage summary, the memory map's
#      totals: docs/introspection.md): the benchmark binary calls
#      strata_write_report(NULL, 1, STRATA_REPORT_TEXT) after its last
#      benchmark (printed at the very end)
# About 3-4 minutes on 2 cores (build about 1, micro about 1.5, workloads
# about 1).  The full run, which also rewrites docs/benchmarks.md, is
# bench/run --docs.
# Usage: scripts/main-job.sh [extra compare.py options, e.g. --markdown]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF
cmake --build build -j"$jobs" --target strata_micro strata_workloads strata_override strata_pairs

summary=$(mktemp /tmp/strata-summary.XXXXXX)
trap 'rm -f "$summary"' EXIT
# compare.py prints the table, then strata's heap summary (from the marker
# line on): the summary is held back and printed after the workload table.
python3 bench/compare.py --quick --binary build/bench/strata_micro "$@" |
  awk -v s="$summary" '/^==== strata heap summary/ {f = 1} f {print > s; next} {print}'

echo
python3 bench/run --quick --build build

echo
echo "==== pools: destroy and reset of a pool holding a million live blocks (O(mappings))"
build/bench/strata_pairs pool-destroy 1000000 3

echo
cat "$summary"

echo
echo "main job: done in $(( $(date +%s) - start )) s"
