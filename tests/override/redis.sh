#!/bin/sh
# redis: redis-server on a unix socket in the current directory (no TCP
# port), loaded by clients: N string keys of varied sizes through
# redis-cli --pipe, lists/hashes/sets/sorted sets built by a Lua script,
# redis-benchmark (8 clients, pipelined, fixed keys), edits and deletions,
# then SAVE, FLUSHALL ASYNC (freed by the lazy-free thread) and
# DEBUG RELOAD.  Prints DBSIZE, INFO keyspace, DEBUG DIGEST (a digest of the
# whole data set, independent of iteration order) and sampled values.
set -eu
N=${STRATA_OVERRIDE_REDIS_KEYS:-100000}
export LC_ALL=C
sock=$PWD/redis.sock
sockdir=""
if [ ${#sock} -gt 100 ]; then   # a unix socket path must fit in 108 bytes
  sockdir=$(mktemp -d); sock=$sockdir/redis.sock
fi
rm -f dump.rdb server.log "$sock"
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$PWD" --dbfilename dump.rdb \
    --save "" --appendonly no --enable-debug-command yes --daemonize no --logfile "$PWD/server.log" \
    --lazyfree-lazy-user-del yes --lazyfree-lazy-user-flush yes --lua-time-limit 0 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; [ -z "$sockdir" ] || rm -rf "$sockdir"; }
trap cleanup EXIT
cli() { redis-cli -s "$sock" "$@"; }
i=0
until [ "$(cli ping 2>/dev/null)" = PONG ]; do
  i=$((i + 1))
  if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "redis-server did not start" >&2; cat server.log >&2; exit 1
  fi
  sleep 0.05
done
digest() { echo "$1: dbsize $(cli dbsize), digest $(cli debug digest)"; }
keyspace() { cli info keyspace | tr -d '\r' | grep '^db' | sed 's/,avg_ttl=[0-9]*//'; }

# Strings of 1..2000 bytes through the protocol, in one pipe.
awk -v n="$N" 'BEGIN {
  for (i = 1; i <= n; i++) {
    v = sprintf("%0" (1 + (i * 7919) % 2000) "d", i)
    printf "*3\r\n$3\r\nSET\r\n$%d\r\nstr:%d\r\n$%d\r\n%s\r\n", length("str:" i), i, length(v), v
  }
}' | cli --pipe | grep -E '^(errors|All data)' | sed 's/, replies: .*//'
digest "strings"

# Aggregates, built and edited server-side.
cli eval "
  local n = tonumber(ARGV[1])
  for i = 1, n do
    if i % 2 == 0 then redis.call('RPUSH', 'list:' .. (i % 1000), i, string.rep('l', i % 300)) end
    if i % 3 == 0 then redis.call('HSET', 'hash:' .. (i % 5000), 'f' .. i, string.rep('h', i % 200)) end
    if i % 5 == 0 then redis.call('SADD', 'set:' .. (i % 2000), 'm' .. (i * 31 % 100000), i) end
    if i % 7 == 0 then redis.call('ZADD', 'zset:' .. (i % 500), i % 9973, 'z' .. i) end
  end
  for i = 1, n, 3 do redis.call('APPEND', 'str:' .. i, string.rep('a', i % 500)) end
  for i = 2, n, 5 do redis.call('DEL', 'str:' .. i) end
  for i = 1, 1000, 4 do redis.call('LTRIM', 'list:' .. i, 10, -10) end
  for i = 1, 500, 3 do redis.call('ZREMRANGEBYRANK', 'zset:' .. i, 0, 20) end
  for i = 1, n, 11 do redis.call('SETRANGE', 'str:' .. i, i % 3000, 'edited') end
  for i = 1, n, 13 do redis.call('EXPIRE', 'str:' .. i, 1000000) end
  return redis.call('DBSIZE')" 0 "$N"
digest "aggregates"

# Clients: 8 connections, pipelined, on fixed keys (deterministic end state).
redis-benchmark -s "$sock" -n $((N / 2)) -c 8 -P 16 -d 100 -q \
    -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset > bench.log
digest "benchmark"
cli get str:1 | md5sum
cli getrange str:12345 0 40
cli lrange list:8 0 4
cli hlen hash:42
cli hget hash:42 f15042 | wc -c
cli scard set:10
cli smembers set:10 | sort | md5sum
cli zrange zset:14 0 5 withscores
cli strlen str:199999
cli llen mylist
cli get counter:__rand_int__
keyspace

# Save, drop everything (lazily), load it back.
cli save
cli flushall async
cli dbsize
cli debug reload nosave
digest "reloaded"
cli debug reload
digest "saved and reloaded"
keyspace
cli shutdown nosave >/dev/null 2>&1 || true
wait "$pid" || { echo "redis-server exit status $?" >&2; cat server.log >&2; exit 1; }
trap - EXIT
[ -z "$sockdir" ] || rm -rf "$sockdir"
# redis-server's own stderr (strata's heap report with STRATA_SHOW_STATS=1) went to its log.
grep -A12 'Usage summary' server.log >&2 || true
