package server

import (
	"sync"

	"github.com/throttledb/throttledb/fsm"
)

// inFlight counts, per key, the commands the proposer has been handed and
// whose entry is not yet applied (or never will be): the leader's view of
// what may still change a key's state, which fsm.WouldDeny consults before
// a denial is answered without the log. A command that touches every key
// (FLUSHALL, or one whose keys this file does not know) counts for all.
//
// A command is counted from before it is queued until after its entry is
// applied or refused, so a view read under the FSM's read lock never
// misses one that is not yet in the state.
type inFlight struct {
	mu   sync.Mutex
	keys map[string]int
	all  int
}

func newInFlight() *inFlight { return &inFlight{keys: make(map[string]int)} }

// add counts cmds in flight; done (with the same cmds) uncounts them.
// A nil *inFlight counts nothing.
func (v *inFlight) add(cmds []fsm.Command)  { v.count(cmds, 1) }
func (v *inFlight) done(cmds []fsm.Command) { v.count(cmds, -1) }

func (v *inFlight) count(cmds []fsm.Command, d int) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range cmds {
		switch c := c.(type) {
		case fsm.Acquire:
			v.key(c.Key, d)
		case fsm.Cancel:
			v.key(c.Key, d)
		case fsm.CellThrottle:
			v.key(c.Key, d)
		case fsm.Reset:
			for _, k := range c.Keys {
				v.key(k, d)
			}
		case fsm.SetNode, fsm.RemoveNode:
			// Membership: no key.
		default:
			// FLUSHALL, and any command added later until it is listed
			// here: assume it touches every key.
			v.all += d
		}
	}
}

func (v *inFlight) key(k string, d int) {
	if n := v.keys[k] + d; n > 0 {
		v.keys[k] = n
	} else {
		delete(v.keys, k)
	}
}

// touches reports whether a command in flight may change key's state.
func (v *inFlight) touches(key string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.all > 0 || v.keys[key] > 0
}
