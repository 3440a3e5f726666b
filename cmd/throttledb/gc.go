package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The collector's policy for a node, unless the GOGC environment variable
// sets one (which then wins, as the runtime read it at start).
//
// The keys live outside the Go heap (fsm/store.go), so the heap holds only
// some megabytes of buffers, results and log entries, with a million keys
// as with a hundred, and with Go's default of 100 the headroom the
// collector leaves above them (as much again, which the runtime keeps
// resident) is a good part of a full node's memory: nodeGCPercent halves
// it (docs/performance.md, "At scale: a million keys"). But on a node with few keys,
// 50 means a cycle every couple of megabytes allocated: 15-20 a second
// on a node serving 50-70k requests a second, each with its fixed
// costs (the phase changes, scanning every goroutine's stack, the
// background worker taking a core's turn). Since the live heap is about
// the same either way, it cannot tell the two apart; the state's size
// can. So a node may leave more headroom than half its live heap, up to
// gcHeadroom in all, less the memory its state takes (the state machine's
// own count, INFO throttle_state_memory): a node with few keys collects a
// few times less often, and from about 100,000 keys on the policy is
// nodeGCPercent, as before, so the memory figures at a million keys do not
// change. The percent is set again after every cycle (gcTuner), up to
// gcMaxPercent.
const (
	nodeGCPercent = 50
	gcHeadroom    = 8 << 20
	gcMaxPercent  = 400
)

// gcPercentFor returns the GC percent for a live heap of live bytes and a
// state of state bytes: the one that leaves headroom of the larger of
// live*nodeGCPercent/100 and gcHeadroom-state, within [nodeGCPercent,
// gcMaxPercent].
func gcPercentFor(live uint64, state int64) int {
	allow := int64(gcHeadroom) - max(state, 0)
	if allow <= 0 {
		return nodeGCPercent
	}
	if live == 0 {
		return gcMaxPercent
	}
	p := uint64(allow) * 100 / live
	return int(min(max(p, nodeGCPercent), gcMaxPercent))
}

// setGCPercent applies the node's policy unless GOGC is set, and returns
// its tuner (nil when GOGC is set). Until the tuner is told the state's
// size (watchState) the percent is nodeGCPercent.
func setGCPercent() *gcTuner {
	if os.Getenv("GOGC") != "" {
		return nil
	}
	t := &gcTuner{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
	t.arm()
	return t
}

// gcTuner sets the GC percent from the live heap and the state's size
// after every cycle: a finalizer on an object only it references runs
// after each cycle that finds the object unreachable, that is after the
// next one, and sets itself again on a new object.
type gcTuner struct {
	sample  []metrics.Sample
	state   atomic.Pointer[func() int64]
	percent atomic.Int64 // the percent last set
	stopped atomic.Bool
}

// watchState tells t how to read the state's size (bytes). A nil *gcTuner
// (GOGC set) ignores it.
func (t *gcTuner) watchState(state func() int64) {
	if t != nil {
		t.state.Store(&state)
	}
}

// stop ends the tuning, leaving the percent last set (tests).
func (t *gcTuner) stop() { t.stopped.Store(true) }

// gcSentinel is the object whose finalizer runs after each cycle. It holds
// a pointer so that it is not a tiny allocation, which shares its block
// with others and may not be finalized when it alone is unreachable.
type gcSentinel struct {
	_ *byte
	_ [8]byte
}

// arm sets the finalizer on a new sentinel.
func (t *gcTuner) arm() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	})
}

// tune sets the percent for the live heap the last cycle found (zero
// before the first cycle) and the state's size now, when it differs from
// the one set.
func (t *gcTuner) tune() {
	state := int64(gcHeadroom) // unknown yet: no allowance
	if f := t.state.Load(); f != nil {
		state = (*f)()
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := gcPercentFor(live, state)
	if int64(p) != t.percent.Load() {
		t.percent.Store(int64(p))
		debug.SetGCPercent(p)
	}
}
