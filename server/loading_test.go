package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
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
