package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
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
