#!/usr/bin/env bash
# Memory while a snapshot is written: fill a single throttledb node with
# about KEYS live keys, reset its peak resident size (/proc/PID/clear_refs),
# force snapshots with RAFT.SNAPSHOT, and report resident memory before and
# the peak (VmHWM) during each, with bytes per key.
#
#   bash bench/snapmem.sh [KEYS] [SNAPSHOTS] [BINARY]
#
# (defaults: 1000000 keys, 3 snapshots, a build of ./cmd/throttledb). The
# fill is the one bench/restart.sh uses. Needs redis-benchmark, redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-1000000}
snaps=${2:-3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/throttledb-snapmem.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
bin=${3:-}
if [ -z "$bin" ]; then
  bin=$tmp/throttledb
  go build -o "$bin" ./cmd/throttledb
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --id n1 --addr "127.0.0.1:$port" --raft-addr "127.0.0.1:$rport" --data "$tmp/data" --log-level warn >>"$tmp/node.log" 2>&1 &
pid=$!
until [ "$(redis-cli -p "$port" THROTTLE.ACQUIRE probe 1 1000000 2>/dev/null | head -n 1)" = 1 ]; do sleep 0.1; done
echo "filling about $keys keys" >&2
redis-benchmark -p "$port" -c 50 -P 32 -r "$keys" -n $((keys * 4)) -q THROTTLE.ACQUIRE 'key:__rand_int__' 86400000 5 | tr '\r' '\n' | tail -n 1 >&2
n=$(redis-cli -p "$port" DBSIZE)
kib() { awk -v f="$1" '$1 == f":" { print $2 }' "/proc/$pid/status"; }
show() { awk -v k="$1" -v n="$n" 'BEGIN { printf "%.0f MiB (%.1f B/key)", k / 1024, k * 1024 / n }'; }
redis-cli -p "$port" RAFT.SNAPSHOT >/dev/null
sleep 2
echo "DBSIZE $n, resident $(show "$(kib VmRSS)")"
for s in $(seq "$snaps"); do
  # Something new to snapshot: Raft refuses a snapshot of nothing new.
  redis-benchmark -p "$port" -c 50 -P 32 -r "$keys" -n 20000 -q THROTTLE.ACQUIRE 'key:__rand_int__' 86400000 5 >/dev/null
  echo 5 >"/proc/$pid/clear_refs"
  before=$(kib VmRSS)
  t0=$(date +%s.%N)
  out=$(redis-cli -p "$port" RAFT.SNAPSHOT)
  t1=$(date +%s.%N)
  echo "snapshot $s: $(echo "$t1 - $t0" | bc | cut -c1-5) s, resident before $(show "$before"), peak $(show "$(kib VmHWM)"), after $(show "$(kib VmRSS)") ($out)"
  sleep 1
done
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=
