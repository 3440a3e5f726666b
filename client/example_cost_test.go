package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/throttledb/throttledb/client"
)

// A call that stands for several units of work takes that many slots: here
// a batch of 3 rows against a budget of one row a minute, with up to 4
// rows reserved ahead.
func ExampleWithCost() {
	addr, stop := exampleNode()
	defer stop()
	c, err := client.New(client.Options{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	batch, _ := c.Acquire(ctx, "rows", time.Minute, 4, client.WithCost(3))
	fmt.Printf("batch: granted=%v wait=%v pending=%d\n", batch.Granted, batch.Wait, batch.Pending)
	// The next caller's slot is 3 minutes on; COST 0 asks without taking.
	next, _ := c.Acquire(ctx, "rows", time.Minute, 4, client.WithCost(0))
	fmt.Printf("next: wait=%v\n", next.ValidAt.Sub(batch.ValidAt))
	// 2 rows pending; 3 more would make 5 > 4.
	more, _ := c.Acquire(ctx, "rows", time.Minute, 4, client.WithCost(3))
	fmt.Printf("3 more: granted=%v\n", more.Granted)
	// Output:
	// batch: granted=true wait=0s pending=2
	// next: wait=3m0s
	// 3 more: granted=false
}

// A reservation that will not be used is given back, so that the next
// caller gets its slot. Wait and Throttle do it on their own when their
// context ends before the slot.
func ExampleClient_Cancel() {
	addr, stop := exampleNode()
	defer stop()
	c, err := client.New(client.Options{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	c.Acquire(ctx, "report", time.Minute, 2)
	r, _ := c.Acquire(ctx, "report", time.Minute, 2) // reserved, a minute on
	ok, err := c.Cancel(ctx, "report", r)
	fmt.Println("given back:", ok, err)
	again, _ := c.Acquire(ctx, "report", time.Minute, 2)
	fmt.Println("same slot for the next caller:", again.ValidAt.Equal(r.ValidAt))
	// Output:
	// given back: true <nil>
	// same slot for the next caller: true
}

// Every Acquire carries an idempotency token; WithID names it, so that a
// request retried by something the client does not see (a job runner that
// resends after a crash) takes one slot, not two.
func ExampleWithID() {
	addr, stop := exampleNode()
	defer stop()
	c, err := client.New(client.Options{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	a, _ := c.Acquire(ctx, "mail", time.Minute, 5, client.WithID("job-42"))
	b, _ := c.Acquire(ctx, "mail", time.Minute, 5, client.WithID("job-42"))
	fmt.Println("same slot:", a.ValidAt.Equal(b.ValidAt), "pending:", b.Pending)
	// Output:
	// same slot: true pending: 0
}
