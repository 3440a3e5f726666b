package server

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/throttledb/throttledb/fsm"
)

// maxTxCommands caps the commands one MULTI may queue, so that a client
// cannot grow a session without bound (or a log entry past reason).
const maxTxCommands = 4096

// txState is a session's open transaction: the commands MULTI has queued,
// and whether one was refused (EXEC then discards them all, as Redis does).
type txState struct {
	queued [][][]byte
	dirty  bool
}

// abortTx marks the session's open transaction, if any, as failed: a
// command was refused while queueing, so EXEC will discard it.
func (sess *session) abortTx() {
	if sess.tx != nil {
		sess.tx.dirty = true
	}
}

// queueTx queues c in the session's open transaction (dispatch calls it
// for every command but MULTI, EXEC, DISCARD and QUIT while one is open).
// Only THROTTLE.ACQUIRE and THROTTLE.RESET may be queued: they are the
// commands that go through the log, and EXEC applies them together in one
// entry. Their arguments are checked at EXEC, as Redis checks values when a
// transaction runs.
func queueTx(c *call, cmd *command) {
	tx := c.sess.tx
	switch {
	case cmd.flags&flagTxable == 0:
		tx.dirty = true
		c.conn.WriteError("ERR command '" + cmd.name + "' is not allowed in a transaction: only THROTTLE.ACQUIRE and THROTTLE.RESET can be queued")
	case len(tx.queued) >= maxTxCommands:
		tx.dirty = true
		c.conn.WriteError("ERR too many commands in a transaction (at most " + strconv.Itoa(maxTxCommands) + ")")
	default:
		// Arguments from the connection's reader are never overwritten
		// (resp.CommandReader), so they can be kept as they are.
		tx.queued = append(tx.queued, c.args)
		c.conn.WriteString("QUEUED")
	}
}

// cmdMulti serves MULTI: open a transaction on this connection.
func cmdMulti(s *Server, c *call) {
	if !c.hasArity("multi", 1) {
		return
	}
	if c.sess.tx != nil {
		c.conn.WriteError("ERR MULTI calls can not be nested")
		return
	}
	c.sess.tx = &txState{}
	c.conn.WriteString("OK")
}

// cmdDiscard serves DISCARD: drop the open transaction.
func cmdDiscard(s *Server, c *call) {
	if !c.hasArity("discard", 1) {
		return
	}
	if c.sess.tx == nil {
		c.conn.WriteError("ERR DISCARD without MULTI")
		return
	}
	c.sess.tx = nil
	c.conn.WriteString("OK")
}

// cmdExec serves EXEC: run the open transaction's commands together (see
// cmdRaftExec) and reply with an array of their replies, or
// EXECABORT if a command was refused while queueing.
func cmdExec(s *Server, c *call) {
	if !c.hasArity("exec", 1) {
		return
	}
	tx := c.sess.tx
	if tx == nil {
		c.conn.WriteError("ERR EXEC without MULTI")
		return
	}
	c.sess.tx = nil
	if tx.dirty {
		c.conn.WriteError("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	if len(tx.queued) == 0 {
		c.conn.WriteArray(0)
		return
	}
	execTx(s, &call{conn: c.conn, sess: c.sess, args: encodeTx(tx.queued)})
}

// encodeTx packs a transaction's commands into one RAFT.EXEC command, so
// that a follower forwards the whole transaction to the leader at once:
//
//	RAFT.EXEC argc1 arg... argc2 arg... ...
func encodeTx(cmds [][][]byte) [][]byte {
	args := [][]byte{[]byte("RAFT.EXEC")}
	for _, cmd := range cmds {
		args = append(args, []byte(strconv.Itoa(len(cmd))))
		args = append(args, cmd...)
	}
	return args
}

// decodeTx unpacks RAFT.EXEC's arguments (see encodeTx).
func decodeTx(args [][]byte) ([][][]byte, bool) {
	var cmds [][][]byte
	for len(args) > 0 {
		n, err := strconv.Atoi(string(args[0]))
		if err != nil || n < 1 || n > len(args)-1 {
			return nil, false
		}
		cmds = append(cmds, args[1:1+n])
		args = args[1+n:]
	}
	return cmds, len(cmds) > 0 && len(cmds) <= maxTxCommands
}

// cmdRaftExec serves RAFT.EXEC argc arg... [argc arg...]: the commands of a
// transaction (THROTTLE.ACQUIRE and THROTTLE.RESET), applied together.
// EXEC sends it; a follower forwards it to the leader whole.
//
// Why one entry: a transaction's commands must not interleave with other
// clients' commands. Proposed together they are applied in one log entry,
// in order, at one cluster time, so no other grant can fall between them.
// A command with bad arguments gets its error in its place in the reply
// and changes nothing; the others still run (Redis's rule for errors at
// EXEC).
func cmdRaftExec(s *Server, c *call) {
	if !c.hasArity("raft.exec", -3) || !s.nodeOnly(c, "raft.exec") {
		return
	}
	execTx(s, c)
}

// execTx runs the transaction RAFT.EXEC carries (see cmdRaftExec); EXEC
// calls it directly, as a client's own command needs no node session.
func execTx(s *Server, c *call) {
	if !c.hasArity("raft.exec", -3) {
		return
	}
	cmds, ok := decodeTx(c.args[1:])
	if !ok {
		c.conn.WriteError(msgSyntax)
		return
	}
	errs := make([]string, len(cmds))
	parsed := make([]fsm.Command, len(cmds)) // nil where errs has the reply
	var props []fsm.Command
	for i, args := range cmds {
		sub := &call{conn: c.conn, sess: c.sess, args: args}
		switch strings.ToLower(string(args[0])) {
		case "throttle.acquire":
			parsed[i], errs[i] = parseAcquire(sub)
		case "throttle.reset":
			parsed[i], errs[i] = parseReset(sub)
		default:
			errs[i] = "ERR command '" + strings.ToLower(string(args[0])) + "' is not allowed in a transaction"
		}
		if errs[i] == "" {
			props = append(props, parsed[i])
		}
	}
	s.onLeader(c, func(ctx context.Context) error {
		var results []fsm.Result
		if len(props) > 0 {
			var err error
			if results, err = s.prop.proposeAll(ctx, props...); errors.Is(err, ErrOOM) {
				// Redis discards the whole transaction.
				c.conn.WriteError(msgExecOOM)
				return nil
			} else if err != nil {
				return err
			}
		}
		c.conn.WriteArray(len(cmds))
		for i := range cmds {
			if errs[i] != "" {
				c.conn.WriteError(errs[i])
				continue
			}
			writeResult(c, parsed[i], results[0])
			results = results[1:]
		}
		return nil
	})
}
