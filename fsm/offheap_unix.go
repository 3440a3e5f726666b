//go:build unix

package fsm

import (
	"strconv"
	"syscall"
)

// offHeapMapped reports whether allocOff maps memory outside the Go heap.
const offHeapMapped = true

// allocOff returns n zeroed bytes outside the Go heap: an anonymous
// private mapping, which the collector neither scans nor counts towards
// its next goal, so a large store costs its size and no more.
func allocOff(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		// Like a failed Go allocation: the process cannot go on.
		panic("fsm: mmap of " + strconv.Itoa(n) + " bytes: " + err.Error())
	}
	return b
}

// freeOff returns memory from allocOff to the system. Nothing may use b
// afterwards.
func freeOff(b []byte) {
	if len(b) == 0 {
		return
	}
	if err := syscall.Munmap(b); err != nil {
		panic("fsm: munmap: " + err.Error())
	}
}
