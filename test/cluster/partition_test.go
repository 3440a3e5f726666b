package cluster_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestIsolatedLeaderNeverGrants cuts the leader off from both followers
// (SIGSTOP, by pid: to the leader they stop answering, as in a partition
// that leaves it in the minority) while clients hammer it. No request sent
// after the cut and answered before the heal may be a grant: the minority
// side cannot commit. After SIGCONT the cluster grants again, and every
// grant of the whole run keeps the keys' spacing.
func TestIsolatedLeaderNeverGrants(t *testing.T) {
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{})
	waitMembers(t, c, c.Procs)
	leader := c.WaitForLeader(10 * time.Second)
	followers := c.Followers()

	const interval, max = 50, 4
	keys := []string{"p-a", "p-b"}
	h := startHammer(t, []*testcluster.Proc{leader}, 8, keys, interval, max)
	testcluster.WaitFor(t, 10*time.Second, "grants before the cut", func() bool {
		return checkGrantsQuiet(h.snapshot()) >= 10
	})

	// The cut is in place once both followers are wholly stopped: until
	// then one may still acknowledge entries.
	for _, f := range followers {
		if _, err := f.Pause(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	cut := time.Now()
	resumed := false
	resume := func() {
		if resumed {
			return
		}
		resumed = true
		for _, f := range followers {
			syscall.Kill(f.Pid(), syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	// Let the isolated leader step down, and its clients see the errors of
	// both phases: TRYAGAIN for writes in flight when it lost leadership,
	// then CLUSTERDOWN once it has waited for a leader in vain.
	testcluster.WaitFor(t, 15*time.Second, "the isolated leader to step down", func() bool {
		info, err := leader.Info(context.Background(), "raft")
		return err == nil && info["raft_state"] != "leader"
	})
	testcluster.WaitFor(t, 15*time.Second, "errors from the minority side", func() bool {
		n := 0
		for _, o := range h.snapshot() {
			if o.sent.After(cut) && o.err != nil {
				n++
			}
		}
		return n >= 16
	})
	healed := time.Now()
	resume()

	isolated, errs := 0, 0
	for _, o := range h.snapshot() {
		if !o.sent.After(cut) || !o.recv.Before(healed) {
			continue
		}
		isolated++
		if o.err == nil && o.p.granted {
			t.Errorf("granted on the minority side: %+v (sent %v after the cut)", o.p, o.sent.Sub(cut))
		}
		if o.err != nil {
			errs++
		}
	}
	t.Logf("minority side: %d requests answered during the cut, %d errors, 0 grants allowed", isolated, errs)

	// After the heal the cluster grants again, through any node.
	c.WaitForLeader(15 * time.Second)
	testcluster.WaitFor(t, 15*time.Second, "a grant after the heal", func() bool {
		for _, o := range h.snapshot() {
			if o.sent.After(healed) && o.err == nil && o.p.granted {
				return true
			}
		}
		return false
	})
	outs := h.stop()
	grants := checkGrants(t, outs, interval)
	t.Logf("outcomes: %s (grants checked: %d)", summarize(outs), grants)
}
