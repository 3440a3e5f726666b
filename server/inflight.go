package server

import (
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
type inFlight struct {
	mu   sync.Mutex
	keys map[string]keyFlight
	all  int
}

// keyFlight is what is in flight on one key: acq ACQUIREs, diffIv of them
// with another interval than iv (the interval of the ACQUIRE that was
// counted when none was), and other commands.
type keyFlight struct {
	acq, diffIv, other int
	iv                 int64
}

func newInFlight() *inFlight { return &inFlight{keys: make(map[string]keyFlight)} }

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
			kf := v.keys[k]
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
			if kf.acq == 0 && kf.other == 0 {
				delete(v.keys, k)
			} else {
				v.keys[k] = kf
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
	kf := v.keys[key]
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
