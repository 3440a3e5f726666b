package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		live  uint64
		state int64
		want  int
	}{
		{"before the first cycle", 0, 0, gcMaxPercent},
		{"tiny heap, no state", 1 << 20, 0, gcMaxPercent}, // 8 MiB would be 800%
		{"small heap, no state", 4 << 20, 0, 200},
		{"small heap, small state", 4 << 20, 2 << 20, 150},
		{"state as large as the allowance", 4 << 20, gcHeadroom, nodeGCPercent},
		{"a million keys", 5 << 20, 76 << 20, nodeGCPercent},
		{"large heap, no state", 1 << 30, 0, nodeGCPercent}, // never below
		{"negative state", 4 << 20, -1, 200},
	} {
		if got := gcPercentFor(tc.live, tc.state); got != tc.want {
			t.Errorf("%s: gcPercentFor(%d, %d) = %d, want %d", tc.name, tc.live, tc.state, got, tc.want)
		}
	}
}

// gcPercent reads the GC percent without setting it.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitPercent runs collections until the GC percent the tuner has set
// satisfies ok, or fails.
func waitPercent(t *testing.T, what string, ok func(percent int) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(gcPercent()) {
		if time.Now().After(deadline) {
			t.Fatalf("GC percent %d, want %s", gcPercent(), what)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer runs after the cycle
	}
}

// TestSetGCPercent checks that a node's GC percent follows its live heap
// and its state's size (gcPercentFor) after each cycle, unless the GOGC
// environment variable is set, which then wins.
func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)

	t.Run("GOGC=100", func(t *testing.T) {
		t.Setenv("GOGC", "100")
		debug.SetGCPercent(100)
		if tu := setGCPercent(); tu != nil {
			tu.stop()
			t.Fatal("a tuner despite GOGC")
		}
		runtime.GC()
		if got := gcPercent(); got != 100 {
			t.Fatalf("GC percent %d, want 100: GOGC wins", got)
		}
	})

	t.Run("GOGC unset", func(t *testing.T) {
		t.Setenv("GOGC", "")
		debug.SetGCPercent(100)
		tu := setGCPercent()
		defer tu.stop()
		is50 := func(p int) bool { return p == nodeGCPercent }
		more := func(p int) bool { return p > nodeGCPercent }
		waitPercent(t, "50 while the state's size is unknown", is50)
		var state atomic.Int64
		tu.watchState(state.Load)
		waitPercent(t, "above 50 on a test binary's small heap with no state", more)
		big := make([]byte, 64<<20)
		waitPercent(t, "50 with a large live heap", is50)
		runtime.KeepAlive(big)
		big = nil
		waitPercent(t, "above 50 once the heap is small again", more)
		state.Store(100 << 20)
		waitPercent(t, "50 with a large state", is50)
	})
}
