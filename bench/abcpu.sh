#!/usr/bin/env bash
# Compare two throttledb builds by CPU per request on a 3-node cluster.
#
#   bash bench/abcpu.sh [--runs N] [--pipeline P] [--via leader|follower] BASE_BIN NEW_BIN
#
# Starts one 3-node cluster per binary (`BIN cluster --nodes 3`: each node
# gets its share of the cores as GOMAXPROCS, as compare.sh's cluster), both
# up at once, then runs
#
#   redis-benchmark -c 50 -r 10000 -n 20000 -P P THROTTLE.ACQUIRE <prefix>:key:__rand_int__ 1000 5
#
# N times against each cluster's leader (or a follower), alternating
# between the builds, every run on a key prefix of its own (so the calls
# are mostly grants, compare.sh's load), and sums each node's CPU time
# (/proc/PID/stat) over the runs. Defaults: 16 runs, -P 16, via the leader.
# It prints per build the requests per second over all its runs and the
# µs of CPU per request of the node the load goes to, of each other node
# and of the three together. CPU per request moves far less with the
# machine's other load than requests per second: compare it, and run the
# script more than once. Build the binaries with `go build -o`. Linux
# only; needs redis-benchmark and redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=16 pipeline=16 via=leader
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --pipeline) pipeline=$2; shift 2 ;;
    --via) via=$2; shift 2 ;;
    -*) sed -n '2,21p' "$0" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ] || { [ "$via" != leader ] && [ "$via" != follower ]; }; then
  sed -n '2,21p' "$0" >&2
  exit 2
fi
bins=("$1" "$2")
names=(base new)

# shellcheck source=bench/lib.sh
. bench/lib.sh

scratch abcpu

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -a target pids
for i in 0 1; do
  start_cluster "${bins[$i]}" "$SCRATCH/${names[$i]}"
  base=$BASE
  if [ "$via" = leader ]; then target[i]=$LEADER; else target[i]=$FOLLOWER; fi
  # The target's node first, then the other two.
  list=$(info "${target[$i]}" process_id)
  for p in "$base" $((base + 1)) $((base + 2)); do
    [ "$p" != "${target[$i]}" ] && list+=" $(info "$p" process_id)"
  done
  pids[i]=$list
done

declare -A used # "build pid" -> CPU ticks over the runs
declare -a ms=(0 0)
for r in $(seq "$runs"); do
  for i in 0 1; do
    declare -A before=()
    for p in ${pids[$i]}; do before[$p]=$(cpu "$p"); done
    start=$(date +%s%N)
    redis-benchmark -p "${target[$i]}" -c 50 -r 10000 -n 20000 -P "$pipeline" -q \
      THROTTLE.ACQUIRE "ab$i-$r:key:__rand_int__" 1000 5 >/dev/null 2>&1
    end=$(date +%s%N)
    ms[i]=$((ms[i] + (end - start) / 1000000))
    for p in ${pids[$i]}; do used["$i $p"]=$((${used["$i $p"]:-0} + $(cpu "$p") - before[$p])); done
  done
done

tick=$(getconf CLK_TCK)
n=$((runs * 20000))
echo "redis-benchmark -c 50 -r 10000 -n 20000 -P $pipeline, $runs runs a build, via the $via; µs of CPU per request:"
for i in 0 1; do
  line="${names[$i]} (${bins[$i]}): $(awk -v n=$n -v ms="${ms[$i]}" 'BEGIN {printf "%.0f requests/s", n / (ms / 1000)}')"
  total=0 role=$via
  for p in ${pids[$i]}; do
    t=${used["$i $p"]}
    total=$((total + t))
    line+=", $role $(awk -v t="$t" -v hz="$tick" -v n=$n 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
    role="other node"
  done
  line+=", cluster $(awk -v t="$total" -v hz="$tick" -v n=$n 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
  echo "$line"
done
