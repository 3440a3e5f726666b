//go:build race

package fsm

// raceEnabled reports whether the race detector is on: it slows
// TestKeyCostMatchesHeap twentyfold without changing what it measures.
const raceEnabled = true
