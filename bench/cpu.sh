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
# redis-benchmark -c 50 -r 10000. Linux only. Each server's line also gives,
# from /proc/PID/io, its read-like and write-like system calls per request
# and the bytes it read (rchar) and had written to disk (write_bytes) per
# request: counts, steadier still than CPU time.
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
# io prints syscr syscw rchar write_bytes (zeros if /proc/PID/io is unreadable).
io() {
  awk '/^syscr/ {r = $2} /^syscw/ {w = $2} /^rchar/ {c = $2} /^write_bytes/ {b = $2}
    END {print r + 0, w + 0, c + 0, b + 0}' "/proc/$1/io" 2>/dev/null || echo 0 0 0 0
}
declare -a before iobefore
for i in "${!pids[@]}"; do before[i]=$(cpu "${pids[$i]}"); iobefore[i]=$(io "${pids[$i]}"); done
times=$(mktemp)
trap 'rm -f "$times"' EXIT
/usr/bin/time -f "%U %S" -o "$times" \
  redis-benchmark -p "$port" -c 50 -r 10000 -n "$requests" -P "$pipeline" -q "${cmd[@]}" 2>&1 | tr '\r' '\n' | tail -n 1
for i in "${!pids[@]}"; do
  after=$(cpu "${pids[$i]}")
  ioafter=$(io "${pids[$i]}")
  awk -v a="$after" -v b="${before[$i]}" -v t="$tick" -v n="$requests" -v p="${pids[$i]}" \
    -v ia="$ioafter" -v ib="${iobefore[$i]}" \
    'BEGIN {
      split(ia, x, " "); split(ib, y, " ")
      printf "pid %s: %.1f ms CPU per 1000 requests; per request %.2f reads, %.2f writes, %.0f bytes read, %.0f bytes to disk\n",
        p, (a - b) * 1000 / t * 1000 / n, (x[1] - y[1]) / n, (x[2] - y[2]) / n, (x[3] - y[3]) / n, (x[4] - y[4]) / n
    }'
done
awk -v n="$requests" '{ printf "redis-benchmark: %.1f ms CPU per 1000 requests\n", ($1 + $2) * 1000 * 1000 / n }' "$times"
