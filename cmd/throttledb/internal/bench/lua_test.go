package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// startRedis starts redis-server on a free loopback port with its files in
// t.TempDir(), stops it (by its own process handle) at cleanup, and returns
// its address. It skips the test when redis-server is not installed.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install -y redis-server): skipping the Redis + Lua comparison")
	}
	// redis-server cannot be given port 0: take a port the OS chose, and
	// try again in the rare case someone else takes it first.
	for attempt := 1; ; attempt++ {
		addr := freePort(t)
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--dir", t.TempDir(),
			"--save", "", "--appendonly", "no", "--daemonize", "no")
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
		up := testcluster.Poll(10*time.Second, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			return c.Ping(context.Background()).Err() == nil
		})
		c.Close()
		select {
		case <-exited:
			if attempt < 3 {
				continue
			}
			t.Fatalf("redis-server exited:\n%s", log.String())
		default:
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		if !up {
			t.Fatalf("redis-server did not answer PING within 10s:\n%s", log.String())
		}
		return addr
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// reply is a THROTTLE.ACQUIRE reply or error text.
type reply struct {
	v   []int64
	err string
}

func (r reply) String() string {
	if r.err != "" {
		return "error " + r.err
	}
	return fmt.Sprint(r.v)
}

// sequence sends calls back to back through send and returns the replies
// and how long they took.
func sequence(t *testing.T, send func(args ...any) *redis.Cmd, calls []string) ([]reply, int64) {
	t.Helper()
	start := time.Now()
	var out []reply
	for _, call := range calls {
		if ms, ok := strings.CutPrefix(call, "pause "); ok {
			// Let the key's stored interval pass on both servers' clocks.
			d, _ := time.ParseDuration(ms + "ms")
			from := time.Now()
			testcluster.WaitFor(t, 10*time.Second, call, func() bool { return time.Since(from) > d })
			out = append(out, reply{})
			continue
		}
		var args []any
		for _, f := range strings.Fields(call) {
			args = append(args, f)
		}
		v, err := send(args...).Int64Slice()
		switch {
		case err == nil:
			out = append(out, reply{v: v})
		case strings.HasPrefix(err.Error(), "ERR "):
			out = append(out, reply{err: err.Error()})
		default:
			t.Fatalf("%q: %v", call, err)
		}
	}
	return out, time.Since(start).Milliseconds()
}

// TestLuaMatchesThrottleDB sends the same sequences of calls to throttledb
// and to Redis running the Lua script, and compares the replies field by
// field. The intervals are long, so time barely moves during a sequence:
// granted, pending and slop must be equal, and wait_ms and the slot
// (relative to the first grant's) equal but for how long the sequences took
// (the servers' clocks move on between calls, and differ).
func TestLuaMatchesThrottleDB(t *testing.T) {
	redisAddr := startRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1})
	defer rdb.Close()
	ctx := context.Background()
	sha, err := rdb.ScriptLoad(ctx, LuaScript()).Result()
	if err != nil {
		t.Fatalf("SCRIPT LOAD: %v", err)
	}
	tdb := testcluster.StartNode(t, testcluster.Options{}).Client()

	for _, tc := range []struct {
		name  string
		key   string // default: the case's name
		calls []string
	}{
		{"exercise: now, two reservations, denied", "", []string{"60000 2", "60000 2", "60000 2", "60000 2"}},
		{"max 0: now, then denied until the interval passes", "", []string{"60000 0", "60000 0", "60000 0"}},
		{"slop", "", []string{"60000 2 SLOP 0", "60000 2 slop 5000", "60000 2 SLOP 7", "60000 2 SLOP 7"}},
		{"default slop", "", []string{"60005 3", "99999 3"}},
		// Alone on its key: a 5 ms interval behind long reservations would
		// make pending depend on each server's clock to the millisecond.
		{"default slop of a tiny interval", "", []string{"5 3"}},
		{"mixed intervals", "", []string{"60000 3", "30000 3", "120000 3", "60000 3", "60000 3", "300000 9"}},
		{"large max", "", []string{"60000 1000", "60000 1000", "60000 1000"}},
		{"signed numbers", "", []string{"+60000 +1", "60000 1", "60000 -0"}},
		// A second apart, so that the second call finds the first's slot
		// live even on a busy machine; the pause outlasts both slots.
		{"expired by its stored interval", "", []string{"1000 5", "1000 5", "pause 2500", "60000 5", "60000 5"}},
		{"errors", "", []string{"0 2", "-5 2", "60000 -1", "x 2", "60000 1.5", "60000 2 SLOP -1",
			"60000 2 FOO 1", "60000 2 SLOP x", "60000", "60000 2 SLOP", "60000 2 SLOP 1 2", "0 -1"}},
		{"empty key", "-", []string{"60000 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			switch key {
			case "":
				key = "eq:" + tc.name
			case "-":
				key = ""
			}
			want, tookTDB := sequence(t, func(args ...any) *redis.Cmd {
				return tdb.Do(ctx, append([]any{"THROTTLE.ACQUIRE", key}, args...)...)
			}, tc.calls)
			got, tookLua := sequence(t, func(args ...any) *redis.Cmd {
				return rdb.Do(ctx, append([]any{"EVALSHA", sha, 1, key}, args...)...)
			}, tc.calls)
			compareReplies(t, tc.calls, want, got, max(tookTDB, tookLua)+2)
		})
	}
}

// compareReplies compares throttledb's replies (want) with the script's
// (got); wait_ms and relative slots may differ by up to tol ms.
func compareReplies(t *testing.T, calls []string, want, got []reply, tol int64) {
	t.Helper()
	var t0want, t0got int64 // each server's first granted slot
	for i := range calls {
		w, g := want[i], got[i]
		if w.v == nil && w.err == "" {
			continue // a pause
		}
		if w.err != "" || g.err != "" {
			if w.err != g.err {
				t.Errorf("call %d %q: throttledb %v, Lua %v", i, calls[i], w, g)
			}
			continue
		}
		if t0want == 0 && w.v[0] == 1 {
			t0want = w.v[2]
		}
		if t0got == 0 && g.v[0] == 1 {
			t0got = g.v[2]
		}
		rel := func(v, t0 int64) int64 {
			if v < 0 {
				return v
			}
			return v - t0
		}
		slop := func(r reply) int64 { return r.v[3] - r.v[2] }
		near := func(a, b int64) bool { return a-b <= tol && b-a <= tol }
		if w.v[0] != g.v[0] || w.v[4] != g.v[4] || slop(w) != slop(g) ||
			!near(rel(w.v[2], t0want), rel(g.v[2], t0got)) || !near(w.v[1], g.v[1]) {
			t.Errorf("call %d %q: throttledb %v, Lua %v (want equal granted, pending and slop; wait and slot relative to the first grant within %d ms)",
				i, calls[i], w, g, tol)
		}
	}
}

func TestRunRedisLua(t *testing.T) {
	addr := startRedis(t)
	for _, pipeline := range []int{1, 4} {
		t.Run(fmt.Sprintf("pipeline%d", pipeline), func(t *testing.T) {
			var out bytes.Buffer
			res, err := Run(context.Background(), shortRun([]string{addr}, TargetRedisLua, pipeline), &out)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			checkResult(t, res, out.String())
		})
	}
}
