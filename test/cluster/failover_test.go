package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// failoverBound is the requirement: after kill -9 of the leader a
// surviving node grants again within 3 s (heartbeat and election timeouts
// at their 500 ms defaults). failoverMargin is slack for loaded CI machines
// (2 cores running three nodes, 20 clients and the test): the test fails
// only beyond bound+margin, and logs loudly when the bound alone is missed.
const (
	failoverBound  = 3 * time.Second
	failoverMargin = 2 * time.Second
)

// Tests 2 and 3: kill -9 the leader while 20 clients hammer hot keys through
// every node; a survivor must grant again within the bound, and no grant of
// the whole run may break a key's spacing. Then restart the killed node: it
// must catch up to the others' state.
func TestKillLeaderFailoverAndRejoin(t *testing.T) {
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{})
	waitMembers(t, c, c.Procs)
	ctx := context.Background()

	// Long-lived keys, so that state comparison after the restart has
	// something to compare.
	for i := 0; i < 30; i++ {
		if _, err := acquire(ctx, c.Procs[i%3].Client(), fmt.Sprintf("long-%d", i), 3_600_000, 5); err != nil {
			t.Fatal(err)
		}
	}

	const interval, max = 50, 4
	keys := []string{"hot-a", "hot-b", "hot-c"}
	h := startHammer(t, c.Procs, 20, keys, interval, max)
	hammerFrom := time.Now()
	if !testcluster.Poll(10*time.Second, func() bool {
		return checkGrantsQuiet(h.snapshot()) >= 30 && time.Since(hammerFrom) > time.Second
	}) {
		h.stop()
		t.Fatalf("hammer got no grants before the kill: %s", summarize(h.snapshot()))
	}

	old := c.Leader()
	if old == nil {
		old = c.WaitForLeader(10 * time.Second)
	}
	survivors := map[string]bool{}
	for _, p := range c.Procs {
		if p != old {
			survivors[p.ID()] = true
		}
	}
	killedAt := time.Now()
	old.Kill()
	t.Logf("killed leader %s (SIGKILL pid)", old.ID())

	var firstGrant time.Time
	if !testcluster.Poll(15*time.Second, func() bool {
		var err error
		firstGrant, err = firstGrantAfter(h.snapshot(), killedAt, survivors)
		return err == nil
	}) {
		outs := h.stop()
		t.Fatalf("no survivor granted within 15 s of the kill: %s", summarize(outs))
	}
	failover := firstGrant.Sub(killedAt)
	// Keep hammering a while after the failover, so grants from the new
	// leader follow grants from the old one.
	time.Sleep(time.Second)
	outs := h.stop()
	grants := checkGrants(t, outs, interval)
	t.Logf("failover: first grant by a survivor %v after kill -9 of the leader", failover.Round(time.Millisecond))
	t.Logf("outcomes: %s (grants checked: %d)", summarize(outs), grants)
	if failover > failoverBound {
		t.Logf("WARNING: failover %v exceeds the %v requirement (allowed here with a %v CI margin)", failover, failoverBound, failoverMargin)
	}
	if failover > failoverBound+failoverMargin {
		t.Errorf("failover took %v, want <= %v (+%v margin)", failover, failoverBound, failoverMargin)
	}
	newLeader := c.WaitForLeader(10 * time.Second)
	if newLeader == old {
		t.Fatalf("killed node is leader")
	}

	// More long-lived keys while the old leader is down: it must catch up
	// on them.
	for i := 30; i < 60; i++ {
		p := c.Running()[i%2]
		if _, err := acquire(ctx, p.Client(), fmt.Sprintf("long-%d", i), 3_600_000, 5); err != nil {
			t.Fatal(err)
		}
	}

	// Test 3: restart the killed node on the same data dir and addresses.
	old.Restart()
	waitMembers(t, c, c.Procs)
	waitSameState(t, c.Procs)
}

// checkGrantsQuiet counts grants without checking them.
func checkGrantsQuiet(outs []outcome) int {
	n := 0
	for _, o := range outs {
		if o.err == nil && o.p.granted {
			n++
		}
	}
	return n
}

// nodeState is what a node's RESP interface shows of its replicated state.
type nodeState struct {
	applied                       string
	dbsize                        int64
	grants, reservations, denials string
}

func stateOf(ctx context.Context, p *testcluster.Proc) (nodeState, error) {
	info, err := p.Info(ctx, "all")
	if err != nil {
		return nodeState{}, err
	}
	n, err := p.Client().DBSize(ctx).Result()
	if err != nil {
		return nodeState{}, err
	}
	return nodeState{
		applied: info["raft_applied_index"], dbsize: n,
		grants: info["throttle_grants"], reservations: info["throttle_reservations"], denials: info["throttle_denials"],
	}, nil
}

// waitSameState waits until every node reports the same applied index,
// DBSIZE and replicated counters (grants, reservations, denials): the same
// log applied to the same deterministic state machine.
func waitSameState(t *testing.T, procs []*testcluster.Proc) {
	t.Helper()
	ctx := context.Background()
	var states []nodeState
	ok := testcluster.Poll(20*time.Second, func() bool {
		states = states[:0]
		for _, p := range procs {
			s, err := stateOf(ctx, p)
			if err != nil {
				return false
			}
			states = append(states, s)
		}
		for _, s := range states[1:] {
			if s != states[0] {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("nodes' state did not converge: %+v", states)
	}
	if states[0].dbsize < 60 {
		t.Fatalf("DBSIZE %d, want at least the 60 long-lived keys", states[0].dbsize)
	}
	t.Logf("all nodes: applied index %s, DBSIZE %d, grants %s, reservations %s, denials %s",
		states[0].applied, states[0].dbsize, states[0].grants, states[0].reservations, states[0].denials)
}
