package cluster_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// Test 3, key by key: in-process nodes expose their state machine, so a
// follower that was down while the log moved on (and was compacted behind a
// snapshot, so it must install the leader's snapshot) is compared with the
// others key by key.
func TestRestartedFollowerStateEqualsOthers(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{TrailingLogs: 8, SnapshotThreshold: 16})
	ctx := context.Background()
	leader := c.WaitForLeader(10 * time.Second)
	follower := c.Followers()[0]
	write := func(prefix string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			nd := c.Running()[i%len(c.Running())]
			if err := nd.Client().Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprintf("%s-%d", prefix, i), 3_600_000+i, 3).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("before", 40)
	// The follower snapshots before it stops, so that on restart its state
	// machine knows the members' RESP addresses: it comes back on new ports
	// (the in-process harness cannot keep them once stopped) and must
	// re-register them through a member before the leader can reach it.
	if err := follower.Client().Do(ctx, "RAFT.SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	follower.Stop()
	write("during", 60)
	// Compact the leader's log past what the follower has.
	if err := leader.Client().Do(ctx, "RAFT.SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	write("after-snapshot", 20)
	follower.Restart(false)

	var want map[string]any
	testcluster.WaitFor(t, 20*time.Second, "every node to hold the same keys", func() bool {
		now := time.Now().UnixMilli()
		var first map[string]any
		for _, nd := range c.Running() {
			keys := map[string]any{}
			for k, v := range nd.Server.FSM().Keys(now) {
				keys[k] = v
			}
			if first == nil {
				first = keys
			} else if !reflect.DeepEqual(first, keys) {
				return false
			}
		}
		want = first
		return true
	})
	if len(want) != 120 {
		t.Fatalf("%d keys, want 120", len(want))
	}
}
