package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestRecoverSurvivorOfALostMajority runs cluster.md's recovery procedure
// with real processes: two of three nodes die for good (kill -9), the
// survivor cannot grant, `throttledb recover` makes it the only voter, and
// restarted it grants again, continuing every key; two fresh nodes join it.
func TestRecoverSurvivorOfALostMajority(t *testing.T) {
	const iv = 3_600_000
	ctx := context.Background()
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{LeaderWait: 500 * time.Millisecond})
	waitMembers(t, c, c.Procs)
	leader := c.WaitForLeader(10 * time.Second)
	var last permit
	for i := 0; i < 3; i++ {
		var err error
		if last, err = acquire(ctx, leader.Client(), "chain", iv, 5); err != nil {
			t.Fatal(err)
		}
	}
	survivor := c.Followers()[0]
	want, err := leader.AppliedIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, "the survivor to apply every grant", func() bool {
		got, err := survivor.AppliedIndex(ctx)
		return err == nil && got >= want
	})
	for _, p := range c.Procs {
		if p != survivor {
			p.Kill()
		}
	}
	testcluster.WaitFor(t, 10*time.Second, "the survivor to refuse grants", func() bool {
		_, err := acquire(ctx, survivor.Client(), "chain", iv, 5)
		return err != nil && strings.HasPrefix(err.Error(), "CLUSTERDOWN")
	})
	if err := survivor.Term(); err != nil {
		t.Fatalf("survivor did not stop cleanly: %v", err)
	}

	out := runTool(t, 0, "recover", "--id", survivor.ID(), "--data", survivor.DataDir(), "--raft-addr", survivor.RaftAddr())
	if !strings.Contains(out, "is now the only voter") {
		t.Fatalf("recover printed %q", out)
	}
	t.Logf("recover: %s", strings.TrimSpace(out))
	survivor.Restart()
	testcluster.WaitFor(t, 10*time.Second, "the recovered node to grant", func() bool {
		p, err := acquire(ctx, survivor.Client(), "chain", iv, 5)
		if err != nil {
			return false
		}
		if p.validAt != last.validAt+iv {
			t.Fatalf("slot %d after recovery, want %d", p.validAt, last.validAt+iv)
		}
		last = p
		return true
	})

	n4 := c.Add("n4", testcluster.ProcOptions{})
	n5 := c.Add("n5", testcluster.ProcOptions{})
	waitMembers(t, c, []*testcluster.Proc{survivor, n4, n5})
	p, err := acquire(ctx, n5.Client(), "chain", iv, 5)
	if err != nil || p.validAt != last.validAt+iv {
		t.Fatalf("through a new node: %+v, %v; want slot %d", p, err, last.validAt+iv)
	}
}
