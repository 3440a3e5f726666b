package cluster_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// Test 4: remove a member with RAFT.REMOVE (sent to a follower, which
// forwards it) and add a fresh node with --join; then stop two of the three
// nodes: the survivor has no leader and must answer CLUSTERDOWN within the
// leader wait, never hang and never grant.
func TestRemoveAddAndClusterDown(t *testing.T) {
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{})
	leader := waitMembers(t, c, c.Procs)
	ctx := context.Background()

	// Remove a follower through the other follower.
	var victim, via *testcluster.Proc
	for _, p := range c.Procs {
		if p.ID() == leader {
			continue
		}
		if victim == nil {
			victim = p
		} else {
			via = p
		}
	}
	if err := via.Client().Do(ctx, "RAFT.REMOVE", victim.ID()).Err(); err != nil {
		t.Fatalf("RAFT.REMOVE %s via %s: %v", victim.ID(), via.ID(), err)
	}
	if err := via.Client().Do(ctx, "RAFT.REMOVE", "no-such-node").Err(); err == nil || !strings.Contains(err.Error(), "no such node") {
		t.Errorf("RAFT.REMOVE of an unknown node: %v, want a 'no such node' error", err)
	}
	var remaining []*testcluster.Proc
	for _, p := range c.Procs {
		if p != victim {
			remaining = append(remaining, p)
		}
	}
	if err := victim.Term(); err != nil {
		t.Errorf("removed node %s exited with %v", victim.ID(), err)
	}
	waitMembers(t, c, remaining)

	// A fresh node joins through every running node's address.
	fresh := c.Add("n4", testcluster.ProcOptions{})
	members := append(remaining, fresh)
	waitMembers(t, c, members)
	for _, p := range members {
		pm, err := acquire(ctx, p.Client(), "after-change", 1, 0)
		if err != nil || !pm.granted {
			t.Fatalf("ACQUIRE through %s after the membership change: %+v %v", p, pm, err)
		}
	}

	// Stop two of three: the leader and one follower.
	l := c.WaitForLeader(10 * time.Second)
	var survivor *testcluster.Proc
	for _, p := range members {
		if p != l && survivor == nil {
			survivor = p
		}
	}
	for _, p := range members {
		if p != survivor {
			p.Kill()
		}
	}
	// Several clients at once, right after the loss (the survivor still
	// believes in the dead leader for a moment) and again once it has
	// noticed: every one must get CLUSTERDOWN within LeaderWait + margin.
	const leaderWait = 2 * time.Second // the binary's default --leader-wait
	const margin = time.Second
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				_, err := acquire(ctx, survivor.Client(), "minority", 1000, 10)
				took := time.Since(start)
				if err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN") {
					t.Errorf("survivor without a leader answered %v, want CLUSTERDOWN", err)
				}
				if took > leaderWait+margin {
					t.Errorf("CLUSTERDOWN took %v, want < %v", took, leaderWait+margin)
				}
				if i == 0 {
					t.Logf("round %d: %v after %v", round, err, took.Round(time.Millisecond))
				}
			}()
		}
		wg.Wait()
	}
	for _, cmd := range [][]any{{"RAFT.LEADER"}, {"RAFT.JOIN", "x", "127.0.0.1:1", "127.0.0.1:2"}} {
		start := time.Now()
		err := survivor.Client().Do(ctx, cmd...).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN") || time.Since(start) > leaderWait+margin {
			t.Errorf("%v on a leaderless node: %v after %v, want CLUSTERDOWN", cmd[0], err, time.Since(start))
		}
	}
}
