package server

import (
	"sort"

	"github.com/throttledb/throttledb/fsm"
)

// cmdFlags describe a command for COMMAND and for dispatch.
type cmdFlags uint8

const (
	flagWrite     cmdFlags = 1 << iota // changes state through the log
	flagReadonly                       // changes nothing
	flagNoAuth                         // allowed before AUTH
	flagTxable                         // may be queued inside MULTI
	flagTxControl                      // runs at once even inside MULTI
	flagNoMulti                        // refused inside MULTI in Redis's words
)

// command is one row of the command table.
type command struct {
	name     string // lower case, as Redis reports it
	arity    int    // Redis convention: n exact, -n at least n (the name counts)
	flags    cmdFlags
	firstKey int // position of the first key argument, 0 if none
	lastKey  int // position of the last key (-1: the last argument)
	// propose parses a command that changes state through the log into
	// the fsm.Command to propose, validated; nil for other commands. It
	// is the only parser of such commands: alone, pipelined, queued in
	// MULTI or proposed by EXEC. The connection loop queues what it
	// returns to the router and answers with resultReply.
	propose func(args [][]byte) (fsm.Command, error)
	// run serves any other command and returns its reply or error, which
	// the connection loop writes (writeReply). Arity, authentication and
	// the transaction rules are checked before (prepare).
	run func(s *Server, c *call) (any, error)
}

// commands is the command table: every command throttledb serves.
var commands = map[string]*command{}

func init() {
	for _, c := range []*command{
		{name: "throttle.acquire", arity: -4, flags: flagWrite | flagTxable, firstKey: 1, lastKey: 1, propose: proposeAcquire, run: cmdAcquirePeek},
		{name: "throttle.peek", arity: -4, flags: flagReadonly, firstKey: 1, lastKey: 1, run: cmdPeek},
		{name: "throttle.reset", arity: -2, flags: flagWrite | flagTxable, firstKey: 1, lastKey: -1, propose: proposeReset},
		{name: "throttle.cancel", arity: -3, flags: flagWrite | flagTxable, firstKey: 1, lastKey: 1, propose: proposeCancel},
		{name: "cl.throttle", arity: -5, flags: flagWrite | flagTxable, firstKey: 1, lastKey: 1, propose: proposeCell},

		{name: "exists", arity: -2, flags: flagReadonly, firstKey: 1, lastKey: -1, run: cmdExists},
		{name: "del", arity: -2, flags: flagWrite | flagTxable, firstKey: 1, lastKey: -1, propose: proposeReset},
		{name: "unlink", arity: -2, flags: flagWrite | flagTxable, firstKey: 1, lastKey: -1, propose: proposeReset},
		{name: "type", arity: 2, flags: flagReadonly, firstKey: 1, lastKey: 1, run: cmdType},
		{name: "pttl", arity: 2, flags: flagReadonly, firstKey: 1, lastKey: 1, run: cmdPTTL},
		{name: "ttl", arity: 2, flags: flagReadonly, firstKey: 1, lastKey: 1, run: cmdTTL},
		{name: "scan", arity: -2, flags: flagReadonly, run: cmdScan},
		{name: "keys", arity: 2, flags: flagReadonly, run: cmdKeys},
		{name: "randomkey", arity: 1, flags: flagReadonly, run: cmdRandomKey},
		{name: "flushall", arity: -1, flags: flagWrite | flagTxable, propose: proposeFlush},
		{name: "flushdb", arity: -1, flags: flagWrite | flagTxable, propose: proposeFlush},

		{name: "multi", arity: 1, flags: flagReadonly | flagTxControl, run: cmdMulti},
		{name: "exec", arity: 1, flags: flagWrite | flagTxControl, run: cmdExec},
		{name: "discard", arity: 1, flags: flagReadonly | flagTxControl, run: cmdDiscard},

		{name: "ping", arity: -1, flags: flagReadonly, run: cmdPing},
		{name: "echo", arity: 2, flags: flagReadonly, run: cmdEcho},
		{name: "quit", arity: -1, flags: flagReadonly | flagNoAuth | flagTxControl, run: cmdQuit},
		{name: "select", arity: 2, flags: flagReadonly, run: cmdSelect},
		{name: "auth", arity: -2, flags: flagReadonly | flagNoAuth, run: cmdAuth},
		{name: "hello", arity: -1, flags: flagReadonly | flagNoAuth, run: cmdHello},
		{name: "client", arity: -2, flags: flagReadonly, run: cmdClient},
		{name: "command", arity: -1, flags: flagReadonly, run: cmdCommand},
		{name: "config", arity: -2, flags: flagReadonly, run: cmdConfig},
		{name: "info", arity: -1, flags: flagReadonly, run: cmdInfo},
		{name: "dbsize", arity: 1, flags: flagReadonly, run: cmdDBSize},
		{name: "time", arity: 1, flags: flagReadonly, run: cmdTime},
		{name: "role", arity: 1, flags: flagReadonly, run: cmdRole},
		{name: "shutdown", arity: -1, flags: flagNoMulti, run: cmdShutdown},

		{name: "raft.join", arity: 4, flags: flagWrite, run: cmdRaftJoin},
		{name: "raft.remove", arity: 2, flags: flagWrite, run: cmdRaftRemove},
		{name: "raft.nodes", arity: 1, flags: flagReadonly, run: cmdRaftNodes},
		{name: "raft.leader", arity: 1, flags: flagReadonly, run: cmdRaftLeader},
		{name: "raft.transfer", arity: -1, flags: flagWrite, run: cmdRaftTransfer},
		{name: "raft.snapshot", arity: 1, flags: flagWrite, run: cmdRaftSnapshot},
		{name: "raft.digest", arity: 1, flags: flagReadonly, run: cmdRaftDigest},
		{name: "raft.backup", arity: 1, flags: flagReadonly, run: cmdRaftBackup},
		{name: "raft.restore", arity: 2, flags: flagWrite, run: cmdRaftRestore},
		{name: "raft.propose", arity: 2, flags: flagWrite, run: cmdRaftPropose},
		{name: "raft.fwd", arity: -2, flags: flagWrite, run: cmdRaftFwd},
	} {
		if (c.flags&flagTxable != 0) != (c.propose != nil) {
			// EXEC proposes what MULTI queued, so exactly the commands
			// that go through the log may be queued.
			panic("server: " + c.name + ": flagTxable and propose must go together")
		}
		if c.propose == nil && c.run == nil {
			// run with propose serves the calls propose says are reads
			// (errRead).
			panic("server: " + c.name + ": a command needs propose or run")
		}
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
