#!/usr/bin/env bash
# The hot-key row of bench/compare.sh, alone and repeated, for A/B runs on a
# busy machine: ROUNDS rounds, each starting fresh servers and running
#
#   redis-benchmark -c 50 -n 20000 THROTTLE.ACQUIRE hot 1000 5
#
# against the leader of a 3-node cluster of this source's throttledb (and,
# if given, of a baseline binary first), then the same rule in Lua on
# redis-server in memory (EVALSHA cmd/throttledb/internal/bench/throttle.lua
# 1 hot 1000 5). It prints ops/s and the leader's denial counters per run.
#
#   bash bench/hotkey.sh [ROUNDS [BASELINE_BINARY]]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
rounds=${1:-3}
base=${2:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/throttledb-hotkey.XXXXXX")
pids=()
stop_all() {
  local p
  for p in ${pids[@]+"${pids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
until_ok() { local end=$((SECONDS + 30)); until "$@"; do ((SECONDS < end)) || { echo "hotkey: timed out: $*" >&2; exit 1; }; sleep 0.1; done; }
ready() { redis-cli -p "$1" INFO raft 2>/dev/null | tr -d '\r' | grep -qx raft_ready:true; }
voters() { [ "$(redis-cli -p "$1" RAFT.NODES 2>/dev/null | grep -cx voter)" = 3 ]; }
pong() { redis-cli -p "$1" PING >/dev/null 2>&1; }
rb() { redis-benchmark -h 127.0.0.1 -p "$1" -c 50 -n 20000 --csv "${@:2}" 2>/dev/null | awk -F'","' 'NR == 2 {printf "%.0f", $2}'; }

# cluster BINARY NAME: start 3 nodes (n1 bootstraps, n2 and n3 join); sets
# LEADER to the ready leader's port.
cluster() {
  local i a=() r=()
  for i in 1 2 3; do a[i]=$(port); r[i]=$(port); done
  "$1" --id n1 --addr "127.0.0.1:${a[1]}" --raft-addr "127.0.0.1:${r[1]}" --data "$tmp/$2/n1" --log-level warn >"$tmp/$2-n1.log" 2>&1 &
  pids+=($!)
  until_ok ready "${a[1]}"
  for i in 2 3; do
    "$1" --id "n$i" --addr "127.0.0.1:${a[i]}" --raft-addr "127.0.0.1:${r[i]}" --data "$tmp/$2/n$i" \
      --join "127.0.0.1:${a[1]}" --log-level warn >"$tmp/$2-n$i.log" 2>&1 &
    pids+=($!)
  done
  until_ok voters "${a[1]}"
  # The leader may have changed while the others joined on a busy machine:
  # find the one that is ready now.
  LEADER=
  until_ok find_leader "${a[@]}"
}
find_leader() {
  local i=0 p
  for p in "$@"; do
    i=$((i + 1))
    if ready "$p"; then LEADER=$p LEADER_ID=n$i; return 0; fi
  done
  return 1
}

go build -o "$tmp/throttledb" ./cmd/throttledb
targets=("$tmp/throttledb")
if [ -n "$base" ]; then targets=("$base" "$tmp/throttledb"); fi
script=$(cat cmd/throttledb/internal/bench/throttle.lua)
for r in $(seq "$rounds"); do
  for b in "${targets[@]}"; do
    cluster "$b" "r$r-$(basename "$b")-$RANDOM"
    ops=$(rb "$LEADER" THROTTLE.ACQUIRE hot 1000 5)
    counters=$(redis-cli -p "$LEADER" INFO stats | tr -d '\r' | grep '^throttle_denials' | tr '\n' ' ')
    echo "round $r $b, 3 nodes via the leader ($LEADER_ID): $ops ops/s ($counters)"
    stop_all
  done
  p=$(port)
  redis-server --port "$p" --bind 127.0.0.1 --dir "$tmp" --appendonly no --save "" --daemonize no --logfile "$tmp/redis.log" &
  pids+=($!)
  until_ok pong "$p"
  sha=$(redis-cli -p "$p" SCRIPT LOAD "$script")
  echo "round $r redis-server + Lua in memory: $(rb "$p" EVALSHA "$sha" 1 hot 1000 5) ops/s"
  stop_all
done
