package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// Test 5: moving leadership on purpose — RAFT.TRANSFER with and without a
// target, and SIGTERM of the leader — fails no request of clients that
// hammer through the other nodes.
func TestPlannedLeaderChangesFailNoRequest(t *testing.T) {
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{})
	waitMembers(t, c, c.Procs)
	ctx := context.Background()

	// others returns the running nodes other than p.
	others := func(p *testcluster.Proc) []*testcluster.Proc {
		var out []*testcluster.Proc
		for _, q := range c.Running() {
			if q != p {
				out = append(out, q)
			}
		}
		return out
	}

	// phase hammers through the nodes other than the current leader, runs
	// change, waits for a new leader, and checks that no request failed.
	phase := func(name string, change func(old *testcluster.Proc, targets []*testcluster.Proc) *testcluster.Proc) {
		t.Helper()
		old := c.WaitForLeader(10 * time.Second)
		targets := others(old)
		const interval = 20
		h := startHammer(t, targets, 10, []string{"t-" + name + "-a", "t-" + name + "-b"}, interval, 5)
		if !testcluster.Poll(10*time.Second, func() bool { return checkGrantsQuiet(h.snapshot()) >= 20 }) {
			h.stop()
			t.Fatalf("%s: no grants before the change: %s", name, summarize(h.snapshot()))
		}
		changedAt := time.Now()
		want := change(old, targets)
		nl := c.WaitForLeader(10 * time.Second)
		if nl == old || (want != nil && nl != want) {
			t.Errorf("%s: leader is %s after the change (was %s, wanted %v)", name, nl.ID(), old.ID(), want)
		}
		if !grantsResume(h, changedAt, targets) {
			t.Errorf("%s: no grants after the change", name)
		}
		outs := h.stop()
		checkGrants(t, outs, interval)
		bad := errorsOf(outs)
		for i, o := range bad {
			if i == 10 {
				break
			}
			t.Errorf("%s: request through %s failed %v after the change: %v", name, o.node, o.recv.Sub(changedAt).Round(time.Millisecond), o.err)
		}
		t.Logf("%s: leader %s -> %s; outcomes: %s", name, old.ID(), nl.ID(), summarize(outs))
	}

	phase("transfer", func(old *testcluster.Proc, targets []*testcluster.Proc) *testcluster.Proc {
		// No target, sent to a follower: forwarded to the leader.
		if err := targets[0].Client().Do(ctx, "RAFT.TRANSFER").Err(); err != nil {
			t.Fatalf("RAFT.TRANSFER via %s: %v", targets[0].ID(), err)
		}
		return nil
	})
	phase("transfer-to", func(old *testcluster.Proc, targets []*testcluster.Proc) *testcluster.Proc {
		to := targets[len(targets)-1]
		if err := targets[0].Client().Do(ctx, "RAFT.TRANSFER", to.ID()).Err(); err != nil {
			t.Fatalf("RAFT.TRANSFER %s via %s: %v", to.ID(), targets[0].ID(), err)
		}
		return to
	})
	phase("sigterm", func(old *testcluster.Proc, targets []*testcluster.Proc) *testcluster.Proc {
		if err := old.Term(); err != nil {
			t.Errorf("leader %s exited with %v after SIGTERM", old.ID(), err)
		}
		if !old.Logged("transferring leadership before shutdown") {
			t.Errorf("leader %s did not transfer leadership on SIGTERM", old.ID())
		}
		return nil
	})
}
