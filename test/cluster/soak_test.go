package cluster_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestSoakRepeatedFailover (THROTTLEDB_SOAK=1; THROTTLEDB_SOAK_ROUNDS, default
// 20) kills the leader with SIGKILL or SIGTERM, alternately, over and over
// while 20 clients hammer hot keys through every node, restarting each
// victim. Over the whole run, every key's slots must stay spaced by at
// least interval, and each failover must meet the bound.
func TestSoakRepeatedFailover(t *testing.T) {
	if os.Getenv("THROTTLEDB_SOAK") == "" {
		t.Skip("set THROTTLEDB_SOAK=1 to run the failover soak")
	}
	rounds := 20
	if n, err := strconv.Atoi(os.Getenv("THROTTLEDB_SOAK_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{})
	waitMembers(t, c, c.Procs)
	const interval = 30
	h := startHammer(t, c.Procs, 20, []string{"soak-a", "soak-b", "soak-c"}, interval, 4)
	var worst time.Duration
	for r := 0; r < rounds; r++ {
		old := c.WaitForLeader(20 * time.Second)
		survivors := map[string]bool{}
		for _, p := range c.Procs {
			if p != old {
				survivors[p.ID()] = true
			}
		}
		at := time.Now()
		if r%2 == 0 {
			old.Kill()
		} else if err := old.Term(); err != nil {
			t.Errorf("round %d: %s exited with %v after SIGTERM", r, old.ID(), err)
		}
		var first time.Time
		if !testcluster.Poll(15*time.Second, func() bool {
			var err error
			first, err = firstGrantAfter(h.snapshot(), at, survivors)
			return err == nil
		}) {
			h.stop()
			t.Fatalf("round %d: no grant within 15 s of stopping %s", r, old.ID())
		}
		d := first.Sub(at)
		worst = max(worst, d)
		t.Logf("round %d: %s stopped (%s), first grant by a survivor after %v",
			r, old.ID(), map[bool]string{true: "SIGKILL", false: "SIGTERM"}[r%2 == 0], d.Round(time.Millisecond))
		if r%2 == 0 && d > failoverBound+failoverMargin {
			t.Errorf("round %d: failover took %v", r, d)
		}
		old.Restart()
		waitMembers(t, c, c.Procs)
	}
	outs := h.stop()
	grants := checkGrants(t, outs, interval)
	t.Logf("%d rounds; worst time to first grant %v; outcomes: %s (grants checked %d)", rounds, worst, summarize(outs), grants)
}
