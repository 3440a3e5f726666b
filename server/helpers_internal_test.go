package server

import (
	"testing"
	"time"
)

// waitUntil polls cond until it holds or a generous deadline passes: the
// internal tests' wait-for (package server_test has waitFor).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
