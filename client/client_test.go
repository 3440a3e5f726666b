package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/internal/testcluster"
)

func newClient(t *testing.T, o client.Options) *client.Client {
	t.Helper()
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// deadAddr returns an address nothing listens on: a listener's, closed.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestNewNeedsAddrs(t *testing.T) {
	if _, err := client.New(client.Options{}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("New with no addresses: %v", err)
	}
}

func TestInvalidArgumentsRejectedBeforeSending(t *testing.T) {
	// Nothing listens: an argument error must come before any dial.
	c := newClient(t, client.Options{Addrs: []string{deadAddr(t)}})
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		key      string
		interval time.Duration
		max      int
		opts     []client.AcquireOption
	}{
		{"empty key", "", time.Second, 1, nil},
		{"zero interval", "k", 0, 1, nil},
		{"negative interval", "k", -time.Second, 1, nil},
		{"sub-millisecond interval", "k", 999 * time.Microsecond, 1, nil},
		{"negative max", "k", time.Second, -1, nil},
		{"negative slop", "k", time.Second, 1, []client.AcquireOption{client.WithSlop(-time.Millisecond)}},
	} {
		if _, err := c.Acquire(ctx, tc.key, tc.interval, tc.max, tc.opts...); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", tc.name, err)
		}
	}
}

func TestAcquireReplies(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	ctx := context.Background()
	const iv = time.Minute

	first, err := c.Acquire(ctx, "k", iv, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Granted || first.Wait != 0 || first.Pending != 0 || first.RetryAfter != 0 {
		t.Fatalf("first acquire: %+v", first)
	}
	if got := first.Slop(); got != 6*time.Second {
		t.Errorf("default slop %v, want interval/10", got)
	}
	if !first.Deadline().Equal(first.Received.Add(6 * time.Second)) {
		t.Errorf("deadline %v, want received+slop", first.Deadline())
	}

	second, err := c.Acquire(ctx, "k", iv, 1, client.WithSlop(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Granted || second.Pending != 1 || second.Wait <= 0 || second.Wait > iv {
		t.Fatalf("second acquire (reservation): %+v", second)
	}
	if got := second.ValidAt.Sub(first.ValidAt); got != iv {
		t.Errorf("reservation %v after the first slot, want %v", got, iv)
	}
	if second.Slop() != 250*time.Millisecond {
		t.Errorf("slop %v, want 250ms", second.Slop())
	}
	if !second.Start().Equal(second.Received.Add(second.Wait)) {
		t.Errorf("start %v, want received+wait", second.Start())
	}

	peek, err := c.Peek(ctx, "k", iv, 1)
	if err != nil {
		t.Fatal(err)
	}
	third, err := c.Acquire(ctx, "k", iv, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []client.Permit{peek, third} {
		if p.Granted || p.RetryAfter <= 0 || !p.ValidAt.IsZero() || !p.ExpiresAt.IsZero() || p.Pending != 1 {
			t.Fatalf("denial: %+v", p)
		}
		if p.String() != "None" {
			t.Errorf("denial String() = %q", p.String())
		}
	}
	if want := fmt.Sprintf("Permit(time_to_wait_ms=%d, expires_at=%d, valid_at=%d)",
		second.Wait.Milliseconds(), second.ExpiresAt.UnixMilli(), second.ValidAt.UnixMilli()); second.String() != want {
		t.Errorf("String() = %q, want %q", second.String(), want)
	}

	if got, err := c.Reset(ctx, "k", "absent"); err != nil || got != 1 {
		t.Fatalf("Reset = %d, %v; want 1", got, err)
	}
	if p, err := c.Acquire(ctx, "k", iv, 1); err != nil || !p.Granted || p.Wait != 0 {
		t.Fatalf("after reset: %+v, %v", p, err)
	}
}

func TestIntervalRoundedUpToWholeMilliseconds(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	ctx := context.Background()
	iv := 1500*time.Millisecond + 1 // a nanosecond over: must not become 1500 ms
	a, err := c.Acquire(ctx, "k", iv, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Acquire(ctx, "k", iv, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.ValidAt.Sub(a.ValidAt); got != 1501*time.Millisecond {
		t.Fatalf("slots %v apart, want 1.501s", got)
	}
}

func TestServerErrorPassesThrough(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{RequirePass: "secret"})
	ctx := context.Background()

	good := newClient(t, client.Options{Addrs: []string{n.Addr()}, Password: "secret"})
	if p, err := good.Acquire(ctx, "k", time.Second, 1); err != nil || !p.Granted {
		t.Fatalf("with password: %+v, %v", p, err)
	}

	bad := newClient(t, client.Options{Addrs: []string{n.Addr()}, Password: "wrong"})
	_, err := bad.Acquire(ctx, "k", time.Second, 1)
	if err == nil || errors.Is(err, client.ErrClusterDown) {
		t.Fatalf("wrong password: got %v, want an authentication error", err)
	}
	t.Logf("wrong password: %v", err)
}

func TestWaitRetriesDenials(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	var sleeps atomic.Int32
	client.SetSleep(c, func(ctx context.Context, d time.Duration) error {
		sleeps.Add(1)
		return client.Sleep(ctx, d)
	})
	ctx := context.Background()
	const iv = 200 * time.Millisecond

	first, err := c.Acquire(ctx, "k", iv, 0)
	if err != nil || !first.Granted {
		t.Fatalf("first: %+v, %v", first, err)
	}
	// max 0: no reservations, so the next call is denied, sleeps for
	// RetryAfter (+ jitter) and is granted on retry.
	if p, err := c.Peek(ctx, "k", iv, 0); err != nil || p.Granted {
		t.Fatalf("peek before Wait: %+v, %v (want a denial)", p, err)
	}
	// A generous slop: a late wake-up on a busy machine is not what this
	// tests (TestPermitExpiredWhenSleepOvershoots is).
	p, err := c.Wait(ctx, "k", iv, 0, client.WithSlop(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Granted || p.Wait != 0 {
		t.Fatalf("Wait: %+v", p)
	}
	if got := p.ValidAt.Sub(first.ValidAt); got < iv {
		t.Fatalf("second slot only %v after the first", got)
	}
	if sleeps.Load() < 1 {
		t.Fatalf("Wait never slept on the denial")
	}
}

func TestTryDo(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	ctx := context.Background()
	l := c.Limiter("k", time.Minute, 5)
	ran := 0
	fn := func(ctx context.Context) error { ran++; return nil }

	if _, err := l.TryDo(ctx, fn); err != nil || ran != 1 {
		t.Fatalf("first TryDo: %v, ran %d", err, ran)
	}
	p, err := l.TryDo(ctx, fn)
	if !errors.Is(err, client.ErrDenied) || ran != 1 || p.RetryAfter <= 0 {
		t.Fatalf("second TryDo: %+v, %v, ran %d; want ErrDenied without running", p, err, ran)
	}
	// TryDo reserves nothing: the next slot is still free to reserve.
	if p, err := l.Acquire(ctx); err != nil || !p.Granted || p.Pending != 1 {
		t.Fatalf("acquire after TryDo: %+v, %v", p, err)
	}
}

func TestPermitExpiredWhenSleepOvershoots(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	ctx := context.Background()
	const iv, slop = 100 * time.Millisecond, 10 * time.Millisecond

	// The first call goes now, so the next is a reservation and Wait
	// sleeps; that sleep overshoots by more than the slop.
	if _, err := c.Acquire(ctx, "k", iv, 3); err != nil {
		t.Fatal(err)
	}
	client.SetSleep(c, func(ctx context.Context, d time.Duration) error {
		return client.Sleep(ctx, d+3*slop)
	})
	ran := false
	call := client.Throttle(c, "k", iv, 3, func(ctx context.Context) (int, error) {
		ran = true
		return 1, nil
	}, client.WithSlop(slop))
	v, err := call(ctx)
	if !errors.Is(err, client.ErrPermitExpired) || ran || v != 0 {
		t.Fatalf("got %d, %v, ran=%v; want ErrPermitExpired and fn not run", v, err, ran)
	}

	p, err := c.Wait(ctx, "k", iv, 3, client.WithSlop(slop))
	if !errors.Is(err, client.ErrPermitExpired) || !p.Granted {
		t.Fatalf("Wait: %+v, %v; want the granted permit and ErrPermitExpired", p, err)
	}
}

func TestContextErrorsPassThrough(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	if _, err := c.Acquire(context.Background(), "k", time.Hour, 5); err != nil {
		t.Fatal(err)
	}
	// The next slot is an hour away: Wait sleeps until ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	p, err := c.Wait(ctx, "k", time.Hour, 5)
	if !errors.Is(err, context.DeadlineExceeded) || !p.Granted {
		t.Fatalf("Wait: %+v, %v; want DeadlineExceeded", p, err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Acquire(ctx, "k", time.Hour, 5); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a cancelled context: %v", err)
	}
	err = c.Limiter("k", time.Hour, 5).Do(ctx, func(context.Context) error {
		t.Error("fn ran")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with a cancelled context: %v", err)
	}
}

func TestFailoverPastDeadAddresses(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	stopped := testcluster.StartNode(t, testcluster.Options{ID: "n2"})
	stoppedAddr := stopped.Addr()
	stopped.Stop()
	dead := deadAddr(t)

	c := newClient(t, client.Options{Addrs: []string{dead, stoppedAddr, n.Addr()}})
	ctx := context.Background()
	p, err := c.Acquire(ctx, "k", time.Second, 1)
	if err != nil || !p.Granted {
		t.Fatalf("acquire past dead addresses: %+v, %v", p, err)
	}
	if c.Current() != n.Addr() {
		t.Fatalf("current address %s, want the live node %s", c.Current(), n.Addr())
	}
	// Remembered: the next call goes straight to the live node.
	if p, err := c.Acquire(ctx, "k", time.Second, 1); err != nil || !p.Granted {
		t.Fatalf("second acquire: %+v, %v", p, err)
	}

	all := newClient(t, client.Options{Addrs: []string{dead, stoppedAddr}})
	if _, err := all.Acquire(ctx, "k", time.Second, 1); !errors.Is(err, client.ErrClusterDown) {
		t.Fatalf("every address dead: %v, want ErrClusterDown", err)
	}
	one := newClient(t, client.Options{Addrs: []string{dead}})
	if _, err := one.Wait(ctx, "k", time.Second, 1); !errors.Is(err, client.ErrClusterDown) {
		t.Fatalf("Wait, single dead address: %v, want ErrClusterDown", err)
	}
}

func TestClusterDownReply(t *testing.T) {
	cl := testcluster.Start(t, 3, testcluster.Options{LeaderWait: 200 * time.Millisecond})
	survivor := cl.Nodes[2]
	cl.Nodes[0].Stop()
	cl.Nodes[1].Stop()
	// Wait until the survivor itself knows it has no leader.
	testcluster.WaitFor(t, 10*time.Second, "the survivor to lose its leader", func() bool {
		_, _, err := survivor.Server.Leader()
		return err != nil
	})
	c := newClient(t, client.Options{Addrs: []string{survivor.Addr()}})
	_, err := c.Acquire(context.Background(), "k", time.Second, 1)
	if !errors.Is(err, client.ErrClusterDown) {
		t.Fatalf("no quorum: %v, want ErrClusterDown", err)
	}
	t.Logf("no quorum: %v", err)
}

// call records one fn run under a permit.
type call struct {
	started time.Time // local time fn started
	permit  client.Permit
}

// checkSpacing checks the spacing of calls made under permits of one key
// with the given interval.
//
// Cluster time: the server guarantees slots at least interval apart, so
// ValidAt gaps are checked exactly.
//
// Local time: fn must never start before its permit's Start (reply arrival
// + wait). Starts are compared through Start, not through when fn happened
// to run: a goroutine scheduled late does not make a later call early. The
// server stamped the slot at a time t with sent <= t <= received (it chose
// the slot while handling the command), truncated to a millisecond, so
// Start = slot + (received - t) + [0, 1 ms): a Start lags its slot by at
// most the call's round trip plus 1 ms. Two Starts whose slots are at least
// interval apart are therefore at least interval - 1 ms - max(round trip)
// apart. The tolerance is measured per pair, not guessed, so a slow machine
// cannot make the test flaky and a client that starts early still fails it.
func checkSpacing(t *testing.T, calls []call, interval time.Duration) {
	t.Helper()
	if len(calls) < 2 {
		t.Fatalf("only %d calls", len(calls))
	}
	for _, c := range calls {
		if c.started.Before(c.permit.Start()) {
			t.Errorf("fn started %v before its slot opened", c.permit.Start().Sub(c.started))
		}
		if c.started.After(c.permit.Deadline()) {
			t.Errorf("fn started %v after its permit expired", c.started.Sub(c.permit.Deadline()))
		}
	}
	byValid := slices.Clone(calls)
	slices.SortFunc(byValid, func(a, b call) int { return a.permit.ValidAt.Compare(b.permit.ValidAt) })
	for i := 1; i < len(byValid); i++ {
		if gap := byValid[i].permit.ValidAt.Sub(byValid[i-1].permit.ValidAt); gap < interval {
			t.Errorf("slots %d and %d only %v apart (cluster time)", i-1, i, gap)
		}
	}
	byStart := slices.Clone(calls)
	slices.SortFunc(byStart, func(a, b call) int { return a.permit.Start().Compare(b.permit.Start()) })
	minGap, minRun := time.Duration(1<<62), time.Duration(1<<62)
	for i := 1; i < len(byStart); i++ {
		a, b := byStart[i-1], byStart[i]
		gap := b.permit.Start().Sub(a.permit.Start())
		tol := time.Millisecond + max(a.permit.RoundTrip, b.permit.RoundTrip)
		if gap < interval-tol {
			t.Errorf("local starts %d and %d only %v apart (tolerance %v)", i-1, i, gap, tol)
		}
		minGap = min(minGap, gap)
	}
	byRun := slices.Clone(calls)
	slices.SortFunc(byRun, func(a, b call) int { return a.started.Compare(b.started) })
	for i := 1; i < len(byRun); i++ {
		minRun = min(minRun, byRun[i].started.Sub(byRun[i-1].started))
	}
	t.Logf("%d calls, interval %v: smallest gap between permit starts %v, between fn runs %v", len(calls), interval, minGap, minRun)
}

// recorder collects calls from many goroutines.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) record(ctx context.Context) error {
	now := time.Now()
	p, ok := client.PermitFromContext(ctx)
	if !ok {
		return errors.New("fn ran without a permit in its context")
	}
	r.mu.Lock()
	r.calls = append(r.calls, call{started: now, permit: p})
	r.mu.Unlock()
	return nil
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func TestSpacingAcrossGoroutinesAndClients(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	clients := []*client.Client{
		newClient(t, client.Options{Addrs: []string{n.Addr()}}),
		newClient(t, client.Options{Addrs: []string{n.Addr()}}),
	}
	const (
		key      = "shared-token"
		interval = 100 * time.Millisecond
		maxAhead = 4
		slop     = 50 * time.Millisecond // generous: a late wake-up is not what this tests
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var rec recorder
	var expired atomic.Int32
	var wg sync.WaitGroup
	for g := range 20 {
		c := clients[g%2]
		wg.Go(func() {
			throttled := client.Throttle(c, key, interval, maxAhead, func(ctx context.Context) (struct{}, error) {
				return struct{}{}, rec.record(ctx)
			}, client.WithSlop(slop))
			limiter := c.Limiter(key, interval, maxAhead, client.WithSlop(slop))
			for done := 0; done < 2; {
				var err error
				if done == 0 {
					_, err = throttled(ctx)
				} else {
					err = limiter.Do(ctx, rec.record)
				}
				switch {
				case errors.Is(err, client.ErrPermitExpired):
					expired.Add(1) // the process stalled past the slop: try again
				case err != nil:
					t.Errorf("goroutine %d: %v", g, err)
					return
				default:
					done++
				}
			}
		})
	}
	wg.Wait()
	if expired.Load() > 0 {
		t.Logf("%d permits expired before use and were retried", expired.Load())
	}
	calls := rec.snapshot()
	if len(calls) != 40 {
		t.Fatalf("%d calls, want 40", len(calls))
	}
	checkSpacing(t, calls, interval)
}

func TestLeaderKilledMidRun(t *testing.T) {
	cl := testcluster.Start(t, 3, testcluster.Options{})
	leader := cl.WaitForLeader(10 * time.Second)
	// The leader's address first, so that killing it forces failover.
	addrs := []string{leader.Addr()}
	for _, f := range cl.Followers() {
		addrs = append(addrs, f.Addr())
	}
	c := newClient(t, client.Options{Addrs: addrs})

	const (
		key      = "shared-token"
		interval = 50 * time.Millisecond
		maxAhead = 3
		slop     = 50 * time.Millisecond
		before   = 10 // calls before the kill
		total    = 40
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var rec recorder
	var expired, afterKill atomic.Int32
	var killed atomic.Bool
	throttled := client.Throttle(c, key, interval, maxAhead, func(ctx context.Context) (bool, error) {
		return killed.Load(), rec.record(ctx)
	}, client.WithSlop(slop))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for rec.len() < total {
				wasAfter, err := throttled(ctx)
				switch {
				case errors.Is(err, client.ErrPermitExpired):
					expired.Add(1)
				case err != nil:
					t.Errorf("goroutine %d: %v", g, err)
					return
				case wasAfter:
					afterKill.Add(1)
				}
			}
		})
	}
	testcluster.WaitFor(t, 30*time.Second, fmt.Sprintf("%d calls before killing the leader", before), func() bool {
		return rec.len() >= before
	})
	killed.Store(true)
	leader.Stop()
	wg.Wait()

	if afterKill.Load() == 0 {
		t.Fatalf("no call completed after the leader was killed")
	}
	if c.Current() == addrs[0] {
		t.Fatalf("client still points at the dead leader")
	}
	t.Logf("%d calls after the kill, %d expired permits retried, client now on %s", afterKill.Load(), expired.Load(), c.Current())
	checkSpacing(t, rec.snapshot(), interval)
}
