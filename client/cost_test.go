package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestCostIDAndCancel checks the client's COST, ID and CANCEL against a
// node.
func TestCostIDAndCancel(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	ctx := context.Background()
	const iv = time.Minute

	first, err := c.Acquire(ctx, "k", iv, 5, client.WithCost(3))
	if err != nil || !first.Granted || first.Pending != 2 {
		t.Fatalf("cost 3: %+v %v", first, err)
	}
	peek, err := c.Acquire(ctx, "k", iv, 5, client.WithCost(0))
	if err != nil || !peek.ValidAt.Equal(first.ValidAt.Add(3*iv)) {
		t.Fatalf("cost 0 peek: %+v %v, want slot %v", peek, err, first.ValidAt.Add(3*iv))
	}
	a, err := c.Acquire(ctx, "k", iv, 5, client.WithID("req-1"))
	if err != nil || !a.ValidAt.Equal(peek.ValidAt) {
		t.Fatalf("acquire after the peek: %+v %v", a, err)
	}
	again, err := c.Acquire(ctx, "k", iv, 5, client.WithID("req-1"))
	if err != nil || !again.ValidAt.Equal(a.ValidAt) || again.Pending != a.Pending {
		t.Fatalf("same ID: %+v, first %+v (%v)", again, a, err)
	}
	if ok, err := c.Cancel(ctx, "k", first); err != nil || ok {
		t.Fatalf("cancel of an older grant: %v %v", ok, err)
	}
	if ok, err := c.Cancel(ctx, "k", a); err != nil || !ok {
		t.Fatalf("cancel of the newest: %v %v", ok, err)
	}
	if next, err := c.Acquire(ctx, "k", iv, 5); err != nil || !next.ValidAt.Equal(a.ValidAt) {
		t.Fatalf("after cancel: %+v %v, want slot %v", next, err, a.ValidAt)
	}
	for _, bad := range []client.AcquireOption{client.WithCost(-1), client.WithCost(7), client.WithID(string(make([]byte, 65)))} {
		if _, err := c.Acquire(ctx, "k", iv, 5, bad); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("bad option: %v", err)
		}
	}
	if _, err := c.Wait(ctx, "k", iv, 5, client.WithCost(0)); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Wait with cost 0: %v", err)
	}
	if _, err := c.Cancel(ctx, "k", client.Permit{}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("cancel of a denial: %v", err)
	}
}

// TestWaitAndThrottleGiveBackOnCancel: when the context ends before the
// reserved slot opens, Wait and Throttle give the slot back, so that the
// next caller gets it.
func TestWaitAndThrottleGiveBackOnCancel(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	ctx := context.Background()
	const iv = time.Minute
	for _, tc := range []struct {
		name string
		wait func(ctx context.Context, key string) error
	}{
		{"Wait", func(ctx context.Context, key string) error {
			_, err := c.Wait(ctx, key, iv, 3)
			return err
		}},
		{"Throttle", func(ctx context.Context, key string) error {
			_, err := client.Throttle(c, key, iv, 3, func(context.Context) (int, error) {
				t.Error("ran without a slot")
				return 0, nil
			})(ctx)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "give-back-" + tc.name
			now, err := c.Acquire(ctx, key, iv, 3)
			if err != nil || !now.Granted {
				t.Fatalf("first: %+v %v", now, err)
			}
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if err := tc.wait(short, key); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: %v, want the context's deadline", tc.name, err)
			}
			// The slot one interval on was reserved and given back.
			next, err := c.Acquire(ctx, key, iv, 3)
			if err != nil || !next.ValidAt.Equal(now.ValidAt.Add(iv)) || next.Pending != 1 {
				t.Fatalf("after giving back: %+v %v, want slot %v", next, err, now.ValidAt.Add(iv))
			}
		})
	}
}
