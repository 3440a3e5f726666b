package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// TestReadsAfterRestartAreCurrent: a follower restarted from its data
// directory answers DBSIZE with LOADING until it has applied what it had
// committed before it stopped, never with a smaller, older count.
func TestReadsAfterRestartAreCurrent(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	leader := c.WaitForLeader(10 * time.Second)
	ctx := context.Background()
	const keys = 300
	cl := leader.Client()
	pipe := cl.Pipeline()
	for i := 0; i < keys; i++ {
		pipe.Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprintf("k%d", i), 3_600_000, 1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	f := c.Followers()[0]
	testcluster.WaitFor(t, 10*time.Second, "the follower to apply every key", func() bool {
		n, err := f.Client().DBSize(ctx).Result()
		return err == nil && n == keys
	})
	for round := 0; round < 3; round++ {
		f.Restart(true)
		fc := f.Client()
		loading := 0
		testcluster.WaitFor(t, 10*time.Second, "DBSIZE after the restart", func() bool {
			n, err := fc.DBSize(ctx).Result()
			if err != nil {
				if err.Error() != "LOADING throttledb is loading the dataset in memory" {
					t.Fatalf("DBSIZE: %v", err)
				}
				loading++
				return false
			}
			if n != keys {
				t.Fatalf("DBSIZE %d after a restart, before: %d", n, keys)
			}
			return true
		})
		t.Logf("round %d: %d LOADING replies", round, loading)
		fc.Close()
	}
}

// TestIdleRestartIsNotLoading: a node whose log ends with entries the state
// machine never sees (the no-op every new leader appends) is done loading
// once it has applied the last command in its log, not stuck at LOADING
// until some client writes.
func TestIdleRestartIsNotLoading(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	ctx := context.Background()
	c := n.Client()
	if err := c.Do(ctx, "THROTTLE.ACQUIRE", "k", 3_600_000, 1).Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Each restart elects the node again, which appends a no-op: from the
	// second restart on, the log ends with one.
	for round := 0; round < 2; round++ {
		n.Restart(true)
		testcluster.WaitFor(t, 10*time.Second, "the restarted node to lead", n.Server.IsLeader)
	}
	c = n.Client()
	defer c.Close()
	var last error
	if !testcluster.Poll(10*time.Second, func() bool {
		var got int64
		got, last = c.DBSize(ctx).Result()
		return last == nil && got == 1
	}) {
		t.Fatalf("DBSIZE after an idle restart: %v", last)
	}
}

// TestLoneVoterElectsAtOnce: a node that is its cluster's only voter
// starts its election as soon as it starts, when bootstrapped and when
// restarted, instead of waiting out its heartbeat timeout for a leader it
// cannot have. The timeouts here are an hour, so a node that waited would
// not lead within the test's 30 s; one that does not wait leads at once.
func TestLoneVoterElectsAtOnce(t *testing.T) {
	hour := func(c *server.Config) { c.HeartbeatTimeout, c.ElectionTimeout = time.Hour, time.Hour }
	n := testcluster.StartNode(t, testcluster.Options{Configure: hour}) // waits for it to lead
	for round := 0; round < 2; round++ {
		n.Restart(true)
		testcluster.WaitFor(t, 30*time.Second, "the restarted lone voter to lead", n.Server.IsLeader)
	}
}
