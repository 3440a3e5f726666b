package server

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"
)

// cmdFlags describe a command for COMMAND and for dispatch.
type cmdFlags uint8

const (
	flagWrite     cmdFlags = 1 << iota // changes state through the log
	flagReadonly                       // changes nothing
	flagNoAuth                         // allowed before AUTH
	flagLeader                         // served by the leader; followers forward it
	flagTxable                         // may be queued inside MULTI
	flagTxControl                      // runs at once even inside MULTI
)

// command is one row of the command table.
type command struct {
	name     string // lower case, as Redis reports it
	arity    int    // Redis convention: n exact, -n at least n (the name counts)
	flags    cmdFlags
	firstKey int // position of the first key argument, 0 if none
	lastKey  int // position of the last key (-1: the last argument)
	handler  func(s *Server, c *call)
}

// call is one command being served.
type call struct {
	conn *clientConn
	sess *session
	args [][]byte
	fwd  bool // arrived through RAFT.FWD from another node
}

// session is the per-connection state.
type session struct {
	id     int64
	authed bool
	name   string
	// libName and libVer are what CLIENT SETINFO set, for CLIENT LIST.
	libName, libVer string
	tx              *txState // open transaction (after MULTI), or nil
	resp3           bool     // HELLO 3 was accepted: null and maps in RESP3 form
	node            bool     // authenticated as NodeUser with the cluster secret
}

// writeNull writes a null reply: `_` in RESP3, a null bulk string in RESP2.
func (c *call) writeNull() {
	if c.sess.resp3 {
		c.conn.WriteRaw([]byte("_\r\n"))
		return
	}
	c.conn.WriteNull()
}

// writeMapHeader starts a reply of n key-value pairs: a RESP3 map, or in
// RESP2 a flat array of 2n elements (Redis's own RESP2 form of a map).
func (c *call) writeMapHeader(n int) {
	if c.sess.resp3 {
		c.conn.WriteRaw([]byte("%" + strconv.Itoa(n) + "\r\n"))
		return
	}
	c.conn.WriteArray(2 * n)
}

// commands is the command table: every command throttledb serves.
var commands = map[string]*command{}

func init() {
	for _, c := range []*command{
		{name: "throttle.acquire", arity: -4, flags: flagWrite | flagLeader | flagTxable, firstKey: 1, lastKey: 1, handler: cmdAcquire},
		{name: "throttle.peek", arity: -4, flags: flagReadonly | flagLeader, firstKey: 1, lastKey: 1, handler: cmdPeek},
		{name: "throttle.reset", arity: -2, flags: flagWrite | flagLeader | flagTxable, firstKey: 1, lastKey: -1, handler: cmdReset},

		{name: "multi", arity: 1, flags: flagReadonly | flagTxControl, handler: cmdMulti},
		{name: "exec", arity: 1, flags: flagWrite | flagTxControl, handler: cmdExec},
		{name: "discard", arity: 1, flags: flagReadonly | flagTxControl, handler: cmdDiscard},

		{name: "ping", arity: -1, flags: flagReadonly, handler: cmdPing},
		{name: "echo", arity: 2, flags: flagReadonly, handler: cmdEcho},
		{name: "quit", arity: -1, flags: flagReadonly | flagNoAuth | flagTxControl, handler: cmdQuit},
		{name: "select", arity: 2, flags: flagReadonly, handler: cmdSelect},
		{name: "auth", arity: -2, flags: flagReadonly | flagNoAuth, handler: cmdAuth},
		{name: "hello", arity: -1, flags: flagReadonly | flagNoAuth, handler: cmdHello},
		{name: "client", arity: -2, flags: flagReadonly, handler: cmdClient},
		{name: "command", arity: -1, flags: flagReadonly, handler: cmdCommand},
		{name: "config", arity: -2, flags: flagReadonly, handler: cmdConfig},
		{name: "info", arity: -1, flags: flagReadonly, handler: cmdInfo},
		{name: "dbsize", arity: 1, flags: flagReadonly, handler: cmdDBSize},
		{name: "time", arity: 1, flags: flagReadonly, handler: cmdTime},
		{name: "role", arity: 1, flags: flagReadonly, handler: cmdRole},

		{name: "raft.join", arity: 4, flags: flagWrite | flagLeader, handler: cmdRaftJoin},
		{name: "raft.remove", arity: 2, flags: flagWrite | flagLeader, handler: cmdRaftRemove},
		{name: "raft.nodes", arity: 1, flags: flagReadonly, handler: cmdRaftNodes},
		{name: "raft.leader", arity: 1, flags: flagReadonly, handler: cmdRaftLeader},
		{name: "raft.transfer", arity: -1, flags: flagWrite | flagLeader, handler: cmdRaftTransfer},
		{name: "raft.snapshot", arity: 1, flags: flagWrite, handler: cmdRaftSnapshot},
		{name: "raft.digest", arity: 1, flags: flagReadonly, handler: cmdRaftDigest},
		{name: "raft.backup", arity: 1, flags: flagReadonly | flagLeader, handler: cmdRaftBackup},
		{name: "raft.restore", arity: 2, flags: flagWrite | flagLeader, handler: cmdRaftRestore},
		{name: "raft.propose", arity: 2, flags: flagWrite, handler: cmdRaftPropose},
		{name: "raft.fwd", arity: -2, flags: flagWrite, handler: cmdRaftFwd},
	} {
		commands[c.name] = c
	}
}

// sortedCommands returns the table sorted by name.
func sortedCommands() []*command {
	out := make([]*command, 0, len(commands))
	for _, c := range commands {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// serveRESP serves one command of a connection (see serveConn),
// except for a pipeline of THROTTLE.ACQUIREs, whose commands the leader
// queues together so that they share log entries (servePipeline).
func (s *Server) serveRESP(conn *clientConn, rc redcon.Command) {
	s.drainMu.RLock()
	if s.draining {
		s.drainMu.RUnlock()
		conn.WriteError(errorText(ErrShuttingDown))
		return
	}
	s.active.Add(1)
	s.drainMu.RUnlock()
	defer s.active.Done()
	sess := conn.sess
	if s.pipelined(conn, sess, rc) {
		s.servePipeline(conn, sess, append([]redcon.Command{rc}, conn.ReadPipeline()...))
		return
	}
	s.cmdsTotal.Add(1)
	s.dispatch(&call{conn: conn, sess: sess, args: rc.Args}, true)
}

// dispatch looks the command up, checks its arity and the session's
// authentication, and runs its handler, in Redis's order of checks.
func (s *Server) dispatch(c *call, checkAuth bool) {
	name := strings.ToLower(string(c.args[0]))
	cmd := commands[name]
	if cmd == nil {
		c.conn.WriteError(unknownCommand(c.args))
		c.sess.abortTx()
		return
	}
	stat := s.stats.statName(cmd, c.args) // "client|list" for INFO commandstats
	if !c.hasArity(cmd.name, cmd.arity) {
		s.stats.reject(stat)
		c.sess.abortTx()
		return
	}
	if checkAuth && !c.sess.authed && cmd.flags&flagNoAuth == 0 {
		s.stats.reject(stat)
		c.conn.WriteError(msgNoAuth)
		return
	}
	if c.sess.tx != nil && !c.fwd && cmd.flags&flagTxControl == 0 {
		errs := c.conn.errs
		queueTx(c, cmd)
		if c.conn.errs != errs {
			s.stats.reject(stat)
		}
		return
	}
	errs := c.conn.errs
	cmd.handler(s, c)
	// One clock reading per command (they cost ~90 ns on some VMs): the
	// command's time runs from the previous command's end (or the batch's
	// start, see serveConn) to its own.
	now := time.Now()
	s.stats.record(stat, c.conn.tick, now, c.conn, errs)
	c.conn.tick = now
}

// hasArity reports whether the call has as many arguments as arity allows
// (Redis's convention: n exactly, -n at least n; the name counts), and
// answers Redis's wrong-arity error for name if not. dispatch checks every
// command with it, and handlers check again before they index args, so
// that no handler's safety depends on how it was reached.
func (c *call) hasArity(name string, arity int) bool {
	n := len(c.args)
	if (arity > 0 && n == arity) || (arity <= 0 && n >= -arity) {
		return true
	}
	c.conn.WriteError(wrongArity(name))
	return false
}

// unknownCommand is Redis's reply to an unknown command, quoting up to the
// first few arguments.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ERR unknown command '%s', with args beginning with: ", clip(args[0]))
	for i, a := range args[1:] {
		if i == 20 {
			break
		}
		fmt.Fprintf(&b, "'%s' ", clip(a))
	}
	return b.String()
}

// clip shortens an argument quoted in an error to 128 bytes, as Redis does,
// and keeps line breaks out of the one-line error reply.
func clip(a []byte) string {
	if len(a) > 128 {
		a = a[:128]
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(string(a))
}

func unknownSubcommand(sub []byte, cmd string) string {
	return fmt.Sprintf("ERR unknown subcommand '%s'. Try %s HELP.", clip(sub), strings.ToUpper(cmd))
}

// parseInt parses a Redis integer argument.
func parseInt(b []byte) (int64, bool) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}
