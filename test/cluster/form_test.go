package cluster_test

import (
	"context"
	"strings"
	"testing"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// Test 1: three processes form a cluster with --join; ACQUIRE works through
// every node; every node's RAFT.NODES lists the same three voters and the
// same leader; RAFT.LEADER, ROLE and INFO raft agree.
func TestFormClusterByJoin(t *testing.T) {
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{})
	leader := waitMembers(t, c, c.Procs)
	ctx := context.Background()

	var last int64
	for i, p := range c.Procs {
		pm, err := acquire(ctx, p.Client(), "form", 1000, 10)
		if err != nil {
			t.Fatalf("ACQUIRE through %s: %v", p, err)
		}
		if !pm.granted {
			t.Fatalf("ACQUIRE through %s not granted: %+v", p, pm)
		}
		if i > 0 && pm.validAt-last < 1000 {
			t.Fatalf("slot %d through %s is %d ms after the previous one, want >= 1000", pm.validAt, p, pm.validAt-last)
		}
		last = pm.validAt
	}

	lp := c.Proc(leader)
	for _, p := range c.Procs {
		cl := p.Client()
		v, err := cl.Do(ctx, "RAFT.LEADER").StringSlice()
		if err != nil || len(v) != 2 || v[0] != leader || v[1] != lp.Addr() {
			t.Errorf("%s: RAFT.LEADER = %v, %v; want [%s %s]", p, v, err, leader, lp.Addr())
		}
		role, err := cl.Do(ctx, "ROLE").Slice()
		if err != nil || len(role) == 0 {
			t.Fatalf("%s: ROLE = %v, %v", p, role, err)
		}
		want := "slave"
		if p.ID() == leader {
			want = "master"
		}
		if role[0] != want {
			t.Errorf("%s: ROLE says %v, want %s", p, role[0], want)
		}
		info, err := p.Info(ctx, "raft")
		if err != nil {
			t.Fatal(err)
		}
		if info["raft_leader_id"] != leader || info["raft_leader_addr"] != lp.Addr() {
			t.Errorf("%s: INFO raft names leader %s at %s, want %s at %s", p, info["raft_leader_id"], info["raft_leader_addr"], leader, lp.Addr())
		}
	}

	// A follower that restarts with the same ID, addresses, data and --join
	// is not added twice, and the cluster still has one leader; one that
	// restarts on new ports re-registers its new addresses.
	f := c.Followers()[0]
	if err := f.Term(); err != nil {
		t.Fatalf("%s exited with %v after SIGTERM", f.ID(), err)
	}
	f.Restart()
	waitMembers(t, c, c.Procs)
	if n := strings.Count(strings.Join(f.Logs(), "\n"), "bootstrapped a new"); n != 0 {
		t.Errorf("%s bootstrapped a cluster on restart", f.ID())
	}
	f.RestartNewAddrs()
	waitMembers(t, c, c.Procs)
	pm, err := acquire(ctx, f.Client(), "form", 1000, 10)
	if err != nil || !pm.granted {
		t.Fatalf("ACQUIRE through %s on new ports: %+v %v", f, pm, err)
	}
}
