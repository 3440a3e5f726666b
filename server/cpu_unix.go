//go:build unix

package server

import (
	"fmt"
	"syscall"
)

// cpuTimes returns INFO cpu's fields from getrusage: seconds of system and
// user CPU of the process and of its waited-for children.
func cpuTimes() []string {
	tv := func(t syscall.Timeval) string { return fmt.Sprintf("%d.%06d", t.Sec, t.Usec) }
	var self, children syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children) != nil {
		return nil
	}
	return []string{
		"used_cpu_sys", tv(self.Stime),
		"used_cpu_user", tv(self.Utime),
		"used_cpu_sys_children", tv(children.Stime),
		"used_cpu_user_children", tv(children.Utime),
	}
}
