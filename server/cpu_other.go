//go:build !unix

package server

// cpuTimes returns nothing where getrusage is not available: INFO cpu is
// then an empty section.
func cpuTimes() []string { return nil }
