package testcluster

import (
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestPauseHelperProcess is the process TestPause stops: this test binary
// (a Go program, so several threads) waiting on its standard input.
func TestPauseHelperProcess(t *testing.T) {
	if os.Getenv("THROTTLEDB_PAUSE_HELPER") != "1" {
		t.Skip("run by TestPause")
	}
	io.Copy(io.Discard, os.Stdin)
}

// TestPause: pause returns only once every thread of the process is
// stopped, and SIGCONT lets it run again.
func TestPause(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPauseHelperProcess$")
	cmd.Env = append(os.Environ(), "THROTTLEDB_PAUSE_HELPER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		stdin.Close()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	if all, err := allThreadsStopped(pid); err != nil || all {
		t.Fatalf("running process: allThreadsStopped = %v, %v; want false, nil", all, err)
	}
	for round := range 20 {
		if _, err := pause(pid, 10*time.Second); err != nil {
			t.Fatalf("round %d: pause: %v", round, err)
		}
		if all, err := allThreadsStopped(pid); err != nil || !all {
			t.Fatalf("round %d: after pause, allThreadsStopped = %v, %v; want true, nil", round, all, err)
		}
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if !Poll(10*time.Second, func() bool { all, _ := allThreadsStopped(pid); return !all }) {
			t.Fatalf("round %d: still stopped 10s after SIGCONT", round)
		}
	}
}
