package fsm

// horizonBits sets the number of slots of a store's horizon (16,384, 128
// KiB): enough that ten thousand busy keys rarely share one.
const horizonBits = 14

// horizon is a lossy summary of the keys' last slots, for WouldDeny. Slot
// i holds at least the last slot of every THROTTLE.ACQUIRE key whose table
// hash falls in it (h & horizonMask): store.add and store.update, the only
// writers of a record's last slot, raise it; nothing lowers it, so a key
// that gives slots back, is removed or expires leaves it as high as it was.
//
// Why: on the leader, every ACQUIRE that may be decided without the log
// (server's denier) asks WouldDeny, and on random keys nearly all of them
// are granted. Finding that out in the store meant a hash table probe and
// a record read, two cache misses, for each: about a tenth of the leader's
// CPU at redis-benchmark -P 16. A call is denied only if its key's last
// slot lies beyond a bound of the call's own (denyBound); when even the
// slot's summary does not, the call is granted and the store need not be
// read. The summary never says a key is less full than it is, so it can
// only send a call to the log that could have been denied without it,
// never deny one the log would grant. It is derived from the keys like the
// rest of the store, not replicated, and starts again with a new store
// (FlushAll, Restore, which re-adds every key).
type horizon [1 << horizonBits]int64

const horizonMask = 1<<horizonBits - 1

// note raises slot h's summary to last.
func (z *horizon) note(h uint64, last int64) {
	if p := &z[h&horizonMask]; last > *p {
		*p = last
	}
}

// within reports whether every key whose table hash is h has its last slot
// at or before bound.
func (z *horizon) within(h uint64, bound int64) bool {
	return z[h&horizonMask] <= bound
}

// denyBound returns the last slot at or before which c's key cannot make
// Apply deny c at cluster time now, and false if the bound does not fit in
// int64 (then nothing is ruled out). From decide: a key whose newest slot
// is last denies c only if its slots after a grant would number more than
// c.Max, that is only if last + n·iv - now > Max·iv for n = c.slots() and
// iv = c.Interval, that is only if last > now + (Max - n)·iv.
func denyBound(c Acquire, now int64) (int64, bool) {
	if c.Max < 0 || c.Cost < 0 || c.Interval < 1 {
		return 0, false // invalid: the log answers its error
	}
	var m checked
	b := m.add(now, m.mul(c.Max-c.slots(), c.Interval))
	return b, !m.overflow
}
