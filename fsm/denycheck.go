package fsm

import "hash/maphash"

// WouldDeny reports whether Apply would certainly deny c if it were applied
// now, at cluster time max(now, clock), and if so the Permit it would
// answer: the leader's way to answer a denial without a log entry. It
// changes nothing.
//
// It answers true only when the applied state alone denies c and
// unsafe(c.Key, c.Interval) reports false. unsafe reports whether a
// command proposed and not yet applied could do anything to the key but
// take more of its slots with c's interval: a CANCEL, RESET, FLUSHALL or
// CL.THROTTLE (which give slots back or change the key's type), or an
// ACQUIRE of the key with another interval (whose grant could make the key
// expire sooner). An ACQUIRE of the key with c's interval can only move
// its last slot later, keeping its interval, so c stays denied whichever
// of them commit, in whatever order. unsafe is called under the read
// lock, so no entry is applied between the state being read and the
// in-flight view being consulted; a view that drops an entry only after it
// is applied (as the proposer's does) therefore never misses one. A call
// with a token is never answered here (its outcome must be remembered in
// the token window), nor one with invalid arguments or on a CL.THROTTLE
// key (those are errors the log answers). A call with a forwarding
// session number (Session) is answered only when that number is not
// remembered: one that is was applied, and the log answers it as it did
// then; one that is not was never applied, so deciding it now (again, if
// an earlier attempt was answered here and the answer lost) takes nothing.
//
// Why the answer is safe: a denial changes nothing but the replicated
// Denials counter, so leaving it out of the log cannot break spacing. The
// Permit is the log's on the applied state at cluster time now: the
// answer of the log had the call been ordered after the applied entries
// and before those in flight, whose callers have not been answered yet.
func (f *FSM) WouldDeny(c Acquire, now int64, unsafe func(key string, interval int64) bool) (Permit, bool) {
	if c.Token != "" {
		return Permit{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if sequenced(c.Token, c.Session) && f.tokens.seqs.has(seqID{c.Session, c.Seq}) {
		return Permit{}, false
	}
	now = max(now, f.now)
	h := maphash.String(tableSeed, c.Key)
	if bound, ok := denyBound(c, now); ok && f.ks.horizon.within(h, bound) {
		return Permit{}, false // no key of h's slot is that full (horizon)
	}
	_, st := f.liveAtHashed(c.Key, h, now)
	if st == nil || st.cell() {
		// An absent key always grants; a CL.THROTTLE key is WRONGTYPE.
		return Permit{}, false
	}
	d, err := decide(st, c, now)
	if err != nil || d.permit.Granted {
		return Permit{}, false
	}
	if unsafe != nil && unsafe(c.Key, c.Interval) {
		return Permit{}, false
	}
	return d.permit, true
}
