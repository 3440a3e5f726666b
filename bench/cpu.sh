#!/usr/bin/env bash
# CPU per request: runs redis-benchmark against a node and reports, for each
# server process given and for redis-benchmark itself, the CPU time (user +
# system, from /proc/PID/stat and time(1)) it spent per thousand requests.
# Unlike requests per second, this barely moves with the machine's other
# load, so two builds or settings can be compared on a shared machine.
#
#   bash bench/cpu.sh PORT PIPELINE REQUESTS PID... [-- COMMAND ARGS...]
#
# PIDs are the server processes to account (every node of a cluster);
# COMMAND defaults to THROTTLE.ACQUIRE key:__rand_int__ 1000 5, sent by
# redis-benchmark -c 50 -r 10000. Linux only.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
port=$1 pipeline=$2 requests=$3
shift 3
pids=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do pids+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
cmd=("$@")
[ ${#cmd[@]} -eq 0 ] && cmd=(THROTTLE.ACQUIRE 'key:__rand_int__' 1000 5)

tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -a before
for i in "${!pids[@]}"; do before[$i]=$(cpu "${pids[$i]}"); done
times=$(mktemp)
trap 'rm -f "$times"' EXIT
/usr/bin/time -f "%U %S" -o "$times" \
  redis-benchmark -p "$port" -c 50 -r 10000 -n "$requests" -P "$pipeline" -q "${cmd[@]}" 2>&1 | tr '\r' '\n' | tail -n 1
for i in "${!pids[@]}"; do
  after=$(cpu "${pids[$i]}")
  awk -v a="$after" -v b="${before[$i]}" -v t="$tick" -v n="$requests" -v p="${pids[$i]}" \
    'BEGIN { printf "pid %s: %.1f ms CPU per 1000 requests\n", p, (a - b) * 1000 / t * 1000 / n }'
done
awk -v n="$requests" '{ printf "redis-benchmark: %.1f ms CPU per 1000 requests\n", ($1 + $2) * 1000 * 1000 / n }' "$times"
