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
func (s *Server) nowMs() int64 { return s.fsm.Clock(s.wallMs()) }

// cmdCommand serves COMMAND, COMMAND COUNT, COMMAND INFO [name ...],
// COMMAND DOCS [name ...] and COMMAND LIST [FILTERBY ...] in Redis 7's
// formats, from the command table and commandDocs (docs.go).
func cmdCommand(s *Server, c *call) (any, error) {
	if len(c.args) == 1 {
		return allCommandInfo(), nil
	}
	switch sub := strings.ToLower(string(c.args[1])); sub {
	case "count":
		if len(c.args) != 2 {
			return nil, errArity("command|count")
		}
		return len(commands), nil
	case "docs":
		cmds := sortedCommands()
		if len(c.args) > 2 {
			// Redis leaves out the names it does not know.
			cmds = cmds[:0]
			for _, name := range c.args[2:] {
				if cmd := commands[strings.ToLower(string(name))]; cmd != nil {
					cmds = append(cmds, cmd)
				}
			}
		}
		docs := make(mapReply, 0, 2*len(cmds))
		for _, cmd := range cmds {
			docs = append(docs, cmd.name, commandDocsReply(commandDocs[cmd.name]))
		}
		return docs, nil
	case "info":
		if len(c.args) == 2 {
			return allCommandInfo(), nil
		}
		infos := make([]any, 0, len(c.args)-2)
		for _, arg := range c.args[2:] {
			name := strings.ToLower(string(arg))
			var info any // null for a name Redis does not know
			if cmd := commands[name]; cmd != nil {
				info = commandInfo(cmd)
			} else if sd := findSubcommand(name); sd != nil {
				info = subcommandInfo(sd)
			}
			infos = append(infos, info)
		}
		return infos, nil
	case "list":
		return cmdCommandList(c)
	default:
		return nil, errUnknownSubcommand(c.args[1], "command")
	}
}

// allCommandInfo is COMMAND's reply: every command's COMMAND INFO entry.
func allCommandInfo() []any {
	cmds := sortedCommands()
	out := make([]any, len(cmds))
	for i, cmd := range cmds {
		out[i] = commandInfo(cmd)
	}
	return out
}

// cmdCommandList serves COMMAND LIST [FILTERBY MODULE name | ACLCAT
// category | PATTERN pattern].
func cmdCommandList(c *call) (any, error) {
	keep := func(*command) bool { return true }
	switch {
	case len(c.args) == 2:
	case len(c.args) == 5 && strings.EqualFold(string(c.args[2]), "filterby"):
		val := string(c.args[4])
		switch strings.ToLower(string(c.args[3])) {
		case "module":
			keep = func(cmd *command) bool { return commandDocs[cmd.name].group == "module" && val == throttledbModule }
		case "aclcat":
			keep = func(cmd *command) bool {
				for _, cat := range commandDocs[cmd.name].acl {
					if strings.EqualFold(cat[1:], val) {
						return true
					}
				}
				return false
			}
		case "pattern":
			keep = func(cmd *command) bool { return globMatch(val, cmd.name, true) }
		default:
			return nil, errSyntax
		}
	default:
		return nil, errSyntax
	}
	names := []string{}
	for _, cmd := range sortedCommands() {
		if keep(cmd) {
			names = append(names, cmd.name)
		}
	}
	return names, nil
}

// cmdConfig serves CONFIG GET pattern [pattern ...] (see configParams) and
// refuses CONFIG SET, RESETSTAT and REWRITE: throttledb is configured by
// its command-line flags.
func cmdConfig(s *Server, c *call) (any, error) {
	switch strings.ToLower(string(c.args[1])) {
	case "get":
		if len(c.args) < 3 {
			return nil, errArity("config|get")
		}
		var match mapReply
		for _, p := range s.configParams() {
			for _, pat := range c.args[2:] {
				if globMatch(string(pat), p.name, true) {
					match = append(match, p.name, p.value)
					break
				}
			}
		}
		return match, nil
	case "set", "resetstat", "rewrite":
		return nil, redisError("ERR CONFIG " + strings.ToUpper(string(c.args[1])) + " is not supported by throttledb; use command-line flags")
	default:
		return nil, errUnknownSubcommand(c.args[1], "config")
	}
}

// configParam is one parameter CONFIG GET reports.
type configParam struct{ name, value string }

// configParams returns the Redis configuration parameters that have a
// truthful value in throttledb, from the node's effective configuration.
//
// Durability: every acknowledged write is in the Raft log, fsynced before
// the reply (unless --no-sync, a test-only setting), which is what Redis
// calls appendonly yes with appendfsync always. Raft's snapshots compact
// the log and add no durability, so there are no RDB save points: save is
// "". requirepass is never reported (Redis would return the password; a
// secret has no business in a reply, and whoever may run CONFIG GET could
// then read it), so a tool learns nothing about it from CONFIG GET.
func (s *Server) configParams() []configParam {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fsync := "always"
	if s.cfg.NoSync {
		fsync = "no"
	}
	host, port := splitHostPort(s.Addr())
	params := []configParam{
		{"bind", host},
		{"port", port},
		{"databases", "1"},
		{"cluster-enabled", "no"}, // not Redis Cluster: one Raft group serves every key
		{"dir", s.cfg.DataDir},
		{"save", ""},
		{"appendonly", "yes"},
		{"appendfsync", fsync},
		{"maxmemory", itoa(max(s.cfg.MaxMemory, 0))},
		{"maxmemory-policy", "noeviction"},
		{"maxclients", strconv.Itoa(s.cfg.MaxClients)},
		{"timeout", itoa(int64(s.cfg.Timeout / time.Second))},
		{"proto-max-bulk-len", itoa(s.cfg.ProtoMaxBulkLen)},
		{"client-query-buffer-limit", itoa(s.cfg.ClientQueryBufferLimit)},
		{"protected-mode", yesNo(!s.cfg.NoProtectedMode)},
	}
	if s.tls != nil {
		auth := s.cfg.TLSAuthClients
		if auth == "" {
			auth = TLSAuthClientsYes
		}
		params = append(params, configParam{"tls-auth-clients", auth})
	}
	return params
}

// cmdDBSize serves DBSIZE: the number of unexpired keys in this node's state.
func cmdDBSize(s *Server, c *call) (any, error) {
	if s.loading() {
		return nil, errLoading
	}
	return s.fsm.DBSize(s.nowMs()), nil
}

// cmdTime serves TIME: cluster time as seconds and microseconds.
func cmdTime(s *Server, c *call) (any, error) {
	ms := s.nowMs()
	return []string{itoa(ms / 1000), itoa(ms % 1000 * 1000)}, nil
}

// cmdRole serves ROLE in Redis's shapes: a leader is a "master" with its
// followers as replicas; a follower is a "slave" of the leader.
func cmdRole(s *Server, c *call) (any, error) {
	stats := s.raft.Stats()
	if s.raft.State() == raft.Leader {
		commit, _ := strconv.ParseInt(stats["commit_index"], 10, 64)
		replicas := []any{}
		for _, p := range s.peers() {
			host, port := splitHostPort(p.resp)
			replicas = append(replicas, []string{host, port, stats["last_log_index"]})
		}
		return []any{"master", commit, replicas}, nil
	}
	applied, _ := strconv.ParseInt(stats["applied_index"], 10, 64)
	host, port, state := "", int64(-1), "connect"
	if _, addr, ok := s.leader(); ok {
		h, p := splitHostPort(addr)
		host, state = h, "connected"
		port, _ = strconv.ParseInt(p, 10, 64)
	}
	return []any{"slave", host, port, state, applied}, nil
}

func splitHostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return h, p
}

// infoSections lists INFO's sections in Redis 7's order, with Raft and
// Latency (throttledb's sections) before Keyspace; default says whether INFO without
// arguments (or with "default") includes it. "all" and "everything" are
// every section.
var infoSections = []struct {
	name  string
	deflt bool
}{
	{"Server", true}, {"Clients", true}, {"Memory", true}, {"Persistence", true},
	{"Stats", true}, {"Replication", true}, {"CPU", true}, {"Commandstats", false},
	{"Errorstats", true}, {"Cluster", true}, {"Raft", true}, {"Latency", true}, {"Keyspace", true},
}

// cmdInfo serves INFO [section ...] in Redis's format: "# Section" headers
// and name:value lines, sections separated by an empty line.
func cmdInfo(s *Server, c *call) (any, error) {
	want := map[string]bool{}
	for _, a := range c.args[1:] {
		switch sec := strings.ToLower(string(a)); sec {
		case "all", "everything":
			for _, x := range infoSections {
				want[strings.ToLower(x.name)] = true
			}
		case "default":
			for _, x := range infoSections {
				want[strings.ToLower(x.name)] = want[strings.ToLower(x.name)] || x.deflt
			}
		default:
			want[sec] = true
		}
	}
	if len(c.args) == 1 {
		for _, x := range infoSections {
			want[strings.ToLower(x.name)] = x.deflt
		}
	}
	var b strings.Builder
	for _, sec := range infoSections {
		if !want[strings.ToLower(sec.name)] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "# %s\r\n", sec.name)
		kv := s.infoSection(sec.name)
		for i := 0; i+1 < len(kv); i += 2 {
			fmt.Fprintf(&b, "%s:%s\r\n", kv[i], kv[i+1])
		}
	}
	return b.String(), nil
}

// infoSection returns the name:value pairs of one INFO section.
func (s *Server) infoSection(name string) []string {
	switch name {
	case "Server":
		_, port := splitHostPort(s.Addr())
		return []string{
			"redis_version", "7.2.0",
			"throttledb_version", Version,
			"redis_mode", "standalone",
			"os", runtime.GOOS + " " + runtime.GOARCH,
			"go_version", runtime.Version(),
			"process_id", strconv.Itoa(os.Getpid()),
			"tcp_port", port,
			"uptime_in_seconds", itoa(int64(time.Since(s.started).Seconds())),
			"uptime_in_days", itoa(int64(time.Since(s.started).Hours() / 24)),
			"node_id", s.cfg.ID,
		}
	case "Clients":
		return []string{
			"connected_clients", itoa(s.clients.Load()),
			"maxclients", strconv.Itoa(s.cfg.MaxClients),
			"blocked_clients", "0", // no command blocks a connection for a key
			"tracking_clients", "0",
		}
	case "Memory":
		used, rss := memoryUsage()
		maxmem := max(s.cfg.MaxMemory, 0)
		return []string{
			"used_memory", itoa(used),
			"used_memory_human", bytesToHuman(used),
			"used_memory_rss", itoa(rss),
			"used_memory_rss_human", bytesToHuman(rss),
			// The state's accounted memory, which maxmemory caps (see
			// memGate); used_memory is the whole process's heap.
			"throttle_state_memory", itoa(s.fsm.MemoryUsage(s.nowMs())),
			"maxmemory", itoa(maxmem),
			"maxmemory_human", bytesToHuman(maxmem),
			"maxmemory_policy", "noeviction",
		}
	case "Persistence":
		// Durability is the Raft log, fsynced before every reply (see
		// configParams): Redis's AOF with appendfsync always is the
		// nearest thing. Snapshots only compact the log.
		rs := s.raft.Stats()
		applied, _ := strconv.ParseInt(rs["applied_index"], 10, 64)
		snap, _ := strconv.ParseInt(rs["last_snapshot_index"], 10, 64)
		return []string{
			"loading", "0",
			"rdb_changes_since_last_save", itoa(max(applied-snap, 0)),
			"aof_enabled", "1",
			"aof_rewrite_in_progress", "0",
		}
	case "Stats":
		st := s.fsm.Stats()
		return []string{
			"total_connections_received", itoa(s.connsTotal.Load()),
			"total_commands_processed", itoa(s.cmdsTotal.Load()),
			"total_error_replies", itoa(s.stats.errTotal.Load()),
			"throttle_grants", itoa(st.Grants),
			"throttle_reservations", itoa(st.Reservations),
			"throttle_denials", itoa(st.Denials),
			// This node's denials answered without the log (not in
			// throttle_denials; see denier).
			"throttle_denials_fast", itoa(s.deny.count.Load()),
		}
	case "Replication":
		return s.infoReplication()
	case "CPU":
		return cpuTimes()
	case "Commandstats":
		return s.stats.commandStats()
	case "Errorstats":
		return s.stats.errorStats()
	case "Cluster":
		return []string{"cluster_enabled", "0"} // not Redis Cluster: see Raft
	case "Raft":
		rs := s.raft.Stats()
		lid, laddr, _ := s.leader()
		return []string{
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
			// Writes this node, as leader, answered unknown because Raft
			// had not committed their entry within the commit timeout
			// (entries), and refused because they waited the leader wait
			// behind such an entry (commands): a stalled majority.
			"raft_commit_timeouts", itoa(s.prop.commitTimeouts.Load()),
			"raft_queue_timeouts", itoa(s.prop.queueTimeouts.Load()),
		}
	case "Latency":
		// Where a write's time goes (see latency.go and README.md's
		// "Where a commit's time goes").
		return s.latencyInfo()
	case "Keyspace":
		if n := s.fsm.DBSize(s.nowMs()); n > 0 {
			return []string{"db0", fmt.Sprintf("keys=%d,expires=%d,avg_ttl=0", n, n)}
		}
	}
	return nil
}

// infoReplication is INFO replication in Redis's words: the leader is a
// master with the other members as its replicas, a follower is a slave of
// the leader, its link up while a leader is known. Offsets are Raft log
// indexes: the leader's commit index, a follower's applied index.
func (s *Server) infoReplication() []string {
	rs := s.raft.Stats()
	if s.raft.State() == raft.Leader {
		peers := s.peers()
		kv := []string{"role", "master", "connected_slaves", strconv.Itoa(len(peers))}
		for i, p := range peers {
			host, port := splitHostPort(p.resp)
			kv = append(kv, "slave"+strconv.Itoa(i), "ip="+host+",port="+port)
		}
		return append(kv, "master_repl_offset", rs["commit_index"])
	}
	host, port, link := "", "", "down"
	if _, addr, ok := s.leader(); ok {
		host, port = splitHostPort(addr)
		link = "up"
	}
	return []string{
		"role", "slave",
		"master_host", host,
		"master_port", port,
		"master_link_status", link,
		"connected_slaves", "0",
		"master_repl_offset", rs["applied_index"],
	}
}
