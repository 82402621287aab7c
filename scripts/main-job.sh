#!/usr/bin/env bash
# strata's main job, for a fresh Debian 12 machine:
#   1. installs the Debian packages (scripts/install-deps.sh; needs root or sudo)
#   2. configures a Release build in ./build (tests off) and builds the
#      micro benchmark, bench/micro.cpp (target strata_micro)
#   3. runs bench/compare.py in quick mode: time per operation for strata,
#      glibc and tbbmalloc, the ratios strata/glibc and strata/tbbmalloc
#      (below 1: strata is faster) and their geometric means
#   4. prints strata's heap summary as the benchmarks left it: the benchmark
#      binary calls strata_print_summary(NULL, 1) after its last benchmark
#      (compare.py prints it after the table)
# About 2-3 minutes on 2 cores, most of it the build.
# Usage: scripts/main-job.sh [extra compare.py options, e.g. --markdown]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF
cmake --build build -j"$jobs" --target strata_micro

python3 bench/compare.py --quick --binary build/bench/strata_micro "$@"

echo
echo "main job: done in $(( $(date +%s) - start )) s"
