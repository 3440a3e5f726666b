package main

import (
	"runtime/debug"
	"testing"
)

// TestSetGCPercent checks that a node runs the collector at nodeGCPercent
// unless the GOGC environment variable is set, which then wins.
func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tc := range []struct {
		gogc string
		want int
	}{
		{"", nodeGCPercent},
		{"100", 100}, // as the runtime read it at start; left alone
	} {
		t.Run("GOGC="+tc.gogc, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			debug.SetGCPercent(100)
			setGCPercent()
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Fatalf("GC percent %d, want %d", got, tc.want)
			}
		})
	}
}
