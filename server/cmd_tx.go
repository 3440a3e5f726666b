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

// queueTx queues c in the session's open transaction (prepare calls it
// for every command but MULTI, EXEC, DISCARD and QUIT while one is open).
// Only the commands that go through the log (THROTTLE.ACQUIRE and
// THROTTLE.RESET) may be queued: EXEC applies them together in one entry.
// Their arguments are checked at EXEC, as Redis checks values when a
// transaction runs. A refused command marks the transaction failed.
func queueTx(c *call, cmd *command) (any, error) {
	tx := c.sess.tx
	switch {
	case cmd.flags&flagNoMulti != 0:
		tx.dirty = true
		return nil, redisError("ERR Command not allowed inside a transaction")
	case cmd.flags&flagTxable == 0:
		tx.dirty = true
		return nil, redisError("ERR command '" + cmd.name + "' is not allowed in a transaction: only THROTTLE.ACQUIRE and THROTTLE.RESET can be queued")
	case len(tx.queued) >= maxTxCommands:
		tx.dirty = true
		return nil, redisError("ERR too many commands in a transaction (at most " + strconv.Itoa(maxTxCommands) + ")")
	}
	// Arguments from the connection's reader are never overwritten
	// (resp.CommandReader), so they can be kept as they are.
	tx.queued = append(tx.queued, c.args)
	return simpleString("QUEUED"), nil
}

// cmdMulti serves MULTI: open a transaction on this connection.
func cmdMulti(s *Server, c *call) (any, error) {
	if c.sess.tx != nil {
		return nil, redisError("ERR MULTI calls can not be nested")
	}
	c.sess.tx = &txState{}
	return ok, nil
}

// cmdDiscard serves DISCARD: drop the open transaction.
func cmdDiscard(s *Server, c *call) (any, error) {
	if c.sess.tx == nil {
		return nil, redisError("ERR DISCARD without MULTI")
	}
	c.sess.tx = nil
	return ok, nil
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
func cmdExec(s *Server, c *call) (any, error) {
	tx := c.sess.tx
	if tx == nil {
		return nil, redisError("ERR EXEC without MULTI")
	}
	c.sess.tx = nil
	if tx.dirty {
		return nil, redisError("EXECABORT Transaction discarded because of previous errors.")
	}
	errs := make([]error, len(tx.queued))
	parsed := make([]fsm.Command, len(tx.queued)) // nil where errs has the reply
	var props []fsm.Command
	for i, args := range tx.queued {
		// queueTx queued only commands with propose.
		parsed[i], errs[i] = commands[strings.ToLower(string(args[0]))].propose(args)
		if errors.Is(errs[i], errRead) {
			errs[i] = errPeekInTx
		}
		if errs[i] == nil {
			props = append(props, parsed[i])
		}
	}
	var results []fsm.Result
	if len(props) > 0 {
		var err error
		results, err = s.router.decide(context.Background(), c.fwd, props...)
		if errors.Is(err, ErrOOM) {
			// Redis discards the whole transaction.
			return nil, errExecOOM
		}
		if err != nil {
			return nil, err
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
	return replies, nil
}
