#!/usr/bin/env bash
# p50 and throughput against the number of clients: a 3-node throttledb
# cluster through its leader beside redis-server + the Lua rule with
# appendfsync always, on the same machine, run for run.
#
#   bash bench/clients.sh [--rounds N] [--clients "1 5 10 ..."] [BIN]
#
# BIN is a throttledb binary (default: built from this checkout). The
# cluster is `BIN cluster --nodes 3` (each node gets its share of the
# cores as GOMAXPROCS, as in compare.sh) and the Redis baseline runs
# cmd/throttledb/internal/bench/throttle.lua with EVALSHA. For each client
# count C (default "1 2 5 10 20 30 40 50") and each round (default 3), one
#
#   redis-benchmark -c C -r 10000 -n 1500+300*C THROTTLE.ACQUIRE <fresh prefix>:key:__rand_int__ 1000 5
#
# against the leader, then the same against Redis, every run on keys no
# earlier run used (mostly grants, compare.sh's load). It prints, per C,
# the median over the rounds of each side's requests/s and p50, and C over
# the requests/s: the mean latency a closed loop of C clients must see
# (Little's law), which is why, with every client sending again as soon as
# it is answered, p50 at 50 clients follows throughput. Linux only; needs
# redis-server, redis-benchmark and redis-cli. Servers are stopped by
# their own pid when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 counts="1 2 5 10 20 30 40 50"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --clients) counts=$2; shift 2 ;;
    -*) sed -n '2,23p' "$0" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -gt 1 ] || { [ $# = 1 ] && [ ! -x "$1" ]; } || ! [ "$rounds" -ge 1 ] 2>/dev/null; then
  sed -n '2,23p' "$0" >&2
  exit 2
fi
for c in $counts; do
  if ! [ "$c" -ge 1 ] 2>/dev/null; then
    echo "clients: not a client count: $c" >&2
    exit 2
  fi
done

# shellcheck source=bench/lib.sh
. bench/lib.sh

scratch clients

bin=${1:-}
if [ -z "$bin" ]; then
  bin=$SCRATCH/throttledb
  go build -o "$bin" ./cmd/throttledb
fi

start_cluster "$bin" "$SCRATCH/cluster"
leader=$LEADER

rport=$(free_port)
mkdir -p "$SCRATCH/redis"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$SCRATCH/redis" --daemonize no \
  --appendonly yes --appendfsync always --save "" --logfile "$SCRATCH/redis.log" &
SERVERS+=($!)
for _ in $(seq 100); do
  [ "$(redis-cli -p "$rport" PING 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat cmd/throttledb/internal/bench/throttle.lua)")

# run PORT CLIENTS CMD...: one redis-benchmark run; prints "ops/s p50-ms".
run() {
  local port=$1 c=$2
  shift 2
  redis-benchmark -p "$port" -c "$c" -r 10000 -n $((1500 + 300 * c)) --csv "$@" 2>/dev/null |
    tail -n 1 | tr -d '"' | awk -F, '{print $2, $5}'
}

# median VALUES...: the median (the lower middle one of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

echo "redis-benchmark -c C -r 10000 -n 1500+300*C, $rounds round(s), medians; mostly grants on fresh keys"
echo "throttledb: 3 nodes via the leader (cluster --nodes 3, $(getconf _NPROCESSORS_ONLN) CPUs); Redis: redis-server + Lua, appendfsync always"
echo
echo "| clients | throttledb ops/s | p50 ms | C / ops/s ms | Redis+Lua always ops/s | p50 ms | C / ops/s ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
n=0
for c in $counts; do
  t_ops=() t_p50=() r_ops=() r_p50=()
  for _ in $(seq "$rounds"); do
    n=$((n + 1))
    read -r o p < <(run "$leader" "$c" THROTTLE.ACQUIRE "t$n:key:__rand_int__" 1000 5) || true
    [ -n "${p:-}" ] || { echo "clients: redis-benchmark -c $c against throttledb's leader failed" >&2; exit 1; }
    t_ops+=("$o") t_p50+=("$p")
    read -r o p < <(run "$rport" "$c" EVALSHA "$sha" 1 "r$n:key:__rand_int__" 1000 5) || true
    [ -n "${p:-}" ] || { echo "clients: redis-benchmark -c $c against Redis+Lua failed" >&2; exit 1; }
    r_ops+=("$o") r_p50+=("$p")
  done
  to=$(median "${t_ops[@]}") tp=$(median "${t_p50[@]}")
  ro=$(median "${r_ops[@]}") rp=$(median "${r_p50[@]}")
  awk -v c="$c" -v to="$to" -v tp="$tp" -v ro="$ro" -v rp="$rp" 'BEGIN {
    printf "| %d | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f |\n", c, to, tp, c / to * 1000, ro, rp, c / ro * 1000
  }'
done
