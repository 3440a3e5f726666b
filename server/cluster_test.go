package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

func TestClusterAcquireThroughEveryNode(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := context.Background()
	var slots []int64
	for _, n := range c.Nodes {
		v, err := n.Client().Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 10).Int64Slice()
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if v[0] != 1 {
			t.Fatalf("%s: not granted: %v", n, v)
		}
		slots = append(slots, v[2])
	}
	for i := 1; i < len(slots); i++ {
		if slots[i]-slots[i-1] < 1000 {
			t.Fatalf("slots %v not spaced by 1000", slots)
		}
	}
	_ = time.Second
}

// TestNewLeaderKnowsItsAddressAtOnce: a node that has just become the ready
// leader answers RAFT.LEADER with its own address at once, and a node that
// joins it can forward to it at once, without waiting for the leader's RESP
// address to be recorded on a timer.
func TestNewLeaderKnowsItsAddressAtOnce(t *testing.T) {
	ctx := context.Background()
	n := testcluster.StartNode(t, testcluster.Options{}) // returns once it is the ready leader
	v, err := n.Client().Do(ctx, "RAFT.LEADER").StringSlice()
	if err != nil || len(v) != 2 || v[0] != n.ID() || v[1] != n.Addr() {
		t.Fatalf("RAFT.LEADER on a new leader: %v, %v; want [%s %s]", v, err, n.ID(), n.Addr())
	}
	f := testcluster.StartNode(t, testcluster.Options{ID: "n2", Join: []string{n.Addr()}})
	start := time.Now()
	if err := f.Client().Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 1).Err(); err != nil {
		t.Fatalf("through a node that just joined: %v", err)
	}
	t.Logf("first command through a new follower answered in %v", time.Since(start))
}

// TestLeaderRemovingItself: a leader that RAFT.REMOVE removes from the
// cluster answers, shuts its own Raft down (hashicorp/raft's
// ShutdownOnRemove), and then ends the waits on Raft's futures as a stop
// does, since Raft may have dropped some (raftwait.go); the other two
// elect a leader and serve.
func TestLeaderRemovingItself(t *testing.T) {
	ctx := context.Background()
	c := testcluster.Start(t, 3, testcluster.Options{})
	leader := c.WaitForLeader(10 * time.Second)
	// OK, or, if Raft dropped the change's answer as it shut down, an
	// unknown outcome: never no reply (a read timeout longer than any
	// bound on the way, so that a busy machine cannot fail the test).
	cl := redis.NewClient(&redis.Options{Addr: leader.Addr(), ReadTimeout: time.Minute, MaxRetries: -1})
	defer cl.Close()
	if err := cl.Do(ctx, "RAFT.REMOVE", leader.ID()).Err(); err != nil && !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("RAFT.REMOVE of the leader itself: %v", err)
	}
	waitFor(t, "the removed leader's Raft to shut down", func() bool { return server.RaftStats(leader.Server)["state"] == "Shutdown" })
	waitFor(t, "its waits on Raft to be ended", func() bool { return server.RaftDown(leader.Server) })
	var rest *testcluster.Node
	waitFor(t, "the other two to elect a leader", func() bool {
		for _, n := range c.Nodes {
			if n != leader && server.RaftStats(n.Server)["state"] == "Leader" {
				rest = n
				return true
			}
		}
		return false
	})
	if err := rest.Client().Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 10).Err(); err != nil {
		t.Fatalf("the new leader: %v", err)
	}
}
