#!/usr/bin/env bash
# The leak layer's cost on a malloc/free workload (bench/leak_workload.cpp):
# strata with tracking off, with the leak report on (STRATA_REPORT_LEAKS=1,
# which costs nothing until exit), with call stacks (STRATA_LEAK_STACKS=1);
# beside glibc's malloc under heaptrack and under valgrind memcheck.  Best
# of RUNS (default 3).  docs/leaks.md has the figures.
#
#   bench/leak_cost.sh [build-dir]     (default build/release)
set -euo pipefail
B=${1:-build/release}
W=$B/bench/strata_leak_workload
LIB=$B/mm/libstrata.so
RUNS=${RUNS:-3}
OPS=${OPS:-2000000}
best() {  # best M ops/s of RUNS runs of "$@"
  local best=0 v
  for _ in $(seq "$RUNS"); do
    v=$("$@" 2>/dev/null | sed -n 's/.*: \([0-9.]*\) M ops\/s/\1/p' | tail -1)
    best=$(awk -v a="$best" -v b="${v:-0}" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "$best"
}
base=$(best env LD_PRELOAD="$LIB" "$W" "$OPS")
printf '%-44s %8s M ops/s  %s\n' "strata, tracking off" "$base" "1.00"
row() {
  local name=$1; shift
  local v; v=$(best "$@")
  printf '%-44s %8s M ops/s  %s\n' "$name" "$v" "$(awk -v a="$v" -v b="$base" 'BEGIN { printf "%.3f", a / b }')"
}
row "strata, leak report on (STRATA_REPORT_LEAKS)" env LD_PRELOAD="$LIB" STRATA_REPORT_LEAKS=1 "$W" "$OPS"
row "strata, call stacks (STRATA_LEAK_STACKS)" env LD_PRELOAD="$LIB" STRATA_REPORT_LEAKS=1 STRATA_LEAK_STACKS=1 "$W" "$OPS"
row "glibc malloc" "$W" "$OPS"
if command -v heaptrack >/dev/null; then
  d=$(mktemp -d)
  row "glibc malloc under heaptrack" heaptrack -o "$d/ht" "$W" "$OPS"
  rm -rf "$d"
fi
if command -v valgrind >/dev/null; then
  row "glibc malloc under valgrind memcheck (1/10 ops)" valgrind -q --leak-check=full "$W" $((OPS / 10))
fi
