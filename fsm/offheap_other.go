//go:build !unix

package fsm

// offHeapMapped reports whether allocOff maps memory outside the Go heap.
const offHeapMapped = false

// allocOff returns n zeroed bytes. Without mmap they come from the Go heap
// (pointer-free, so never scanned), and the collector frees them.
func allocOff(n int) []byte { return make([]byte, n) }

// freeOff drops b; the collector reclaims it.
func freeOff(b []byte) {}
