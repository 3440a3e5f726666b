package fsm

// WouldDeny reports whether Apply would certainly deny c if it were applied
// now, at cluster time max(now, clock), and if so the Permit it would
// answer: the leader's way to answer a denial without a log entry. It
// changes nothing.
//
// It answers true only when the applied state alone denies c and
// inFlight(c.Key) reports false: nothing that touches the key is proposed
// and not yet applied. inFlight is called under the read lock, so no entry
// is applied between the state being read and the in-flight view being
// consulted; a caller whose view drops an entry only after it was applied
// (as the proposer's does) therefore never misses one. With a command on
// the key in flight the answer is false: an ACQUIRE in flight may take
// slots, and a CANCEL, RESET or CL.THROTTLE may give them back or change
// the key's type, and the reply the log would give depends on which of
// them commit. A call with a token is never answered here (its grant or
// denial must be remembered in the token window), nor one with invalid
// arguments or on a CL.THROTTLE key (those are errors the log answers).
//
// Why the answer is safe: a denial changes nothing but the replicated
// Denials counter, so leaving it out of the log cannot break spacing; and
// entries proposed after this call are stamped no earlier than now, so
// the log would have decided c on exactly this state at this time.
func (f *FSM) WouldDeny(c Acquire, now int64, inFlight func(key string) bool) (Permit, bool) {
	if c.Token != "" {
		return Permit{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	st := f.keys[c.Key]
	if st == nil || now >= st.deadline() || st.cell {
		// An absent key always grants; a CL.THROTTLE key is WRONGTYPE.
		return Permit{}, false
	}
	d, err := decide(st, c, now)
	if err != nil || d.permit.Granted {
		return Permit{}, false
	}
	if inFlight != nil && inFlight(c.Key) {
		return Permit{}, false
	}
	return d.permit, true
}
