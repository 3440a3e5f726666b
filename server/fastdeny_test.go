package server_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// mustDo runs one command and returns its reply, failing on any error.
func mustDo(t *testing.T, c *redis.Client, args ...any) any {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

// permitInts is ints for a goroutine: it reports a malformed reply
// instead of failing the test.
func permitInts(v any) ([]int64, bool) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 5 {
		return nil, false
	}
	out := make([]int64, len(arr))
	for i, e := range arr {
		if out[i], ok = e.(int64); !ok {
			return nil, false
		}
	}
	return out, true
}

// infoStat returns a reader of c's integer INFO fields.
func infoStat(t *testing.T, c *redis.Client) func(field string) int64 {
	return func(field string) int64 {
		t.Helper()
		info, _ := do(t, c, "INFO", "all")
		v, err := strconv.ParseInt(infoField(t, info.(string), field), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// fillHot fills the key hot through c, max 1 with interval iv: one slot
// now and one reserved iv on, whose time it returns.
func fillHot(t *testing.T, c *redis.Client, iv int64) int64 {
	t.Helper()
	var last int64
	for i := 0; i < 2; i++ {
		p := ints(t, mustDo(t, c, "THROTTLE.ACQUIRE", "hot", iv, 1))
		if p[0] != 1 {
			t.Fatalf("acquire %d: %v", i, p)
		}
		last = p[2]
	}
	return last
}

// deniedHot checks v, a reply to THROTTLE.ACQUIRE hot iv 1 on the key
// fillHot filled (its last slot at last), decided between before and
// after (ms; the nodes of a test share one clock): a denial, max 1, so
// wait = last - now and one slot pending. It returns the problem, or "".
func deniedHot(v any, last, before, after int64) string {
	p, ok := permitInts(v)
	if !ok {
		return fmt.Sprintf("reply %#v", v)
	}
	if p[0] != 0 || p[2] != -1 || p[3] != -1 || p[4] != 1 || p[1] < last-after || p[1] > last-before {
		return fmt.Sprintf("reply %v for last slot %d between %d and %d", p, last, before, after)
	}
	return ""
}

// callHotDenied calls THROTTLE.ACQUIRE hot iv 1 calls times through cc,
// one at a time, and returns the first problem (see deniedHot), or "".
func callHotDenied(ctx context.Context, cc *redis.Client, iv, last int64, calls int) string {
	for j := 0; j < calls; j++ {
		before := time.Now().UnixMilli()
		v, err := cc.Do(ctx, "THROTTLE.ACQUIRE", "hot", iv, 1).Result()
		after := time.Now().UnixMilli()
		if err != nil {
			return err.Error()
		}
		if e := deniedHot(v, last, before, after); e != "" {
			return e
		}
	}
	return ""
}

// TestHotKeyDeniedWithoutTheLog: on a full key, many connections' calls
// are all denied without a log entry, each with the wait_ms and pending
// the log would give at the moment it was decided (cluster time is the
// node's clock here, read before and after each call); once the key has
// room again, the grant goes through the log.
func TestHotKeyDeniedWithoutTheLog(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ctx := context.Background()
	stat := infoStat(t, c)
	const iv = 60000
	last := fillHot(t, c, iv)
	index, denials, fast := stat("raft_last_log_index"), stat("throttle_denials"), stat("throttle_denials_fast")

	const conns, calls = 8, 100
	var wg sync.WaitGroup
	errs := make(chan string, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if e := callHotDenied(ctx, n.Client(), iv, last, calls); e != "" {
				errs <- e
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if got := stat("raft_last_log_index"); got != index {
		t.Errorf("log grew %d -> %d for denials", index, got)
	}
	if got := stat("throttle_denials"); got != denials {
		t.Errorf("replicated denials %d -> %d", denials, got)
	}
	if got := stat("throttle_denials_fast") - fast; got != conns*calls {
		t.Errorf("throttle_denials_fast grew by %d, want %d", got, conns*calls)
	}

	// A key with room again: a short interval, called until granted. Each
	// denial is answered without the log; the grant is a log entry.
	const short = 200
	first := ints(t, mustDo(t, c, "THROTTLE.ACQUIRE", "warm", short, 0))
	if first[0] != 1 || first[1] != 0 {
		t.Fatalf("first acquire %v", first)
	}
	index, grants := stat("raft_last_log_index"), stat("throttle_grants")
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := time.Now().UnixMilli()
		p := ints(t, mustDo(t, c, "THROTTLE.ACQUIRE", "warm", short, 0))
		after := time.Now().UnixMilli()
		if p[0] == 1 {
			if p[2] < first[2]+short {
				t.Fatalf("granted %v before the interval after %d", p, first[2])
			}
			break
		}
		// Denied, max 0: wait = last + interval - now.
		if w := first[2] + short; p[1] < w-after || p[1] > w-before || p[4] != 0 {
			t.Fatalf("denial %v for slot %d between %d and %d", p, first[2], before, after)
		}
		if time.Now().After(deadline) {
			t.Fatal("never granted")
		}
		time.Sleep(time.Duration(p[1]) * time.Millisecond / 2)
	}
	if got := stat("raft_last_log_index"); got <= index {
		t.Errorf("the grant did not go through the log: last index %d -> %d", index, got)
	}
	if got := stat("throttle_grants"); got != grants+1 {
		t.Errorf("throttle_grants %d -> %d, want +1", grants, got)
	}
}

// TestHotKeyThroughFollowerDeniedWithoutTheLog: through a follower, calls
// on a full key are marked by the follower and denied by the leader
// without a log entry (the leader's throttle_denials_fast rises by every
// call, its log does not grow), each with the wait_ms and pending the log
// would give; a call pipelined behind another on the same key from the
// same connection is not marked and goes through the log, denied there
// (the replicated throttle_denials rises by one per pipeline). Spacing
// holds: no call is granted while the key is full.
func TestHotKeyThroughFollowerDeniedWithoutTheLog(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	leader := c.WaitForLeader(30 * time.Second)
	lc := leader.Client()
	fc := c.Followers()[0].Client()
	ctx := context.Background()
	stat := infoStat(t, lc)
	const iv = 60000
	last := fillHot(t, fc, iv)
	term := stat("raft_term")
	index, denials, fast := stat("raft_last_log_index"), stat("throttle_denials"), stat("throttle_denials_fast")

	const conns, calls, pipelines = 4, 50, 10
	var wg sync.WaitGroup
	errs := make(chan string, conns+1)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := c.Followers()[0].Client()
			defer cc.Close()
			if e := callHotDenied(ctx, cc, iv, last, calls); e != "" {
				errs <- e
			}
		}()
	}
	wg.Add(1)
	go func() { // two calls on the key in one pipeline, ten times
		defer wg.Done()
		for j := 0; j < pipelines; j++ {
			pipe := fc.Pipeline()
			a := pipe.Do(ctx, "THROTTLE.ACQUIRE", "hot", iv, 1)
			b := pipe.Do(ctx, "THROTTLE.ACQUIRE", "hot", iv, 1)
			before := time.Now().UnixMilli()
			_, err := pipe.Exec(ctx)
			after := time.Now().UnixMilli()
			if err != nil {
				errs <- err.Error()
				return
			}
			for _, r := range []*redis.Cmd{a, b} {
				if e := deniedHot(r.Val(), last, before, after); e != "" {
					errs <- e
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if got := stat("raft_term"); got != term || c.WaitForLeader(time.Second) != leader {
		// Under load on a busy machine an election may come: calls then
		// go through the log, rightly; what this test counts no longer
		// holds.
		t.Skipf("leadership changed during the run (term %d -> %d)", term, got)
	}
	if got := stat("throttle_denials_fast") - fast; got != conns*calls+pipelines {
		t.Errorf("the leader's throttle_denials_fast grew by %d, want %d (every single call, the first of each pipeline)", got, conns*calls+pipelines)
	}
	if got := stat("throttle_denials") - denials; got != pipelines {
		t.Errorf("replicated denials grew by %d, want %d (the second call of each pipeline)", got, pipelines)
	}
	if got := stat("raft_last_log_index") - index; got < 1 || got > pipelines {
		t.Errorf("the log grew by %d entries, want 1 to %d (the pipelines' second calls)", got, pipelines)
	}
}
