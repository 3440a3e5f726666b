#!/usr/bin/env bash
# Measure the two Raft log stores side by side with redis-benchmark.
#
#   bash bench/logstores.sh [ROUNDS]      (default 4)
#
# Each round starts a fresh three-node cluster per store
# (`throttledb cluster --nodes 3 --log-store STORE`), runs
#
#   redis-benchmark -c 50 -r 10000 -n 20000 -P {1,16} THROTTLE.ACQUIRE key:__rand_int__ 1000 5
#
# against the leader and then a follower, and stops it. The stores
# alternate, and swap places every round (bolt, wal, then wal, bolt), so a
# change in the machine's load falls on both. It prints one markdown row per
# store and case with every round's requests/s and their median. Needs
# redis-benchmark and redis-cli; builds throttledb into a temporary
# directory; ports are chosen free on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-4}

log() { echo "logstores: $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
scratch logstores

go build -o "$SCRATCH/throttledb" ./cmd/throttledb

declare -A results # "store case" -> space-separated figures

run_store() {
  local store=$1 round=$2 leader follower p P rps
  start_cluster "$SCRATCH/throttledb" "$SCRATCH/$store-$round" --log-store "$store"
  leader=$LEADER follower=$FOLLOWER
  [ "$(info "$leader" raft_log_store)" = "$store" ] || { log "leader runs $(info "$leader" raft_log_store), not $store"; exit 1; }
  for P in 1 16; do
    for p in "$leader" "$follower"; do
      rps=$(redis-benchmark -p "$p" -c 50 -r 10000 -n 20000 -P "$P" -q \
        THROTTLE.ACQUIRE key:__rand_int__ 1000 5 2>/dev/null | tr '\r' '\n' |
        sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
      local role=leader
      [ "$p" = "$follower" ] && role=follower
      results["$store $role -P $P"]+="${rps%.*} "
      log "round $round $store $role -P $P: $rps requests/s"
    done
  done
  stop_servers
}

for round in $(seq "$rounds"); do
  if [ $((round % 2)) = 1 ]; then order="bolt wal"; else order="wal bolt"; fi
  for store in $order; do run_store "$store" "$round"; done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
echo "| case | bolt, rounds 1-$rounds | median | wal, rounds 1-$rounds | median | wal/bolt |"
echo "|---|---|---:|---|---:|---:|"
for c in "leader -P 1" "follower -P 1" "leader -P 16" "follower -P 16"; do
  b=${results["bolt $c"]} w=${results["wal $c"]}
  mb=$(echo "$b" | median) mw=$(echo "$w" | median)
  b=${b% } w=${w% } # each figure is followed by a space
  printf '| %s | %s | %s | %s | %s | %.2f |\n' "$c" "${b// / · }" "$mb" "${w// / · }" "$mw" "$(awk -v w="$mw" -v b="$mb" 'BEGIN {print w / b}')"
done
