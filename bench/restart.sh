#!/usr/bin/env bash
# Restart at scale: fill a single throttledb node with about KEYS live keys,
# take a snapshot, add a log tail, stop it, and time its restart until it
# answers a THROTTLE.ACQUIRE; then report DBSIZE and resident memory.
#
#   bash bench/restart.sh [KEYS] [ROUNDS]      (defaults: 1000000 keys, 3 restarts)
#
# The fill is redis-benchmark -c 50 -P 32 -r KEYS, THROTTLE.ACQUIRE with an
# interval of a day, so every key stays live. Needs redis-benchmark and
# redis-cli. Data lives in a temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-1000000}
rounds=${2:-3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/throttledb-restart.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/throttledb" ./cmd/throttledb
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start() {
  "$tmp/throttledb" --id n1 --addr "127.0.0.1:$port" --raft-addr "127.0.0.1:$rport" --data "$tmp/data" --log-level warn >>"$tmp/node.log" 2>&1 &
  pid=$!
}
answers() { [ "$(redis-cli -p "$port" THROTTLE.ACQUIRE restart-probe 1 1000000 2>/dev/null | head -n 1)" = 1 ]; }
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
rss() { awk '/VmRSS/ { printf "%.0f MB", $2 / 1024 }' "/proc/$pid/status"; }

start
until answers; do sleep 0.1; done
echo "filling about $keys keys" >&2
redis-benchmark -p "$port" -c 50 -P 32 -r "$keys" -n $((keys * 4)) -q THROTTLE.ACQUIRE 'key:__rand_int__' 86400000 5 | tr '\r' '\n' | tail -n 1 >&2
redis-cli -p "$port" RAFT.SNAPSHOT >/dev/null
# A log tail after the snapshot, as a node restarted in service has.
redis-benchmark -p "$port" -c 50 -P 32 -r "$keys" -n 200000 -q THROTTLE.ACQUIRE 'key:__rand_int__' 86400000 5 >/dev/null
echo "filled: DBSIZE $(redis-cli -p "$port" DBSIZE), resident $(rss)"
stop
for r in $(seq "$rounds"); do
  t0=$(date +%s.%N)
  start
  until answers; do sleep 0.02; done
  t1=$(date +%s.%N)
  echo "restart $r: answered after $(echo "$t1 - $t0" | bc | cut -c1-5) s, DBSIZE $(redis-cli -p "$port" DBSIZE), resident $(rss)"
  stop
done
