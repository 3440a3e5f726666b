package server

import (
	"sync/atomic"

	"github.com/throttledb/throttledb/fsm"
)

// denier answers, on the ready leader, an ACQUIRE that the log would
// certainly deny, without a log entry (fsm.WouldDeny): on a hot key nearly
// every call is denied, and a denial changes nothing the log must keep.
//
// What such a denial means, as README.md says ("Denials without the
// log"): its wait_ms and pending are those the log would give on the
// applied state at the leader's cluster time when it is decided (the max
// of the last applied entry's time and the leader's clock). ACQUIREs of
// the key still in flight (their callers not answered yet) are ordered
// after it: if they are granted, the key stays full longer than wait_ms
// said, as it would for a denial through the log followed by them. It is
// not counted in the replicated Denials stat (no entry applies it), but in
// count, which INFO (throttle_denials_fast) and the metrics report per
// node. A call with an ID token, a transaction's command, and anything but
// an ACQUIRE go through the log. So does a command a follower forwards,
// unless the follower marked it as one that may be decided early
// (denyForwarded): it is then answered as this node's own clients' are.
//
// Leadership: it answers only while this node is the ready leader (Raft's
// state is Leader and the barrier of its term applied). A leader cut off
// from a quorum keeps that state until Raft's lease check steps it down
// (LeaderLeaseTimeout, checked about once per lease period), so a deposed
// leader may deny for up to about two lease periods from a state a new
// leader has since moved past. That is allowed: a denial promises nothing
// and takes nothing; every grant still needs a quorum.
type denier struct {
	fsm    *fsm.FSM
	flight *inFlight
	clock  func() int64
	ready  func() bool
	count  atomic.Int64
}

// deny reports whether cmd is an ACQUIRE the log would certainly deny now,
// and if so its result. mine are the connection's earlier commands not
// answered yet: a call is decided after them, so with one of them on the
// key it goes through the log (see decidable). A nil *denier denies
// nothing.
func (d *denier) deny(cmd fsm.Command, mine []pendingReply) (fsm.Result, bool) {
	a, ok := cmd.(fsm.Acquire)
	if d == nil || !ok || a.Session != 0 || !d.ready() || !decidable(cmd, mine) {
		return fsm.Result{}, false
	}
	return d.decide(a, d.clock())
}

// denyForwarded is deny for a proposal a follower forwarded marked as one
// that may be decided early: the follower has checked what only it can
// (decidable on its client's connection; not in a transaction; not a
// resend), so this node checks the rest as for its own clients. The
// command carries the follower's forwarding session number, which
// WouldDeny checks is not one already applied. A proposal of several
// commands is a transaction's and goes through the log whatever its mark.
// now is the leader's clock (d.clock), read by the caller once per
// request: the request's proposals are decided within microseconds of
// each other, all after it arrived, and a clock read costs as much as the
// rest of the decision on some VMs.
func (d *denier) denyForwarded(cmds []fsm.Command, now int64) (fsm.Result, bool) {
	if d == nil || len(cmds) != 1 {
		return fsm.Result{}, false
	}
	a, ok := cmds[0].(fsm.Acquire)
	if !ok || a.Token != "" || !d.ready() {
		return fsm.Result{}, false
	}
	return d.decide(a, now)
}

// decide asks the state machine, with the in-flight view, on the ready
// leader, at the leader's clock now.
func (d *denier) decide(a fsm.Acquire, now int64) (fsm.Result, bool) {
	p, ok := d.fsm.WouldDeny(a, now, d.flight.unsafe)
	if !ok {
		return fsm.Result{}, false
	}
	d.count.Add(1)
	return fsm.Result{Permit: p}, true
}

// decidable reports whether cmd, a client's command, is one the leader may
// decide without the log as far as its connection can tell: an ACQUIRE
// with no token of the client's own and no identity yet, with none of
// mine, the connection's earlier commands not answered yet, queued on its
// key (the call must be decided after them). Only the connection knows
// this: a leader sees a follower's forwarded commands in batches from all
// of its connections. A follower marks the forwarded commands for which it
// is true (router.enqueue, early), and the leader's denier answers those
// as its own clients' (denyForwarded).
func decidable(cmd fsm.Command, mine []pendingReply) bool {
	a, ok := cmd.(fsm.Acquire)
	if !ok || a.Token != "" || a.Session != 0 {
		return false
	}
	for i := range mine {
		if mine[i].t != nil && touchesKey(mine[i].cmd, a.Key) {
			return false
		}
	}
	return true
}

// touchesKey reports whether c may change key.
func touchesKey(c fsm.Command, key string) bool {
	found := false
	all := forKeys(c, func(k string) { found = found || k == key })
	return all || found
}
