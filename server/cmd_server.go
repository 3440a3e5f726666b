package server

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// nowMs is cluster time as this node sees it: its wall clock, never earlier
// than the newest entry it has applied.
func (s *Server) nowMs() int64 { return s.fsm.Clock(time.Now().UnixMilli()) }

// cmdCommand serves COMMAND, COMMAND COUNT, COMMAND INFO name... and COMMAND
// DOCS (empty: redis-cli asks for it at start and copes without).
func cmdCommand(s *Server, c *call) {
	if len(c.args) == 1 {
		cmds := sortedCommands()
		c.conn.WriteArray(len(cmds))
		for _, cmd := range cmds {
			writeCommandInfo(c, cmd)
		}
		return
	}
	switch sub := strings.ToLower(string(c.args[1])); sub {
	case "count":
		c.conn.WriteInt(len(commands))
	case "docs":
		c.writeMapHeader(0)
	case "info":
		c.conn.WriteArray(len(c.args) - 2)
		for _, name := range c.args[2:] {
			if cmd := commands[strings.ToLower(string(name))]; cmd != nil {
				writeCommandInfo(c, cmd)
			} else {
				c.writeNull()
			}
		}
	default:
		c.conn.WriteError(unknownSubcommand(c.args[1], "command"))
	}
}

// writeCommandInfo writes the six classic COMMAND fields: name, arity,
// flags, first key, last key, key step.
func writeCommandInfo(c *call, cmd *command) {
	var flags []string
	if cmd.flags&flagWrite != 0 {
		flags = append(flags, "write")
	}
	if cmd.flags&flagReadonly != 0 {
		flags = append(flags, "readonly")
	}
	if cmd.flags&flagNoAuth != 0 {
		flags = append(flags, "no_auth")
	}
	step := 0
	if cmd.firstKey > 0 {
		step = 1
	}
	c.conn.WriteArray(6)
	c.conn.WriteBulkString(cmd.name)
	c.conn.WriteInt(cmd.arity)
	c.conn.WriteArray(len(flags))
	for _, f := range flags {
		c.conn.WriteString(f)
	}
	c.conn.WriteInt(cmd.firstKey)
	c.conn.WriteInt(cmd.lastKey)
	c.conn.WriteInt(step)
}

// cmdConfig serves CONFIG GET pattern (no parameters are exposed, so the
// reply is empty) and refuses CONFIG SET.
func cmdConfig(s *Server, c *call) {
	if !c.hasArity("config", -2) {
		return
	}
	switch strings.ToLower(string(c.args[1])) {
	case "get":
		if len(c.args) < 3 {
			c.conn.WriteError(wrongArity("config|get"))
			return
		}
		c.writeMapHeader(0)
	case "set", "resetstat", "rewrite":
		c.conn.WriteError("ERR CONFIG " + strings.ToUpper(string(c.args[1])) + " is not supported by throttledb; use command-line flags")
	default:
		c.conn.WriteError(unknownSubcommand(c.args[1], "config"))
	}
}

// cmdDBSize serves DBSIZE: the number of unexpired keys in this node's state.
func cmdDBSize(s *Server, c *call) {
	c.conn.WriteInt(s.fsm.DBSize(s.nowMs()))
}

// cmdTime serves TIME: cluster time as seconds and microseconds.
func cmdTime(s *Server, c *call) {
	ms := s.nowMs()
	c.conn.WriteArray(2)
	c.conn.WriteBulkString(itoa(ms / 1000))
	c.conn.WriteBulkString(itoa(ms % 1000 * 1000))
}

// cmdRole serves ROLE in Redis's shapes: a leader is a "master" with its
// followers as replicas; a follower is a "slave" of the leader.
func cmdRole(s *Server, c *call) {
	stats := s.raft.Stats()
	if s.raft.State() == raft.Leader {
		commit, _ := strconv.ParseInt(stats["commit_index"], 10, 64)
		others := s.peers()
		c.conn.WriteArray(3)
		c.conn.WriteBulkString("master")
		c.conn.WriteInt64(commit)
		c.conn.WriteArray(len(others))
		for _, p := range others {
			host, port := splitHostPort(p.resp)
			c.conn.WriteArray(3)
			c.conn.WriteBulkString(host)
			c.conn.WriteBulkString(port)
			c.conn.WriteBulkString(stats["last_log_index"])
		}
		return
	}
	applied, _ := strconv.ParseInt(stats["applied_index"], 10, 64)
	host, port, state := "", int64(-1), "connect"
	if _, addr, ok := s.leader(); ok {
		h, p := splitHostPort(addr)
		host, state = h, "connected"
		port, _ = strconv.ParseInt(p, 10, 64)
	}
	c.conn.WriteArray(5)
	c.conn.WriteBulkString("slave")
	c.conn.WriteBulkString(host)
	c.conn.WriteInt64(port)
	c.conn.WriteBulkString(state)
	c.conn.WriteInt64(applied)
}

func splitHostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return h, p
}

// cmdInfo serves INFO [section ...] with sections server, clients, stats,
// raft and keyspace.
func cmdInfo(s *Server, c *call) {
	all := []string{"server", "clients", "stats", "raft", "latency", "keyspace"}
	want := map[string]bool{}
	for _, a := range c.args[1:] {
		switch sec := strings.ToLower(string(a)); sec {
		case "all", "everything", "default":
			for _, x := range all {
				want[x] = true
			}
		default:
			want[sec] = true
		}
	}
	if len(want) == 0 {
		for _, x := range all {
			want[x] = true
		}
	}
	var b strings.Builder
	section := func(name string, kv ...string) {
		if !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "# %s\r\n", name)
		for i := 0; i+1 < len(kv); i += 2 {
			fmt.Fprintf(&b, "%s:%s\r\n", kv[i], kv[i+1])
		}
	}
	_, port := splitHostPort(s.Addr())
	section("Server",
		"redis_version", "7.2.0",
		"throttledb_version", Version,
		"redis_mode", "standalone",
		"os", runtime.GOOS+" "+runtime.GOARCH,
		"go_version", runtime.Version(),
		"process_id", strconv.Itoa(os.Getpid()),
		"tcp_port", port,
		"uptime_in_seconds", itoa(int64(time.Since(s.started).Seconds())),
		"node_id", s.cfg.ID,
	)
	section("Clients", "connected_clients", itoa(s.clients.Load()))
	st := s.fsm.Stats()
	section("Stats",
		"total_connections_received", itoa(s.connsTotal.Load()),
		"total_commands_processed", itoa(s.cmdsTotal.Load()),
		"throttle_grants", itoa(st.Grants),
		"throttle_reservations", itoa(st.Reservations),
		"throttle_denials", itoa(st.Denials),
		// The state's accounted memory and its cap (see memGate); a
		// full memory section is another matter.
		"throttle_state_memory", itoa(s.fsm.MemoryUsage(s.nowMs())),
		"maxmemory", itoa(max(s.cfg.MaxMemory, 0)),
		"maxmemory_policy", "noeviction",
	)
	rs := s.raft.Stats()
	lid, laddr, _ := s.leader()
	section("Raft",
		"raft_state", strings.ToLower(rs["state"]),
		"raft_ready", strconv.FormatBool(s.isReady()),
		"raft_term", rs["term"],
		"raft_commit_index", rs["commit_index"],
		"raft_applied_index", rs["applied_index"],
		"raft_last_log_index", rs["last_log_index"],
		"raft_last_snapshot_index", rs["last_snapshot_index"],
		"raft_num_peers", rs["num_peers"],
		"raft_leader_id", lid,
		"raft_leader_addr", laddr,
		"raft_log_store", s.raft.logStore,
	)
	// Where a write's time goes (see latency.go and README.md's
	// Performance section).
	section("Latency", s.latencyInfo()...)
	var ks []string
	if n := s.fsm.DBSize(s.nowMs()); n > 0 {
		ks = []string{"db0", fmt.Sprintf("keys=%d,expires=%d,avg_ttl=0", n, n)}
	}
	section("Keyspace", ks...)
	c.conn.WriteBulkString(b.String() + "\r\n")
}
