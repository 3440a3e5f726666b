#!/usr/bin/env bash
# Compare throttledb with Redis + Lua under the same load.
#
#   bash bench/compare.sh [--log-store bolt|wal|both] [--requests N | --no-redis-benchmark]
#                         [throttledb bench flags]   e.g. --duration 10s --clients 32
#
# From the repository root's source, it builds throttledb into a temporary
# directory and, against each target below, runs `throttledb bench --verify`
# and then redis-benchmark (the tool Redis users already trust) with
# Redis's own numbers: -c 50, -r 10000 random keys, N requests (--requests,
# default 20000) per run, in three workloads: random keys at -P 1, random
# keys at -P 16, and one hot key at -P 1 (nearly every call denied). Every
# run on random keys uses 10,000 keys no earlier run used (key prefix rN:),
# so that each row is the mostly granting load it names: with shared keys,
# a later row (the leader's, after the follower's) met keys earlier rows
# had filled and was answered mostly by denials. A -P 16 row is 16 runs of
# N requests added up (requests over the sum of the runs' times; p50 the
# median of theirs): one run of N takes a fifth of a second at 60-100k/s
# and its ratio swings widely, while 16 x N on the same 10,000 keys would
# be 32 calls a key, mostly denials. With the default N and --duration 5s the
# whole script took 2-3 minutes on the 2-core development machine. Each
# redis-benchmark row is printed with its ratio to the Redis+Lua rows of the
# same workload. The targets, in turn:
#   1. a single throttledb node;
#   2. a three-node throttledb cluster, through a follower and through the
#      leader, each node with GOMAXPROCS set to its share of the cores (1 on
#      a 2-core machine; as `throttledb cluster` does);
#   3. redis-server + the Lua script, appendfsync always (durable per grant,
#      as throttledb is: it fsyncs every log entry before replying);
#   4. redis-server + the Lua script, appendfsync everysec (Redis's usual
#      setting: up to a second of acknowledged grants can be lost);
#   5. redis-server + the Lua script in memory (no AOF, no RDB: nothing
#      survives a restart), the speed a team gives up for durability.
# Each server runs alone (the previous one is stopped first), on free
# loopback ports, with its data in the temporary directory, and is stopped
# by its own pid. Then it prints a markdown table. Flags are passed to every
# run after the defaults --clients 32 --duration 10s --keys 1000.
# --log-store (first, if given) is passed to every throttledb node; "both"
# runs the throttledb rows once per store, so the two can be compared side
# by side under the same load (default: the nodes' default store).
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/throttledb-compare.XXXXXX")
pids=() # of the servers running now
rows=()

stop_all() {
  local pid
  for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in ${pids[@]+"${pids[@]}"}; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
stores=("")
if [ "${1:-}" = --log-store ]; then
  case "${2:-}" in
    bolt | wal) stores=("$2") ;;
    both) stores=(bolt wal) ;;
    *) echo "compare: --log-store takes bolt, wal or both" >&2; exit 2 ;;
  esac
  shift 2
fi
requests=20000
rb_batch=0 # numbers the -P 16 runs, each on keys of its own
case "${1:-}" in
  --requests) requests=$2; shift 2 ;;
  --no-redis-benchmark) requests=0; shift ;;
esac
if [ "$requests" != 0 ] && ! command -v redis-benchmark >/dev/null 2>&1; then
  echo "compare: redis-benchmark is not installed: skipping its rows (apt-get install -y redis-tools)" >&2
  requests=0
fi

trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

log() { echo "compare: $*" >&2; }

# next_port sets PORT to a free loopback port not handed out before (in
# this shell, not a subshell, so the list survives). redis-server cannot be
# given port 0, so every server gets a port chosen here.
used_ports=" "
next_port() {
  local p
  while :; do
    if command -v python3 >/dev/null 2>&1; then
      p=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    else
      p=$((20000 + RANDOM % 20000))
      # Something answers there: taken.
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
    fi
    case "$used_ports" in *" $p "*) continue ;; esac
    used_ports+="$p "
    PORT=$p
    return
  done
}

# resp PORT WORDS...: the reply to one inline command, with \r removed
# (empty if nothing answers). It needs only bash, not redis-cli.
resp() {
  local port=$1
  shift
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf "%s\r\nQUIT\r\n" "$*" >&3 && cat <&3' \
    "$port" "$@" 2>/dev/null | tr -d '\r' || true
}

# wait_until DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.1 s.
wait_until() {
  local what=$1 end=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if ((SECONDS >= end)); then
      log "timed out waiting for $what; the servers' logs end:"
      tail -n 20 "$tmp"/*.log >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

ready() { resp "$1" INFO raft | grep -qx 'raft_ready:true'; }
# leader_known PORT...: every node names the same leader; sets LEADER to
# its RESP address. (Right after the bootstrap, RAFT.NODES can already
# list every voter while the leader's RESP address is not recorded yet.)
leader_known() {
  local p a
  LEADER=
  for p in "$@"; do
    a=$(resp "$p" RAFT.LEADER | grep -m 1 '^127\.0\.0\.1:' || true)
    if [ -z "$a" ] || { [ -n "$LEADER" ] && [ "$a" != "$LEADER" ]; }; then return 1; fi
    LEADER=$a
  done
}
voters() { [ "$(resp "$1" RAFT.NODES | grep -cx voter || true)" = "$2" ]; }
pong() { [ "$(resp "$1" PING | head -n 1)" = "+PONG" ]; }

# start_node ID [JOIN-ADDR]: start a throttledb node; sets PORT.
start_node() {
  next_port
  local port=$PORT
  next_port
  local args=(--id "$1" --addr "127.0.0.1:$port" --raft-addr "127.0.0.1:$PORT" --data "$tmp/${store:+$store-}$1" --log-level warn)
  if [ -n "$store" ]; then args+=(--log-store "$store"); fi
  if [ $# -ge 2 ]; then args+=(--join "$2"); fi
  "$bin" "${args[@]}" >"$tmp/${store:+$store-}$1.log" 2>&1 &
  pids+=($!)
  PORT=$port
}

# The cluster's nodes share the machine: each gets its share of the cores
# as GOMAXPROCS (at least 1), as `throttledb cluster` gives its nodes,
# unless GOMAXPROCS is set already. See launcher.ShareCPUs.
cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
node_procs=${GOMAXPROCS:-$((cpus / 3 > 0 ? cpus / 3 : 1))}

# start_redis NAME APPENDFSYNC: start redis-server; sets PORT.
start_redis() {
  next_port
  mkdir -p "$tmp/$1"
  local aof=(--appendonly yes --appendfsync "$2")
  if [ "$2" = no ]; then aof=(--appendonly no); fi
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$tmp/$1" --daemonize no \
    "${aof[@]}" --save "" --logfile "$tmp/$1.log" &
  pids+=($!)
  wait_until "$1 to answer PING" 10 pong "$PORT"
}

defaults=(--clients 32 --duration 10s --keys 1000)
passthru=("$@")

# run_bench LABEL TARGET ADDR: run the load, show its report, add a table row.
run_bench() {
  local out="$tmp/bench.out" rc=0
  log "bench against $1 ($3)"
  "$bin" bench --verify --target "$2" --addr "$3" "${defaults[@]}" ${passthru[@]+"${passthru[@]}"} >"$out" 2>&1 || rc=$?
  sed 's/^/    /' "$out"
  local ops p50 p99 max spacing
  ops=$(awk '/throughput:/ {print $2}' "$out")
  p50=$(grep -o 'p50=[^ ]*' "$out" | cut -d= -f2 || true)
  p99=$(grep -o 'p99=[^ ]*' "$out" | cut -d= -f2 || true)
  max=$(grep -o 'max=[^ ]*' "$out" | cut -d= -f2 || true)
  spacing=$(grep -o 'spacing: [A-Z]*' "$out" | cut -d' ' -f2 || true)
  if [ "$rc" != 0 ] && [ "$spacing" != FAIL ]; then spacing="error (exit $rc): $(tail -n 1 "$out")"; fi
  rows+=("| $1 | ${ops:--} | ${p50:--} | ${p99:--} | ${max:--} | ${spacing:--} |")
}

# run_rb LABEL ADDR KIND: redis-benchmark's three workloads against ADDR
# (KIND throttledb: THROTTLE.ACQUIRE; lua: EVALSHA of cmd/throttledb/internal/bench/throttle.lua,
# the same rule and reply), each appended to $tmp/rb.tsv as
# label, workload, ops/s, p50 ms.
run_rb() {
  [ "$requests" != 0 ] || return 0
  local label=$1 host=${2%:*} port=${2##*:} kind=$3 cmd w
  if [ "$kind" = lua ]; then
    local sha
    sha=$(redis-cli -h "$host" -p "$port" SCRIPT LOAD "$(cat cmd/throttledb/internal/bench/throttle.lua)")
    cmd=(EVALSHA "$sha" 1)
  else
    cmd=(THROTTLE.ACQUIRE)
  fi
  for w in "random keys, -P 1" "random keys, -P 16" "one hot key, -P 1"; do
    local key='key:__rand_int__' pipe=1 runs=1 r
    case "$w" in *"-P 16"*) pipe=16 runs=16 ;; esac
    case "$w" in "one hot key"*) key=hot ;; esac
    log "redis-benchmark against $label: $w"
    : >"$tmp/rb.runs"
    for ((r = 1; r <= runs; r++)); do
      rb_batch=$((rb_batch + 1))
      local k=$key
      # Each run on random keys no earlier run used (see above).
      [ "$key" = hot ] || k="r$rb_batch:$key"
      redis-benchmark -h "$host" -p "$port" -c 50 -r 10000 -n "$requests" -P "$pipe" --csv \
        "${cmd[@]}" "$k" 1000 5 >"$tmp/rb.csv" 2>&1 || true
      if [ "$(awk 'END {print NR}' "$tmp/rb.csv")" -lt 2 ]; then
        sed 's/^/    /' "$tmp/rb.csv" >&2
        continue
      fi
      # The second line: "test","rps","avg","min","p50",...
      awk -F'","' 'NR == 2 {print $2, $5}' "$tmp/rb.csv" >>"$tmp/rb.runs"
    done
    # requests over the sum of the runs' times; p50 the runs' median.
    if [ "$(awk 'END {print NR}' "$tmp/rb.runs")" = "$runs" ]; then
      sort -k2,2g "$tmp/rb.runs" | awk -v n="$requests" -v l="$label" -v w="$w" \
        '{t += n / $1; p[NR] = $2} END {printf "%s\t%s\t%.0f\t%s\n", l, w, NR * n / t, p[int((NR + 1) / 2)]}' >>"$tmp/rb.tsv"
    else
      printf '%s\t%s\t-\t-\n' "$label" "$w" >>"$tmp/rb.tsv"
    fi
  done
}

bin="$tmp/throttledb"
log "building throttledb into $tmp"
go build -o "$bin" ./cmd/throttledb

for store in "${stores[@]}"; do
  label=${store:+ ($store)}
  # 1. A single node.
  start_node single
  single=$PORT
  wait_until "the single node to lead" 30 ready "$single"
  run_bench "throttledb$label, 1 node" throttledb "127.0.0.1:$single"
  run_rb "throttledb$label, 1 node" "127.0.0.1:$single" throttledb
  stop_all

  # 2. Three nodes: n1 bootstraps, n2 and n3 join it.
  GOMAXPROCS=$node_procs start_node n1
  p1=$PORT
  wait_until "n1 to lead" 30 ready "$p1"
  GOMAXPROCS=$node_procs start_node n2 "127.0.0.1:$p1"
  p2=$PORT
  GOMAXPROCS=$node_procs start_node n3 "127.0.0.1:$p1"
  p3=$PORT
  for p in "$p1" "$p2" "$p3"; do wait_until "127.0.0.1:$p to list 3 voters" 30 voters "$p" 3; done
  wait_until "every node to know the leader's address" 30 leader_known "$p1" "$p2" "$p3"
  leader=$LEADER
  follower=
  for p in "$p1" "$p2" "$p3"; do
    if [ "127.0.0.1:$p" != "$leader" ]; then follower="127.0.0.1:$p"; fi
  done
  wait_until "the leader to be ready" 30 ready "${leader##*:}"
  run_bench "throttledb$label, 3 nodes, via a follower" throttledb "$follower"
  run_bench "throttledb$label, 3 nodes, via the leader" throttledb "$leader"
  run_rb "throttledb$label, 3 nodes, via a follower" "$follower" throttledb
  run_rb "throttledb$label, 3 nodes, via the leader" "$leader" throttledb
  stop_all
done

# 3 and 4. Redis with the Lua script.
if command -v redis-server >/dev/null 2>&1; then
  log "$(redis-server --version)"
  start_redis redis-always always
  run_bench "redis-server + Lua, appendfsync always" redis-lua "127.0.0.1:$PORT"
  run_rb "Redis+Lua, appendfsync always" "127.0.0.1:$PORT" lua
  stop_all
  start_redis redis-everysec everysec
  run_bench "redis-server + Lua, appendfsync everysec" redis-lua "127.0.0.1:$PORT"
  run_rb "Redis+Lua, appendfsync everysec" "127.0.0.1:$PORT" lua
  stop_all
  start_redis redis-memory no
  run_bench "redis-server + Lua, in memory" redis-lua "127.0.0.1:$PORT"
  run_rb "Redis+Lua, in memory" "127.0.0.1:$PORT" lua
  stop_all
else
  log "redis-server is not installed: skipping the Redis rows (install it with: apt-get install -y redis-server)"
  rows+=("| redis-server + Lua | skipped: redis-server not installed (apt-get install -y redis-server) | | | | |")
fi

echo
echo "Load: throttledb bench --verify ${defaults[*]} ${passthru[*]:-} (latency per round trip)"
echo
echo "| target | ops/s | p50 | p99 | max | spacing |"
echo "|---|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"

if [ -s "$tmp/rb.tsv" ]; then
  echo
  echo "Load: redis-benchmark -c 50 -r 10000 -n $requests -P 1, and -P 16 as 16 such runs, each run on keys of its own (prefix rN:), --csv, \`THROTTLE.ACQUIRE key:__rand_int__ 1000 5\`"
  echo "(Redis: \`EVALSHA <cmd/throttledb/internal/bench/throttle.lua> 1 key:__rand_int__ 1000 5\`; hot key: the key \`hot\`)"
  echo
  echo "| target | workload | ops/s | p50 ms | x Lua always | x Lua in memory |"
  echo "|---|---|---:|---:|---:|---:|"
  awk -F'\t' '
    { label[NR] = $1; work[NR] = $2; ops[NR] = $3; p50[NR] = $4
      if ($1 == "Redis+Lua, appendfsync always") always[$2] = $3
      if ($1 == "Redis+Lua, in memory") memory[$2] = $3 }
    function ratio(x, base) { return (x == "-" || base == "" || base == "-" || base == 0) ? "-" : sprintf("%.2f", x / base) }
    END { for (i = 1; i <= NR; i++)
      printf "| %s | %s | %s | %s | %s | %s |\n", label[i], work[i], ops[i], p50[i], ratio(ops[i], always[work[i]]), ratio(ops[i], memory[work[i]]) }
  ' "$tmp/rb.tsv"
  # Through a follower against through the leader, same cluster, same run.
  echo
  awk -F'\t' '
    { ops[$1 "|" $2] = $3; if ($1 ~ /via a follower$/) { f[++n] = $1 "|" $2 } }
    END { for (i = 1; i <= n; i++) {
      split(f[i], p, "|"); l = p[1]; sub(/via a follower$/, "via the leader", l)
      if ((l "|" p[2]) in ops && ops[l "|" p[2]] > 0 && ops[f[i]] != "-")
        printf "follower/leader, %s, %s: %.2f\n", substr(p[1], 1, length(p[1]) - length(", via a follower")), p[2], ops[f[i]] / ops[l "|" p[2]] } }
  ' "$tmp/rb.tsv"
fi
