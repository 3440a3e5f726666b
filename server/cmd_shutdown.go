package server

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
)

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], Redis 7's grammar, for a
// Raft node. What each option means here:
//
//   - no option, NOSAVE: the stop SIGTERM makes. A leader first hands
//     leadership to the most up-to-date voter, then the node stops
//     accepting, lets the commands in flight finish and closes Raft and its
//     log. There is nothing to save: a grant is in the log on disk before
//     it is answered.
//   - SAVE: first take a Raft snapshot (RAFT.SNAPSHOT), so that the node
//     restarts from it rather than replaying its log. If it fails, the node
//     keeps running and the reply is Redis's "Errors trying to SHUTDOWN".
//   - NOW: skip the waits Redis's NOW skips (Redis waits for lagging
//     replicas): no leadership transfer, and no wait for followers to stop
//     forwarding. The other nodes elect a leader after an election timeout,
//     and until then their clients may see errors (CLUSTERDOWN, or TRYAGAIN
//     for a forwarded command that was in flight). Commands already
//     running on this node still get their replies, and nothing
//     acknowledged is lost: a grant is committed before it is answered.
//   - FORCE: a failed SAVE snapshot does not stop the shutdown (a failed
//     leadership transfer never does).
//   - ABORT: cancel a SHUTDOWN that is still taking its snapshot or
//     transferring leadership; the node keeps running (as a follower, if it
//     handed over leadership). Once the node is draining it cannot be
//     cancelled.
//
// On success the connection is closed without a reply, as Redis does, and
// the Server's StopRequested channel is closed: the program that runs the
// Server (cmd/throttledb) then calls Shutdown, the same stop SIGTERM makes.
// The Server never exits the process itself.

// shutdownOpts are SHUTDOWN's options.
type shutdownOpts struct {
	save, nosave, now, force, abort bool
}

// parseShutdown parses SHUTDOWN's arguments (args includes the name) as
// Redis does: options in any order, repeats allowed, ABORT alone, and SAVE
// and NOSAVE not together; anything else is a syntax error.
func parseShutdown(args [][]byte) (shutdownOpts, error) {
	var o shutdownOpts
	for _, a := range args[1:] {
		switch strings.ToLower(string(a)) {
		case "nosave":
			o.nosave = true
		case "save":
			o.save = true
		case "now":
			o.now = true
		case "force":
			o.force = true
		case "abort":
			o.abort = true
		default:
			return shutdownOpts{}, errSyntax
		}
	}
	if (o.abort && (o.save || o.nosave || o.now || o.force)) || (o.save && o.nosave) {
		return shutdownOpts{}, errSyntax
	}
	return o, nil
}

// Why a SHUTDOWN did not stop the node. Each is answered with Redis's
// "Errors trying to SHUTDOWN. Check logs."; the log says which.
var (
	// errShutdownFailed marks a SHUTDOWN that did not stop the node.
	errShutdownFailed = errors.New("shutdown failed")
	// errShutdownAborted is the cause when SHUTDOWN ABORT cancelled it.
	errShutdownAborted = errors.New("aborted by SHUTDOWN ABORT")
)

// msgShutdownFailed is Redis's reply to a SHUTDOWN that did not stop the
// node (errShutdownFailed).
const msgShutdownFailed = "ERR Errors trying to SHUTDOWN. Check logs."

// errNoShutdown is Redis's reply to SHUTDOWN ABORT with nothing to abort.
var errNoShutdown = redisError("ERR No shutdown in progress.")

// errShutdownForwarded refuses a SHUTDOWN inside RAFT.FWD: followers never
// forward it (it stops the node it is sent to), so one there was crafted.
var errShutdownForwarded = redisError("ERR SHUTDOWN is not forwarded: send it to the node to stop")

// hangUp is the reply of a command answered by closing the connection
// without a reply: a SHUTDOWN that stops the node.
type hangUp struct{}

// shutdownCtl coordinates SHUTDOWN, SHUTDOWN ABORT and Shutdown.
type shutdownCtl struct {
	mu sync.Mutex
	// attempt is the SHUTDOWN preparing the stop (snapshot, transfer),
	// which ABORT may still cancel; nil if none.
	attempt *shutdownAttempt
	// stopping: the node is past cancelling, its stop requested by a
	// SHUTDOWN or under way in Shutdown.
	stopping bool
	// transferred: a SHUTDOWN already did (or, with NOW, skipped) the
	// leadership transfer, so Shutdown does not try it again; now: NOW
	// was given, so Shutdown does not wait for forwarders either.
	transferred, now bool
	// req is closed when a SHUTDOWN asks the node to stop (StopRequested).
	req     chan struct{}
	reqOnce sync.Once
	// beforeCommit, if set (by tests), runs just before a SHUTDOWN
	// commits to stopping: ABORT's last chance.
	beforeCommit func()
}

// shutdownAttempt is one SHUTDOWN's preparation; SHUTDOWNs that arrive
// meanwhile share its outcome, as Redis's do.
type shutdownAttempt struct {
	aborted bool          // under shutdownCtl.mu
	waiters int           // SHUTDOWNs sharing its outcome, under shutdownCtl.mu
	done    chan struct{} // closed once err is set
	err     error         // nil: the node stops
}

// StopRequested returns a channel closed once a client's SHUTDOWN has asked
// the node to stop. The program running the Server should then call
// Shutdown (cmd/throttledb does, and exits 0); the Server does not stop
// itself.
func (s *Server) StopRequested() <-chan struct{} { return s.shut.req }

// cmdShutdown serves SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT].
func cmdShutdown(s *Server, c *call) (any, error) {
	o, err := parseShutdown(c.args)
	switch {
	case err != nil:
		return nil, err
	case c.fwd:
		return nil, errShutdownForwarded
	case o.abort:
		return s.abortShutdown()
	}
	if err := s.requestStop(o); err != nil {
		return nil, err
	}
	c.conn.Close() // once the replies before this one are written
	return hangUp{}, nil
}

// abortShutdown cancels the SHUTDOWN preparing the stop, if any.
func (s *Server) abortShutdown() (any, error) {
	st := &s.shut
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.stopping:
		// SIGTERM's stop, or a SHUTDOWN's past cancelling.
		return nil, ErrShuttingDown
	case st.attempt != nil:
		st.attempt.aborted = true
		return ok, nil
	}
	return nil, errNoShutdown
}

// requestStop prepares the node's stop as o asks and then requests it
// (StopRequested), or returns why not (errShutdownFailed). A SHUTDOWN
// arriving while another prepares waits for that one's outcome; one
// arriving once the node is stopping succeeds at once.
func (s *Server) requestStop(o shutdownOpts) error {
	st := &s.shut
	st.mu.Lock()
	if st.stopping {
		st.mu.Unlock()
		return nil
	}
	if a := st.attempt; a != nil {
		a.waiters++
		st.mu.Unlock()
		<-a.done
		return a.err
	}
	a := &shutdownAttempt{done: make(chan struct{})}
	st.attempt = a
	st.mu.Unlock()
	s.log.Info("SHUTDOWN requested", "save", o.save, "now", o.now, "force", o.force)

	a.err = s.prepareStop(o, a)
	st.mu.Lock()
	st.attempt = nil
	if a.err == nil && a.aborted {
		// Checked under the lock ABORT takes: an ABORT answered OK
		// always keeps the node running.
		a.err = fmt.Errorf("%w: %w", errShutdownFailed, errShutdownAborted)
	}
	if a.err == nil {
		st.stopping, st.transferred, st.now = true, true, o.now
		st.reqOnce.Do(func() { close(st.req) })
	}
	st.mu.Unlock()
	close(a.done)
	if a.err != nil {
		s.log.Warn("SHUTDOWN failed: the node keeps running", "err", a.err)
	}
	return a.err
}

// prepareStop runs SHUTDOWN's steps before the stop: the SAVE snapshot and,
// unless NOW, the leadership transfer (skipped if ABORT came first). It
// returns nil when the node may stop, ABORT permitting (requestStop checks
// that last).
func (s *Server) prepareStop(o shutdownOpts, a *shutdownAttempt) error {
	if o.save {
		if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			if !o.force {
				return fmt.Errorf("%w: %w: %w", errShutdownFailed, errSnapshotFailed, err)
			}
			s.log.Warn("SHUTDOWN SAVE FORCE: snapshot failed, stopping anyway", "err", err)
		}
	}
	if s.aborted(a) {
		return fmt.Errorf("%w: %w", errShutdownFailed, errShutdownAborted)
	}
	if !o.now {
		s.transferLeadership()
	}
	s.shut.mu.Lock()
	hook := s.shut.beforeCommit
	s.shut.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

// aborted reports whether SHUTDOWN ABORT cancelled a.
func (s *Server) aborted(a *shutdownAttempt) bool {
	s.shut.mu.Lock()
	defer s.shut.mu.Unlock()
	return a.aborted
}

// beginStop marks the node as stopping (Shutdown's first step) and reports
// whether a SHUTDOWN already transferred leadership and whether it asked
// for NOW.
func (s *Server) beginStop() (transferred, now bool) {
	st := &s.shut
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopping = true
	return st.transferred, st.now
}

// transferLeadership hands leadership to another voter if this node leads
// and is not alone, so that stopping it causes no election timeout. A
// failure is logged, not returned: the node stops anyway, and the others
// elect a leader as after a crash.
func (s *Server) transferLeadership() {
	if s.raft.State() == raft.Leader && s.voters() > 1 {
		s.log.Info("transferring leadership before shutdown")
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("leadership transfer failed", "err", err)
		}
	}
}
