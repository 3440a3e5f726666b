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
