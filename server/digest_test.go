package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

type digest struct {
	index int64
	sum   string
}

func raftDigest(ctx context.Context, n *testcluster.Node) (digest, error) {
	v, err := n.Client().Do(ctx, "RAFT.DIGEST").Slice()
	if err != nil {
		return digest{}, err
	}
	if len(v) != 2 {
		return digest{}, fmt.Errorf("RAFT.DIGEST reply %v", v)
	}
	idx, ok1 := v[0].(int64)
	sum, ok2 := v[1].(string)
	if !ok1 || !ok2 || len(sum) != 64 {
		return digest{}, fmt.Errorf("RAFT.DIGEST reply %#v", v)
	}
	return digest{idx, sum}, nil
}

// TestRaftDigestAgreesAcrossReplicas: every replica reports the same digest
// once it has applied the same index, and a write changes it.
func TestRaftDigestAgreesAcrossReplicas(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := context.Background()
	var before digest
	for i, n := range c.Nodes {
		if err := n.Client().Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprint("k", i), 1000, 1).Err(); err != nil {
			t.Fatal(err)
		}
	}
	same := func() (digest, bool) {
		var first digest
		for i, n := range c.Nodes {
			d, err := raftDigest(ctx, n)
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if i == 0 {
				first = d
			} else if d.index != first.index {
				return digest{}, false
			} else if d.sum != first.sum {
				t.Fatalf("%s: digest %s at index %d, %s has %s", n, d.sum, d.index, c.Nodes[0], first.sum)
			}
		}
		return first, true
	}
	testcluster.WaitFor(t, 10*time.Second, "every replica at the same applied index", func() bool {
		var ok bool
		before, ok = same()
		return ok
	})
	if before.index == 0 {
		t.Fatalf("applied index 0 after writes")
	}
	if err := c.Nodes[1].Client().Do(ctx, "THROTTLE.ACQUIRE", "k0", 1000, 5).Err(); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, "every replica past the new write", func() bool {
		d, ok := same()
		if ok && d.index > before.index {
			if d.sum == before.sum {
				t.Fatalf("digest unchanged by a grant: %s", d.sum)
			}
			return true
		}
		return false
	})
}

// TestDebugClockOffset: a leader with a skewed clock stamps cluster time
// from it (the fault tests' skewed node).
func TestDebugClockOffset(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { c.DebugClockOffset = time.Hour }})
	before := time.Now().Add(time.Hour).UnixMilli()
	v, err := n.Client().Do(context.Background(), "THROTTLE.ACQUIRE", "k", 1000, 1).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Hour).UnixMilli()
	if v[0] != 1 || v[2] < before || v[2] > after {
		t.Fatalf("grant at %d, want within [%d, %d] (wall clock + 1h)", v[2], before, after)
	}
}
