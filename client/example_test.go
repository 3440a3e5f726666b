package client_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// exampleNode starts an in-process single-node server for the examples.
// Examples have no *testing.T; a testing.TB whose cleanups run at the end
// of the example is enough for testcluster.
func exampleNode() (addr string, stop func()) {
	t := &exampleTB{}
	n := testcluster.StartNode(t, testcluster.Options{})
	return n.Addr(), t.cleanup
}

func ExampleClient_Acquire() {
	addr, stop := exampleNode()
	defer stop()

	c, err := client.New(client.Options{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	// The first call on a fresh key goes now; the second reserves the next
	// slot, one interval later; with max 1, the third is denied.
	for range 3 {
		p, err := c.Acquire(ctx, "api-token", time.Minute, 1)
		if err != nil {
			panic(err)
		}
		fmt.Printf("granted=%v wait=%v pending=%d\n", p.Granted, p.Wait.Round(time.Minute), p.Pending)
	}
	// Output:
	// granted=true wait=0s pending=0
	// granted=true wait=1m0s pending=1
	// granted=false wait=0s pending=1
}

func ExampleThrottle() {
	addr, stop := exampleNode()
	defer stop()

	c, err := client.New(client.Options{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	// At most one lookup per 20 ms across every process using "geo-api",
	// up to 5 reserved ahead. The default slop (a tenth of the interval,
	// here 2 ms) is how late a caller may start; a process that can stall
	// (a busy machine, a GC pause) asks for more with WithSlop.
	lookup := client.Throttle(c, "geo-api", 20*time.Millisecond, 5,
		func(ctx context.Context) (string, error) {
			// Runs only inside a valid permit.
			return "ok", nil
		}, client.WithSlop(time.Second))
	for range 3 {
		v, err := lookup(context.Background())
		fmt.Println(v, err)
	}
	// Output:
	// ok <nil>
	// ok <nil>
	// ok <nil>
}

func ExampleLimiter_Do() {
	addr, stop := exampleNode()
	defer stop()

	c, err := client.New(client.Options{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	api := c.Limiter("api-token", 20*time.Millisecond, 2, client.WithSlop(time.Second))
	err = api.Do(context.Background(), func(ctx context.Context) error {
		p, _ := client.PermitFromContext(ctx)
		fmt.Println("calling the API inside", p.Granted, "permit")
		return nil
	})
	fmt.Println(err)
	// Output:
	// calling the API inside true permit
	// <nil>
}

func ExampleClient_Backup() {
	oldAddr, stopOld := exampleNode()
	defer stopOld()
	newAddr, stopNew := exampleNode()
	defer stopNew()
	ctx := context.Background()

	old, err := client.New(client.Options{Addrs: []string{oldAddr}})
	if err != nil {
		panic(err)
	}
	defer old.Close()
	last, _ := old.Acquire(ctx, "api-token", time.Hour, 5)
	img, err := old.Backup(ctx)
	if err != nil {
		panic(err)
	}

	// Load the backup into another cluster: it continues where the old one
	// left off.
	c, err := client.New(client.Options{Addrs: []string{newAddr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	keys, err := c.Restore(ctx, img)
	if err != nil {
		panic(err)
	}
	next, _ := c.Acquire(ctx, "api-token", time.Hour, 5)
	fmt.Println("restored keys:", keys)
	fmt.Println("next slot after the backup's last:", next.ValidAt.Sub(last.ValidAt))
	// Output:
	// restored keys: 1
	// next slot after the backup's last: 1h0m0s
}

// exampleTB is the part of testing.TB testcluster uses, for examples.
type exampleTB struct {
	testing.TB // nil: any method not overridden panics
	cleanups   []func()
}

func (t *exampleTB) Helper()                   {}
func (t *exampleTB) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (t *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "throttledb-example-")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
func (t *exampleTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func ExampleOnReply() {
	addr, stop := exampleNode()
	defer stop()

	c, err := client.New(client.Options{Addrs: []string{addr}})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	// Wait hides the denials it retries; OnReply shows every reply, to log
	// or count them.
	show := client.OnReply(func(p client.Permit, err error) {
		switch {
		case err != nil:
			fmt.Println("error:", err)
		case !p.Granted:
			fmt.Println("denied")
		default:
			fmt.Println("granted")
		}
	})
	for range 2 {
		// max 0: a slot is granted only when free now, so the second Wait
		// is denied once, sleeps until the slot frees, and is granted.
		if _, err := c.Wait(ctx, "api-token", 20*time.Millisecond, 0, show, client.WithSlop(time.Second)); err != nil {
			panic(err)
		}
	}
	// Output:
	// granted
	// denied
	// granted
}
