//go:build !unix

package fsm

import "sync/atomic"

// offHeapBytes stays 0: allocOff's memory is on the Go heap here.
var offHeapBytes atomic.Int64

// allocOff returns n zeroed bytes. Without mmap they come from the Go heap
// (pointer-free, so never scanned), and the collector frees them.
func allocOff(n int) []byte { return make([]byte, n) }

// freeOff drops b; the collector reclaims it.
func freeOff(b []byte) {}
