//go:build !unix

package launcher

import "os/exec"

func setProcAttr(cmd *exec.Cmd) {}
