package server

import (
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

// cmdExec serves EXEC: run the open transaction's commands together and
// reply with an array of their replies, or EXECABORT if a command was
// refused while queueing.
//
// Why one entry: a transaction's commands must not interleave with other
// clients' commands. Proposed together, as one proposal, they are applied
// in one log entry, in order, at one cluster time, so no other grant can
// fall between them; a follower forwards the proposal whole. A command
// with bad arguments gets its error in its place in the reply and changes
// nothing; the others still run (Redis's rule for errors at EXEC).
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
	errs := make([]error, len(tx.queued))
	parsed := make([]fsm.Command, len(tx.queued)) // nil where errs has the reply
	var props []fsm.Command
	for i, args := range tx.queued {
		// queueTx queued only commands with propose.
		parsed[i], errs[i] = commands[strings.ToLower(string(args[0]))].propose(args)
		if errs[i] == nil {
			props = append(props, parsed[i])
		}
	}
	var results []fsm.Result
	if len(props) > 0 {
		var err error
		results, err = s.decide(c, props...)
		switch {
		case errors.Is(err, ErrOOM):
			// Redis discards the whole transaction.
			c.conn.WriteError(msgExecOOM)
			return
		case err != nil:
			c.conn.WriteError(errorText(err))
			return
		}
	}
	replies := make([]any, len(tx.queued))
	for i := range tx.queued {
		if errs[i] != nil {
			replies[i] = errs[i]
			continue
		}
		replies[i] = resultReply(parsed[i], results[0])
		results = results[1:]
	}
	c.writeValue(replies)
}
