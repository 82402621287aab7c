#!/usr/bin/env bash
# Resident memory of redis-server after FLUSHALL (issue 24): 400,000 SETs of
# 2 KB values and 400,000 of 100 B values over 300,000 keys, then FLUSHALL,
# then IDLE seconds of idle time; prints the resident set (VmRSS) at peak
# and at the end.  The allocator comes from the environment of the call:
#
#   bench/programs/redis_flush.sh                              # redis's own jemalloc
#   LD_PRELOAD=build/mm/libstrata.so bench/programs/redis_flush.sh
#   LD_PRELOAD=... STRATA_PURGE_THREAD=1 bench/programs/redis_flush.sh
#
# Environment: IDLE=3 (seconds), N=400000, KEYS=300000.
set -euo pipefail
IDLE=${IDLE:-3}
N=${N:-400000}
KEYS=${KEYS:-300000}
DIR=$(mktemp -d /tmp/strata-redis.XXXXXX)
SOCK=$DIR/redis.sock
redis-server --port 0 --unixsocket "$SOCK" --save "" --appendonly no --dir "$DIR" --daemonize no \
  >"$DIR/log" 2>&1 &
PID=$!
# The preload is the server's: the clients run with the system heap.
unset LD_PRELOAD
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
rss() { awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$PID/status"; }
redis-benchmark -s "$SOCK" -q -t set -n "$N" -r "$KEYS" -d 2048 -c 8 >/dev/null
redis-benchmark -s "$SOCK" -q -t set -n "$N" -r "$KEYS" -d 100 -c 8 >/dev/null
peak=$(rss)
redis-cli -s "$SOCK" FLUSHALL >/dev/null
sleep "$IDLE"
echo "redis_rss_peak_mib=$peak redis_rss_after_flush_mib=$(rss) used_memory=$(redis-cli -s "$SOCK" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')"
