#!/usr/bin/env bash
# Instructions per malloc+free pair and per append-realloc, counted with
# callgrind, for strata and its peers.
#
#   scripts/callgrind-pairs.sh [build-dir]        (default: ./build)
#
# Environment: SIZES="16 64 256 1024"  APPENDS="1 8"  N1=100000  N2=200000  JOBS=<nproc>
#              ONLY="strata strata.so" (only these cases; default: all)
#              STRATA_COMMIT (shown in the header; default: git log -1)
#
# bench/pairs.cpp (target strata_pairs) runs a bare loop of N pairs
# p = malloc(size); free(p).  Each case runs under callgrind with N1 and with
# N2 pairs, and the table shows (Ir(N2) - Ir(N1)) / (N2 - N1): start-up,
# first-touch and exit costs cancel, what is left is one pair plus the loop
# around it, which is NOT subtracted: 9 instructions per pair for malloc/free
# (mov size, call malloc, PLT jmp, mov p, call free, PLT jmp, add, cmp, jne),
# 7 for the direct strata API (no PLT jumps).
# The "append N B" columns count one realloc call of a string grown N bytes
# per call (strata_pairs append: the buffer restarts every 4096 calls, so it
# stays under 32 KiB; one free per 4096 calls is included), loop included
# (about 10 instructions).  Cases:
#   strata     strata_malloc/strata_free called directly (libstrata.a)
#   strata.aligned64  strata_aligned_alloc(64, size)/strata_free (no append columns)
#   strata.batch      rounds of 1,000 strata_malloc(size) then 1,000 strata_free (libstrata.a):
#                     N/1000 rounds, so the figure is per pair too; the blocks go through
#                     the thread cache's refills and spills (no append columns)
#   strata.tl_get     one strata_thread_local_get of an existing block of `size` bytes per
#                     iteration (its loop: about 5 instructions; no append columns)
#   strata.so  malloc/free with LD_PRELOAD=<build>/mm/libstrata.so (the override)
#   glibc      malloc/free of glibc
#   tbbmalloc, mimalloc, jemalloc, tcmalloc: malloc/free with LD_PRELOAD of the
#              peer's shared library (skipped when not installed).
# Each LD_PRELOAD case is checked: strata_pairs reports which object `malloc`
# resolves to, and a case whose preload did not take is reported as failed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SIZES=${SIZES:-"16 64 256 1024"}
APPENDS=${APPENDS:-"1 8"}
# Columns: a size (malloc+free pair) or aN (append N bytes per realloc).
COLS="$SIZES $(for a in $APPENDS; do printf 'a%s ' "$a"; done)"
N1=${N1:-100000}
N2=${N2:-200000}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
LIBDIR=/usr/lib/x86_64-linux-gnu

command -v valgrind >/dev/null || { echo "callgrind-pairs: valgrind is not installed (scripts/install-deps.sh)" >&2; exit 1; }
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD" -j"$JOBS" --target strata_pairs strata_override >/dev/null
PAIRS=$BUILD/bench/strata_pairs
STRATA_SO=$(readlink -f "$BUILD/mm/libstrata.so")

# name  mode  preload (empty: none)  expected object of malloc (substring)
CASES=(
  "strata strata - -"
  "strata.aligned64 strata-aligned - -"
  "strata.batch strata-batch - -"
  "strata.tl_get tl-get - -"
  "strata.so malloc $STRATA_SO libstrata.so"
  "glibc malloc - libc.so"
  "tbbmalloc malloc $LIBDIR/libtbbmalloc_proxy.so.2 libtbbmalloc"
  "mimalloc malloc $LIBDIR/libmimalloc.so.2 libmimalloc"
  "jemalloc malloc $LIBDIR/libjemalloc.so.2 libjemalloc"
  "tcmalloc malloc $LIBDIR/libtcmalloc_minimal.so.4 libtcmalloc"
)

TMP=$(mktemp -d /tmp/strata-callgrind.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# run_one <name> <mode> <preload> <expect> <col> <n>: writes $TMP/<name>-<col>-<n>.ir
run_one() {
  local name=$1 mode=$2 preload=$3 expect=$4 col=$5 n=$6
  local base=$TMP/$name-$col-$n size=$col
  if [[ $col == a* ]]; then
    [ "$mode" = strata-aligned ] || [ "$mode" = tl-get ] || [ "$mode" = strata-batch ] && { echo "-" >"$base.ir"; return 0; }
    size=${col#a}
    if [ "$mode" = strata ]; then mode=strata-append; else mode=append; fi
  fi
  [ "$mode" = strata-batch ] && n=$((n / 1000))  # rounds of 1,000 pairs
  local env=()
  [ "$preload" != - ] && env=(LD_PRELOAD="$preload")
  if ! env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$base.out" --log-file="$base.vg" \
         "$PAIRS" "$mode" "$size" "$n" 2>"$base.err"; then
    echo "FAIL(exit)" >"$base.ir"; return 0
  fi
  if [ "$expect" != - ] && ! grep -q "from .*$expect" "$base.err"; then
    echo "FAIL(preload)" >"$base.ir"; return 0
  fi
  awk '/^(summary|totals):/ {print $2; exit}' "$base.out" >"$base.ir"
}

present=()
for c in "${CASES[@]}"; do
  read -r name mode preload expect <<<"$c"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  if [ "$preload" != - ] && [ ! -e "$preload" ]; then
    echo "callgrind-pairs: $name skipped ($preload not found)" >&2; continue
  fi
  present+=("$c")
  for size in $COLS; do
    for n in "$N1" "$N2"; do
      run_one "$name" "$mode" "$preload" "$expect" "$size" "$n" &
      while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    done
  done
done
wait

echo "Instructions per malloc+free pair (callgrind Ir): (Ir(N2) - Ir(N1)) / (N2 - N1), N1=$N1, N2=$N2."
echo "Includes the loop overhead, not subtracted: 9 instructions per pair through malloc/free"
echo "(2 calls, 2 PLT jumps, 2 movs, add/cmp/jne), 7 for the direct strata API (no PLT jumps)."
echo "'append N B': instructions per realloc call growing a string by N bytes (restarted every"
echo "4096 calls; loop and the amortised free included, about 10 instructions)."
echo "strata commit: ${STRATA_COMMIT:-$(git log -1 --format='%h %s' 2>/dev/null || echo '?')}; valgrind $(valgrind --version | sed 's/valgrind-//')"
echo
{
  printf 'allocator'; for size in $SIZES; do printf '\t%s_B' "$size"; done
  for a in $APPENDS; do printf '\tappend_%s_B' "$a"; done; printf '\n'
  for c in "${present[@]}"; do
    read -r name mode preload expect <<<"$c"
    printf '%s' "$name"
    for size in $COLS; do
      a=$(cat "$TMP/$name-$size-$N1.ir" 2>/dev/null || echo "FAIL")
      b=$(cat "$TMP/$name-$size-$N2.ir" 2>/dev/null || echo "FAIL")
      if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ ]]; then
        awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" 'BEGIN { printf "\t%.1f", (b - a) / (n2 - n1) }'
      else
        [[ $a =~ ^[0-9]+$ ]] && printf '\t%s' "$b" || printf '\t%s' "$a"
      fi
    done
    printf '\n'
  done
} | column -t -s $'\t' -R "$(seq -s, 2 $(( $(wc -w <<<"$COLS") + 1 )))"
