#!/usr/bin/env bash
# The cost of a shared manager for a plugin (issue 22, docs/sharing.md):
# instructions (callgrind, (Ir(N2) - Ir(N1)) / (N2 - N1), the loop included)
# and best-of-7 nanoseconds per malloc+free pair made in a plugin's own code:
#   module_heap   strata::module_heap: the plugin's private heap, no dispatch
#   share.own     strata::simple_share, STRATA_SHARE=0: its own heap through
#                 dispatch.cpp's entry points (one load and one test more)
#   share.shared  strata::simple_share in a host that shares: the host's heap,
#                 through the table (an indirect call)
#   host          the same loop in the host: an executable built with
#                 strata::simple_share, whose exported malloc is the process's
#                 (compare: libstrata.so, scripts/callgrind-pairs.sh)
#   bench/share/share_cost.sh [build-dir]     (SIZES="16 64 1024 4000 100000")
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build/release}
SIZES=${SIZES:-"16 64 1024 4000 100000"}
N1=${N1:-100000}
N2=${N2:-200000}
cmake --build "$BUILD" -j2 --target share_cost share_cost_plugin_module share_cost_plugin_share >/dev/null
B=$BUILD/bench/share
ir() {  # env... -- args: instructions of one run
  local out; out=$(mktemp)
  env "$@" valgrind --tool=callgrind --callgrind-out-file="$out" "$B/share_cost" "${ARGS[@]}" >/dev/null 2>&1
  local v; v=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  rm -f "$out"; echo "$v"
}
per_pair() {  # label plugin direct env...
  local label=$1 plugin=$2 direct=$3; shift 3
  local row="$label"
  for s in $SIZES; do
    ARGS=("$plugin" "$s" "$N1" "$direct"); local a; a=$(ir "$@")
    ARGS=("$plugin" "$s" "$N2" "$direct"); local b; b=$(ir "$@")
    row="$row $(( (b - a) / (N2 - N1) ))"
  done
  for s in $SIZES; do
    row="$row $(env "$@" "$B/share_cost" "$plugin" "$s" 2000000 "$direct" 7)"
  done
  echo "$row"
}
echo "instructions per pair (loop included), then ns per pair (best of 7 x 2M); sizes: $SIZES"
echo "case | Ir per size ... | ns per size ..."
per_pair module_heap "$B/libshare_cost_plugin_module.so" 0 STRATA_SHARE=1
per_pair share.own "$B/libshare_cost_plugin_share.so" 0 STRATA_SHARE=0
per_pair share.shared "$B/libshare_cost_plugin_share.so" 0 STRATA_SHARE=1
per_pair share.own.direct "$B/libshare_cost_plugin_share.so" 1 STRATA_SHARE=0
per_pair share.shared.direct "$B/libshare_cost_plugin_share.so" 1 STRATA_SHARE=1
per_pair host host 0 STRATA_SHARE=1
per_pair host.direct host 1 STRATA_SHARE=1
