package server

import (
	"hash/maphash"
	"sync"

	"github.com/throttledb/throttledb/fsm"
)

// inFlight counts, per key, the commands the proposer has been handed and
// whose entry is not yet applied (or never will be): the leader's view of
// what may still change a key's state, which fsm.WouldDeny consults before
// a denial is answered without the log (see unsafe). A command that
// touches every key (FLUSHALL, or one whose keys forKeys does not know)
// counts for all.
//
// A command is counted from before it is queued until after its entry is
// applied or refused, so a view read under the FSM's read lock never
// misses one that is not yet in the state.
//
// Keys are counted in a fixed table of flightSlots slots chosen by a hash
// of the key, not in a map: a map of strings cost two inserts and a delete
// per command, 8% of the leader's CPU at -P 16. Keys that share a slot
// only add up, and every test in unsafe is true for a sum when it is true
// for any one of its parts, so sharing can only send a denial through the
// log that the key alone would have answered at once, never the reverse.
type inFlight struct {
	mu    sync.Mutex
	seed  maphash.Seed
	slots []keyFlight // flightSlots of them
	all   int
}

// flightSlots is the size of inFlight's table: much larger than the
// commands a leader has in flight at once (about 1,000 at -P 16 with 50
// clients), so that two keys rarely share a slot. 512 KiB.
const flightSlots = 1 << 14

// keyFlight is what is in flight on one slot's keys: acq ACQUIREs, diffIv
// of them with another interval than iv (the interval of the ACQUIRE that
// was counted when none was), and other commands.
type keyFlight struct {
	acq, diffIv, other int
	iv                 int64
}

func newInFlight() *inFlight { return newInFlightSlots(flightSlots) }

// newInFlightSlots makes an inFlight of n slots, a power of two.
func newInFlightSlots(n int) *inFlight {
	return &inFlight{seed: maphash.MakeSeed(), slots: make([]keyFlight, n)}
}

func (v *inFlight) slot(key string) *keyFlight {
	return &v.slots[maphash.String(v.seed, key)&uint64(len(v.slots)-1)]
}

// add counts cmds in flight; done (with the same cmds) uncounts them. A
// nil *inFlight counts nothing.
func (v *inFlight) add(cmds []fsm.Command)  { v.count(cmds, 1) }
func (v *inFlight) done(cmds []fsm.Command) { v.count(cmds, -1) }

func (v *inFlight) count(cmds []fsm.Command, d int) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range cmds {
		a, isAcq := c.(fsm.Acquire)
		all := forKeys(c, func(k string) {
			kf := v.slot(k)
			switch {
			case !isAcq:
				kf.other += d
			case kf.acq == 0:
				kf.acq, kf.iv = d, a.Interval
			default:
				kf.acq += d
				if a.Interval != kf.iv {
					kf.diffIv += d
				}
			}
		})
		if all {
			v.all += d
		}
	}
}

// unsafe reports whether a command in flight could do anything to key but
// take more of its slots with this interval (see fsm.WouldDeny).
func (v *inFlight) unsafe(key string, interval int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	kf := v.slot(key)
	return v.all > 0 || kf.other > 0 || kf.diffIv > 0 || (kf.acq > 0 && kf.iv != interval)
}

// forKeys calls fn with each key c names and reports whether c touches
// every key instead: FLUSHALL, and any command added later until it is
// listed here.
func forKeys(c fsm.Command, fn func(key string)) (all bool) {
	switch c := c.(type) {
	case fsm.Acquire:
		fn(c.Key)
	case fsm.Cancel:
		fn(c.Key)
	case fsm.CellThrottle:
		fn(c.Key)
	case fsm.Reset:
		for _, k := range c.Keys {
			fn(k)
		}
	case fsm.SetNode, fsm.RemoveNode:
		// Membership: no key.
	default:
		return true
	}
	return false
}
