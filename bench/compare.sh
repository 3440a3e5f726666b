#!/usr/bin/env bash
# Compare throttledb with Redis + Lua under the same load.
#
#   bash bench/compare.sh [--log-store bolt|wal|both] [--rounds N]
#                         [--requests N | --no-redis-benchmark]
#                         [throttledb bench flags]   e.g. --duration 10s --clients 32
#
# From the repository root's source, it builds throttledb into a temporary
# directory and starts every target below at once, each on its own free
# loopback port with its data in the temporary directory:
#   1. a single throttledb node;
#   2. a three-node throttledb cluster, driven through a follower and
#      through the leader, each node with GOMAXPROCS set to its share of the
#      cores (1 on a 2-core machine; as `throttledb cluster` does);
#   3. redis-server + the Lua script, appendfsync always (durable per grant,
#      as throttledb is: it fsyncs every log entry before replying);
#   4. redis-server + the Lua script, appendfsync everysec (Redis's usual
#      setting: up to a second of acknowledged grants can be lost);
#   5. redis-server + the Lua script in memory (no AOF, no RDB: nothing
#      survives a restart), the speed a team gives up for durability.
# --log-store (bolt, wal, or both) is passed to every throttledb node;
# "both" starts 1 and 2 once per store, side by side (default: the nodes'
# default store).
#
# First, `throttledb bench --verify` runs once against each target in turn
# (the first table: throughput, latency and the spacing check), with the
# defaults --clients 32 --duration 10s --keys 1000 and then every flag not
# named above.
#
# Then redis-benchmark (the tool Redis users already trust) with Redis's
# own numbers: -c 50, -r 10000 random keys, runs of N requests (--requests,
# default 20000), in three workloads: random keys at -P 1, random keys at
# -P 16, and one hot key at -P 1 (nearly every call denied). It runs in
# rounds (--rounds, default 3): each round runs each workload against every
# target in turn, so that a throttledb figure and the Redis figure it is
# divided by are measured seconds apart, not minutes: on a shared machine
# the disk's fsync latency drifts over tens of seconds, and Redis+Lua
# `appendfsync always` alone measured 16.6k/s in one run and 24.8k/s in
# another. The order of the targets rotates from round to round, so that
# no target always runs first. A round's figure for a target is several
# runs added up (requests over the sum of the runs' times; p50 the median
# of theirs), interleaved run by run with the other targets' (run 1
# against every target, then run 2, ...): 4 runs at -P 1 and for the hot
# key, where one run of N lasts about a second and swings with whatever
# else the machine does, and 16 at -P 16, where one run takes a fifth of a
# second. Every run on random keys uses 10,000 keys no earlier run used
# (key prefix rN:), so that each figure is the mostly granting load it
# names: 16 x N on the same 10,000 keys would be 32 calls a key, mostly
# denials.
#
# The second table gives, per target and workload, the median over the
# rounds of ops/s and of p50, and the median of the per-round ratios (that
# round's figure over the same round's Redis+Lua figure of the same
# workload) with their min-max, e.g. `0.62 (0.48-0.73)`; the follower /
# leader lines below it are the same. A third table shows every round's
# raw figures, so the medians can be checked.
#
# Idle servers cost next to nothing, which is what makes running them all
# at once fair: over 10 s idle (after a -P 16 load, read from
# /proc/PID/stat) a 3-node cluster used 4.7% of one core in all (leader
# 3.0%, followers 0.8-0.9%), a single node 0.2% and an idle redis-server
# 0.3%. With --duration 5s and the defaults a run takes about 4 minutes on
# the 2-core development machine (each round about 65 s); with
# --log-store both a round takes about 2 minutes, the whole run about 7.
#
# Every server is stopped by its own pid when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
pids=() # of the servers running now
rows=() # of the first table

# die MESSAGE: a usage error.
die() {
  echo "compare: $*" >&2
  exit 2
}

stores=("")
rounds=3
requests=20000
passthru=() # to every throttledb bench run
while [ $# -gt 0 ]; do
  case "$1" in
    --log-store)
      case "${2:-}" in
        bolt | wal) stores=("$2") ;;
        both) stores=(bolt wal) ;;
        *) die "--log-store takes bolt, wal or both" ;;
      esac
      shift 2
      ;;
    --rounds)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive integer"
      rounds=$2
      shift 2
      ;;
    --requests)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--requests takes a positive integer"
      requests=$2
      shift 2
      ;;
    --no-redis-benchmark)
      requests=0
      shift
      ;;
    *)
      passthru+=("$1")
      shift
      ;;
  esac
done
if [ "$requests" != 0 ] && ! command -v redis-benchmark >/dev/null 2>&1; then
  echo "compare: redis-benchmark is not installed: skipping its rows (apt-get install -y redis-tools)" >&2
  requests=0
fi

# stop_all stops every server this script started, each by its own pid.
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
tmp=$(mktemp -d "${TMPDIR:-/tmp}/throttledb-compare.XXXXXX")
trap 'stop_all; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# log MESSAGE: progress, on stderr.
log() { echo "compare: $*" >&2; }

# loadavg: the 1, 5 and 15 minute load averages (empty if unknown).
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true; }
load_before=$(loadavg)

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
  # shellcheck disable=SC2016 # $0 and $* are the inner shell's.
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

# ready PORT: the node there is ready to serve writes.
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
# voters PORT N: the node there lists N voters.
voters() { [ "$(resp "$1" RAFT.NODES | grep -cx voter || true)" = "$2" ]; }
# pong PORT: the server there answers PING.
pong() { [ "$(resp "$1" PING | head -n 1)" = "+PONG" ]; }

# The targets, in the order of the tables: what redis-benchmark's table
# calls them, what the first table calls them, their RESP address, their
# kind (throttledb: THROTTLE.ACQUIRE; lua: EVALSHA of
# cmd/throttledb/internal/bench/throttle.lua, the same rule and reply) and,
# for lua, the script's SHA-1 on that server.
t_label=() t_vlabel=() t_addr=() t_kind=() t_sha=()

# add_target LABEL VERIFY-LABEL ADDR KIND [SHA]: register a target.
add_target() {
  t_label+=("$1")
  t_vlabel+=("$2")
  t_addr+=("$3")
  t_kind+=("$4")
  t_sha+=("${5:-}")
}

# start_node STORE ID [JOIN-ADDR]: start a throttledb node with its data in
# $tmp/[STORE-]ID; sets PORT to its RESP port.
start_node() {
  local store=$1 id=$2
  next_port
  local port=$PORT
  next_port
  local args=(--id "$id" --addr "127.0.0.1:$port" --raft-addr "127.0.0.1:$PORT" --data "$tmp/${store:+$store-}$id" --log-level warn)
  if [ -n "$store" ]; then args+=(--log-store "$store"); fi
  if [ $# -ge 3 ]; then args+=(--join "$3"); fi
  "$bin" "${args[@]}" >"$tmp/${store:+$store-}$id.log" 2>&1 &
  pids+=($!)
  PORT=$port
}

# The cluster's nodes share the machine: each gets its share of the cores
# as GOMAXPROCS (at least 1), as `throttledb cluster` gives its nodes,
# unless GOMAXPROCS is set already. See launcher.ShareCPUs.
cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
node_procs=${GOMAXPROCS:-$((cpus / 3 > 0 ? cpus / 3 : 1))}

# start_single STORE: start a single node and register it as a target.
start_single() {
  local store=$1 name="throttledb${1:+ ($1)}"
  start_node "$store" single
  wait_until "the single node ($name) to lead" 30 ready "$PORT"
  add_target "$name, 1 node" "$name, 1 node" "127.0.0.1:$PORT" throttledb
}

# start_cluster STORE: start three nodes (n1 bootstraps, n2 and n3 join
# it) and register the cluster through a follower and through the leader.
start_cluster() {
  local store=$1 name="throttledb${1:+ ($1)}" p1 p2 p3 p leader follower=
  GOMAXPROCS=$node_procs start_node "$store" n1
  p1=$PORT
  wait_until "n1 to lead" 30 ready "$p1"
  GOMAXPROCS=$node_procs start_node "$store" n2 "127.0.0.1:$p1"
  p2=$PORT
  GOMAXPROCS=$node_procs start_node "$store" n3 "127.0.0.1:$p1"
  p3=$PORT
  for p in "$p1" "$p2" "$p3"; do wait_until "127.0.0.1:$p to list 3 voters" 30 voters "$p" 3; done
  wait_until "every node to know the leader's address" 30 leader_known "$p1" "$p2" "$p3"
  leader=$LEADER
  for p in "$p1" "$p2" "$p3"; do
    if [ "127.0.0.1:$p" != "$leader" ]; then follower="127.0.0.1:$p"; fi
  done
  wait_until "the leader to be ready" 30 ready "${leader##*:}"
  add_target "$name, 3 nodes, via a follower" "$name, 3 nodes, via a follower" "$follower" throttledb
  add_target "$name, 3 nodes, via the leader" "$name, 3 nodes, via the leader" "$leader" throttledb
}

# start_redis NAME APPENDFSYNC: start redis-server with the Lua script
# loaded and register it as a target.
start_redis() {
  next_port
  mkdir -p "$tmp/redis-$2"
  local aof=(--appendonly yes --appendfsync "$2") sha
  if [ "$2" = no ]; then aof=(--appendonly no); fi
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$tmp/redis-$2" --daemonize no \
    "${aof[@]}" --save "" --logfile "$tmp/redis-$2.log" &
  pids+=($!)
  wait_until "redis-server ($1) to answer PING" 10 pong "$PORT"
  sha=""
  if [ "$requests" != 0 ]; then
    sha=$(redis-cli -p "$PORT" SCRIPT LOAD "$(cat cmd/throttledb/internal/bench/throttle.lua)")
  fi
  add_target "Redis+Lua, $1" "redis-server + Lua, $1" "127.0.0.1:$PORT" lua "$sha"
}

defaults=(--clients 32 --duration 10s --keys 1000)

# run_bench I: run throttledb bench --verify against target I, show its
# report, add a row to the first table.
run_bench() {
  local i=$1 out="$tmp/bench.out" rc=0 target=throttledb
  if [ "${t_kind[$i]}" = lua ]; then target=redis-lua; fi
  log "bench against ${t_vlabel[$i]} (${t_addr[$i]})"
  "$bin" bench --verify --target "$target" --addr "${t_addr[$i]}" "${defaults[@]}" ${passthru[@]+"${passthru[@]}"} >"$out" 2>&1 || rc=$?
  sed 's/^/    /' "$out"
  local ops p50 p99 max spacing
  ops=$(awk '/throughput:/ {print $2}' "$out")
  p50=$(grep -o 'p50=[^ ]*' "$out" | cut -d= -f2 || true)
  p99=$(grep -o 'p99=[^ ]*' "$out" | cut -d= -f2 || true)
  max=$(grep -o 'max=[^ ]*' "$out" | cut -d= -f2 || true)
  spacing=$(grep -o 'spacing: [A-Z]*' "$out" | cut -d' ' -f2 || true)
  if [ "$rc" != 0 ] && [ "$spacing" != FAIL ]; then spacing="error (exit $rc): $(tail -n 1 "$out")"; fi
  rows+=("| ${t_vlabel[$i]} | ${ops:--} | ${p50:--} | ${p99:--} | ${max:--} | ${spacing:--} |")
}

# next_key sets KEY to a random-key pattern no earlier run used (rN:).
rb_batch=0
next_key() {
  rb_batch=$((rb_batch + 1))
  KEY="r$rb_batch:key:__rand_int__"
}

# Runs of N requests a round adds up into one figure for -P 1 and for the
# hot key (-P 16 takes 16): one run of 20,000 lasts about a second, too
# short to ride out the machine's swings.
runs_p1=4 runs_hot=4

# rb_run I PIPELINE KEY: one redis-benchmark run of N requests against
# target I; prints "ops/s p50-ms", or nothing (and redis-benchmark's
# output on stderr) if it failed. redis-benchmark waits for ever for a
# server that is gone, so each run is bounded, and a target that no longer
# answers PING after a failed run gets no more runs.
t_dead=()
rb_timeout=$((60 + requests / 500))
rb_run() {
  local i=$1 cmd=(THROTTLE.ACQUIRE)
  if [ -n "${t_dead[$i]:-}" ]; then return 0; fi
  if [ "${t_kind[$i]}" = lua ]; then cmd=(EVALSHA "${t_sha[$i]}" 1); fi
  timeout "$rb_timeout" redis-benchmark -h "${t_addr[$i]%:*}" -p "${t_addr[$i]##*:}" -c 50 -r 10000 -n "$requests" -P "$2" --csv \
    "${cmd[@]}" "$3" 1000 5 >"$tmp/rb.csv" 2>&1 || true
  # The line after the header "test","rps","avg_latency_ms","min","p50",...
  # (not what a run that could not connect prints instead).
  local res
  res=$(awk -F'","' 'h && $2 + 0 > 0 {print $2, $5; exit} /^"test","rps"/ {h = 1}' "$tmp/rb.csv")
  if [ -z "$res" ]; then
    log "redis-benchmark against ${t_label[$i]} failed:"
    sed 's/^/    /' "$tmp/rb.csv" >&2
    if ! pong "${t_addr[$i]##*:}"; then
      log "${t_label[$i]} does not answer PING: no more runs against it"
      t_dead[i]=1
    fi
    return 0
  fi
  echo "$res"
}

# record ROUND I WORKLOAD "OPS P50": append one figure to $tmp/rb.tsv as
# round, label, workload, ops/s, p50 ms ("-" for a failed run).
record() {
  local ops=- p50=-
  if [ -n "$4" ]; then read -r ops p50 <<<"$4"; fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "${t_label[$2]}" "$3" "$ops" "$p50" >>"$tmp/rb.tsv"
}

# run_workload R WORKLOAD PIPELINE KEY RUNS ORDER...: RUNS runs of
# WORKLOAD against every target of ORDER, interleaved (run 1 against each
# in turn, then run 2, ...), each on keys no earlier run used unless KEY is
# "hot"; records per target requests over the sum of its runs' times, and
# the median of their p50s.
run_workload() {
  local r=$1 w=$2 pipe=$3 key=$4 runs=$5 i s
  shift 5
  for i in "$@"; do : >"$tmp/runs.$i"; done
  for ((s = 1; s <= runs; s++)); do
    for i in "$@"; do
      KEY=$key
      if [ "$key" != hot ]; then next_key; fi
      rb_run "$i" "$pipe" "$KEY" >>"$tmp/runs.$i"
    done
  done
  for i in "$@"; do
    record "$r" "$i" "$w" "$(sort -k2,2g "$tmp/runs.$i" | awk -v n="$requests" -v runs="$runs" '
      { t += n / $1; p[NR] = $2 }
      END { if (NR == runs) printf "%.0f %s\n", NR * n / t, p[int((NR + 1) / 2)] }')"
  done
}

# run_round R: every redis-benchmark workload against every target, one
# target after another, starting at target (R-1) mod targets.
run_round() {
  local r=$1 n=${#t_label[@]} order=() i j names=()
  for ((j = 0; j < n; j++)); do
    i=$(((j + r - 1) % n))
    order+=("$i")
    names+=("${t_label[$i]}")
  done
  log "round $r of $rounds, in the order: $(printf '%s; ' "${names[@]}")"
  run_workload "$r" "random keys, -P 1" 1 key:__rand_int__ "$runs_p1" "${order[@]}"
  run_workload "$r" "random keys, -P 16" 16 key:__rand_int__ 16 "${order[@]}"
  run_workload "$r" "one hot key, -P 1" 1 hot "$runs_hot" "${order[@]}"
}

bin="$tmp/throttledb"
log "building throttledb into $tmp"
go build -o "$bin" ./cmd/throttledb

for store in "${stores[@]}"; do
  start_single "$store"
  start_cluster "$store"
done
have_redis=0
if command -v redis-server >/dev/null 2>&1; then
  have_redis=1
  log "$(redis-server --version)"
  start_redis "appendfsync always" always
  start_redis "appendfsync everysec" everysec
  start_redis "in memory" no
else
  log "redis-server is not installed: skipping the Redis rows (install it with: apt-get install -y redis-server)"
fi

for i in "${!t_label[@]}"; do run_bench "$i"; done
if [ "$have_redis" = 0 ]; then
  rows+=("| redis-server + Lua | skipped: redis-server not installed (apt-get install -y redis-server) | | | | |")
fi

rb_started=$SECONDS
if [ "$requests" != 0 ]; then
  for ((r = 1; r <= rounds; r++)); do run_round "$r"; done
fi
rb_took=$((SECONDS - rb_started))

echo
echo "Load: throttledb bench --verify ${defaults[*]} ${passthru[*]:-} (latency per round trip)"
echo
echo "| target | ops/s | p50 | p99 | max | spacing |"
echo "|---|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"

if [ -s "$tmp/rb.tsv" ]; then
  printf '%s\n' "${t_label[@]}" >"$tmp/targets"
  echo
  echo "Load: redis-benchmark -c 50 -r 10000 -n $requests -P 1 ($runs_p1 runs a round), -P 16 (16 runs) and -P 1 on one hot key ($runs_hot runs), every run on random keys on keys no earlier run used (prefix rN:), --csv, \`THROTTLE.ACQUIRE key:__rand_int__ 1000 5\`"
  echo "(Redis: \`EVALSHA <cmd/throttledb/internal/bench/throttle.lua> 1 key:__rand_int__ 1000 5\`; hot key: the key \`hot\`)"
  echo "$rounds round(s) in ${rb_took}s, every server up at once; in each round every workload against every target in turn, run by run (order rotated each round);"
  echo "a round's figure: requests over the sum of its runs' times, p50 their median. Below: ops/s and p50, the median over the rounds; x Lua, the median of the per-round ratios (min-max)."
  echo
  echo "| target | workload | ops/s | p50 ms | x Lua always | x Lua in memory |"
  echo "|---|---|---:|---:|---:|---:|"
  # The awk programs below read the targets in table order, then rb.tsv:
  # round, label, workload, ops/s, p50 ms.
  awk -F'\t' '
    # sorted(A, N): sort A[1..N] (numbers) in place.
    function sorted(a, n,   i, j, v) {
      for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
    }
    # median(A, N): the median of sorted A[1..N].
    function median(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    # med(KEY, FMT): the median of the figures stored under KEY, or "-".
    function med(key, fmt,   a, n, r) {
      n = 0
      for (r = 1; r <= rounds; r++) if ((r SUBSEP key) in fig && fig[r, key] != "-") a[++n] = fig[r, key] + 0
      if (n == 0) return "-"
      sorted(a, n)
      return sprintf(fmt, median(a, n))
    }
    # ratios(L, BASE, W): the median (min-max) of the per-round ratios of
    # target L to target BASE on workload W.
    function ratios(l, base, w,   a, n, r, x, y) {
      n = 0
      for (r = 1; r <= rounds; r++) {
        x = ops[r, l, w]; y = ops[r, base, w]
        if (x != "" && x != "-" && y != "" && y != "-" && y > 0) a[++n] = x / y
      }
      if (n == 0) return "-"
      sorted(a, n)
      return n == 1 ? sprintf("%.2f", a[1]) : sprintf("%.2f (%.2f-%.2f)", median(a, n), a[1], a[n])
    }
    FNR == NR { label[++nt] = $0; next }
    { ops[$1, $2, $3] = $4; fig[$1, $2 SUBSEP $3 SUBSEP "ops"] = $4; fig[$1, $2 SUBSEP $3 SUBSEP "p50"] = $5
      if ($1 > rounds) rounds = $1 }
    END {
      split("random keys, -P 1|random keys, -P 16|one hot key, -P 1", work, "|")
      for (t = 1; t <= nt; t++) for (k = 1; k <= 3; k++) {
        l = label[t]; w = work[k]
        printf "| %s | %s | %s | %s | %s | %s |\n", l, w, med(l SUBSEP w SUBSEP "ops", "%.0f"), med(l SUBSEP w SUBSEP "p50", "%.3f"),
          ratios(l, "Redis+Lua, appendfsync always", w), ratios(l, "Redis+Lua, in memory", w)
      }
      # Through a follower against through the leader, same cluster, same round.
      print ""
      for (t = 1; t <= nt; t++) {
        if (label[t] !~ /, via a follower$/) continue
        l = label[t]; sub(/, via a follower$/, ", via the leader", l)
        c = label[t]; sub(/, via a follower$/, "", c)
        for (k = 1; k <= 3; k++) printf "follower/leader, %s, %s: %s\n", c, work[k], ratios(label[t], l, work[k])
      }
      # The figures of every round, to check the medians against.
      printf "\nEvery round: ops/s, p50 ms (x Lua always that round)\n\n| target | workload |"
      for (r = 1; r <= rounds; r++) printf " round %d |", r
      printf "\n|---|---|"
      for (r = 1; r <= rounds; r++) printf "---:|"
      print ""
      for (t = 1; t <= nt; t++) for (k = 1; k <= 3; k++) {
        l = label[t]; w = work[k]
        printf "| %s | %s |", l, w
        for (r = 1; r <= rounds; r++) {
          x = ops[r, l, w]; y = ops[r, "Redis+Lua, appendfsync always", w]
          printf " %s %s%s |", (x == "" || x == "-") ? "-" : sprintf("%.0f", x), fig[r, l SUBSEP w SUBSEP "p50"],
            (x != "" && x != "-" && y != "" && y != "-" && y > 0) ? sprintf(" (%.2f)", x / y) : ""
        }
        print ""
      }
    }
  ' "$tmp/targets" "$tmp/rb.tsv"
fi

echo
echo "Machine: $cpus cores; load average (1, 5, 15 min) before: ${load_before:-?}, after: $(loadavg); the script took $((SECONDS - started))s."
