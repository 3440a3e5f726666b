package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestBackupAndRestoreCommands runs cluster.md's backup and restore
// procedure with the real tools: `throttledb backup` of a single node, and
// `throttledb restore` of that file into a new three-node cluster on other
// addresses, through a follower. The new cluster continues every key where
// the old one left off, whichever node is asked.
func TestBackupAndRestoreCommands(t *testing.T) {
	const pw = "s3cret"
	const iv = 3_600_000
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "throttle.backup")

	old := testcluster.StartProc(t, bin, testcluster.ProcOptions{RequirePass: pw})
	testcluster.WaitFor(t, 10*time.Second, "the old node to lead", func() bool {
		_, err := acquire(ctx, old.Client(), "warm-up", iv, 5)
		return err == nil
	})
	var last permit
	for i := 0; i < 3; i++ {
		var err error
		if last, err = acquire(ctx, old.Client(), "chain", iv, 5); err != nil {
			t.Fatal(err)
		}
	}

	out := runTool(t, 0, "backup", "--addr", old.Addr(), "--password", pw, "--file", file)
	if !strings.Contains(out, "backup: wrote ") {
		t.Fatalf("backup printed %q", out)
	}
	old.Kill() // the old cluster is gone; only the file is left

	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{RequirePass: pw})
	waitMembers(t, c, c.Procs)
	follower := c.Followers()[0]

	// Failures exit non-zero and say why.
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not a backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := runTool(t, 1, "restore", "--addr", follower.Addr(), "--password", pw, "--file", garbage); !strings.Contains(out, "invalid backup") {
		t.Errorf("restore of a garbage file printed %q", out)
	}
	if out := runTool(t, 1, "restore", "--addr", follower.Addr(), "--password", "wrong", "--file", file); !strings.Contains(out, "WRONGPASS") {
		t.Errorf("restore with a wrong password printed %q", out)
	}

	out = runTool(t, 0, "restore", "--addr", follower.Addr(), "--password", pw, "--file", file)
	if !strings.Contains(out, "now holds the 2 keys") {
		t.Fatalf("restore printed %q, want 2 keys (warm-up, chain)", out)
	}
	for _, p := range c.Procs {
		next, err := acquire(ctx, p.Client(), "chain", iv, 5)
		if err != nil {
			t.Fatalf("%s: %v", p.ID(), err)
		}
		if next.validAt != last.validAt+iv {
			t.Fatalf("%s: slot %d after restore, want %d (one interval after the backup's last)", p.ID(), next.validAt, last.validAt+iv)
		}
		last = next
	}
}

// runTool runs a throttledb subcommand, fails the test unless it exits with
// wantCode, and returns its combined output.
func runTool(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if code != wantCode {
		t.Fatalf("%v exited %d, want %d:\n%s", args, code, wantCode, out)
	}
	return string(out)
}
