package server

import (
	"sync/atomic"

	"github.com/throttledb/throttledb/fsm"
)

// denier answers, on the ready leader, an ACQUIRE that the log would
// certainly deny, without a log entry (fsm.WouldDeny): on a hot key nearly
// every call is denied, and a denial changes nothing the log must keep.
//
// What such a denial means, as README.md says: its wait_ms and pending are
// exactly those the log would give at the leader's cluster time when it is
// decided (max of the last applied entry's time and the leader's clock),
// since nothing on the key is in flight and any later entry is stamped no
// earlier. It is not counted in the replicated Denials stat (no entry
// applies it), but in count, which INFO (throttle_denials_fast) and the
// metrics report per node. A call with an ID token, a transaction's
// command, a command forwarded by a follower's forwarder (RAFT.PROPOSE)
// and anything but an ACQUIRE go through the log as before.
//
// Leadership: the router asks only while this node is the ready leader
// (Raft's state is Leader and the barrier of its term applied). A leader
// cut off from a quorum keeps that state until Raft's lease check steps it
// down (LeaderLeaseTimeout, checked about once per lease period), so a
// deposed leader may deny for up to about two lease periods from a state a
// new leader has since moved past. That is allowed: a denial promises
// nothing and takes nothing; every grant still needs a quorum.
type denier struct {
	fsm    *fsm.FSM
	flight *inFlight
	clock  func() int64
	count  atomic.Int64
}

// deny reports whether cmd is an ACQUIRE the log would certainly deny now,
// and if so its result.
func (d *denier) deny(cmd fsm.Command) (fsm.Result, bool) {
	a, ok := cmd.(fsm.Acquire)
	if !ok {
		return fsm.Result{}, false
	}
	p, ok := d.fsm.WouldDeny(a, d.clock(), d.flight.touches)
	if !ok {
		return fsm.Result{}, false
	}
	d.count.Add(1)
	return fsm.Result{Permit: p}, true
}
