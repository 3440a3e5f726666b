# shellcheck shell=bash
# Shell functions the bench scripts share; source it from bash.

# free_port prints a free loopback port with 3 free ports after it, for a
# `throttledb cluster --nodes 3` base port.
free_port() {
  python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    try:
        for q in range(p, p + 3):
            t = socket.socket(); t.bind(("127.0.0.1", q)); t.close()
    except OSError:
        continue
    print(p); break'
}

# info PORT FIELD prints FIELD of the node's INFO (empty if it does not answer).
info() { redis-cli -p "$1" INFO 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# shellcheck disable=SC2034 # LEADER and FOLLOWER are for the caller
# await_cluster BASE: wait (30 s at most) until the nodes on BASE..BASE+2
# have a ready leader and two followers that know it; sets LEADER and
# FOLLOWER to a port each. Returns 1 if they do not.
await_cluster() {
  local base=$1 p ready
  for _ in $(seq 300); do
    LEADER="" FOLLOWER="" ready=0
    for p in "$base" $((base + 1)) $((base + 2)); do
      case "$(info "$p" raft_state)" in
        leader) [ "$(info "$p" raft_ready)" = true ] && LEADER=$p ;;
        follower) [ "$(info "$p" raft_leader_id)" != "" ] && FOLLOWER=$p && ready=$((ready + 1)) ;;
      esac
    done
    [ -n "$LEADER" ] && [ "$ready" = 2 ] && return 0
    sleep 0.1
  done
  return 1
}

# SERVERS holds the pids of the processes a script started and must stop:
# stop_servers stops them, and scratch makes the script do so when it exits.
SERVERS=()

# stop_servers stops every process in SERVERS by its own pid: SIGTERM, up
# to 10 s to exit (a cluster launcher stops its nodes first), then SIGKILL.
stop_servers() {
  local p
  for p in "${SERVERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${SERVERS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  SERVERS=()
}

# scratch NAME: make a temporary directory, set SCRATCH to it, and on exit
# stop the servers (stop_servers) and remove it.
scratch() {
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/throttledb-$1.XXXXXX")
  trap 'stop_servers; rm -rf "$SCRATCH"' EXIT
  trap 'exit 130' INT TERM
}

# shellcheck disable=SC2034 # BASE is for the caller
# start_cluster BIN DIR [FLAG...]: start `BIN cluster --nodes 3` on free
# loopback ports, its data in DIR, its output in DIR.log and the FLAGs
# passed on; add its pid to SERVERS and wait for it (await_cluster, which
# sets LEADER and FOLLOWER); set BASE to node 1's port. If the cluster does
# not come up, print its log and exit 1.
start_cluster() {
  local bin=$1 dir=$2 raft
  shift 2
  BASE=$(free_port)
  raft=$(free_port)
  "$bin" cluster --nodes 3 --base-port "$BASE" --raft-base-port "$raft" \
    --data "$dir" --log-level error "$@" >"$dir.log" 2>&1 &
  SERVERS+=($!)
  if ! await_cluster "$BASE"; then
    echo "$(basename "$0" .sh): the cluster in $dir did not come up; its log:" >&2
    cat "$dir.log" >&2
    exit 1
  fi
}
