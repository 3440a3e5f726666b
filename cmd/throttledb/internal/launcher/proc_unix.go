//go:build unix

package launcher

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts each child in its own process group, so that Ctrl-C in a
// terminal reaches only the launcher, which then stops the children in
// order (SIGTERM by pid) rather than all of them at once.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
