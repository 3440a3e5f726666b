package server_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

const (
	msgOOM     = "OOM command not allowed when used memory > 'maxmemory'."
	msgExecOOM = "EXECABORT Transaction discarded because of: " + msgOOM
)

// TestMaxMemory: with the state full, every route that would create a key
// (a command, a pipeline, a transaction) gets Redis's OOM error, while
// commands on existing keys and reads keep working; RESET and expiry make
// room again.
func TestMaxMemory(t *testing.T) {
	cost := fsm.KeyCost("key:0") // every key here is five bytes
	n := testcluster.StartNode(t, testcluster.Options{MaxMemory: 3 * cost})
	c := n.Client()
	const iv = 60_000
	acquire := func(key string, interval int64) (granted bool, errText string) {
		t.Helper()
		v, e := do(t, c, "THROTTLE.ACQUIRE", key, interval, 5)
		if e != "" {
			return false, e
		}
		return v.([]any)[0].(int64) == 1, ""
	}
	mustGrant := func(key string, interval int64) {
		t.Helper()
		if ok, e := acquire(key, interval); !ok {
			t.Fatalf("ACQUIRE %s: granted=%v %q, want a grant", key, ok, e)
		}
	}
	mustOOM := func(key string) {
		t.Helper()
		if ok, e := acquire(key, iv); e != msgOOM {
			t.Fatalf("ACQUIRE %s: granted=%v %q, want %q", key, ok, e, msgOOM)
		}
	}

	for i := range 3 {
		mustGrant("key:"+strconv.Itoa(i), iv)
	}
	mustOOM("key:3")
	mustGrant("key:0", iv) // existing keys keep working
	if _, e := do(t, c, "THROTTLE.PEEK", "key:3", iv, 5); e != "" {
		t.Fatalf("PEEK of a new key when full: %q", e)
	}
	if v, _ := do(t, c, "DBSIZE"); v != int64(3) {
		t.Fatalf("DBSIZE %v after refusals, want 3", v)
	}
	info := testcluster.ParseInfo(c.Info(context.Background(), "memory").Val())
	want := map[string]string{
		"throttle_state_memory": strconv.FormatInt(3*cost, 10),
		"maxmemory":             strconv.FormatInt(3*cost, 10),
		"maxmemory_policy":      "noeviction",
	}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("INFO %s = %q, want %q", k, info[k], v)
		}
	}

	t.Run("pipeline", func(t *testing.T) {
		before := server.PipelinedTotal(n.Server)
		var cmds [][]any
		for _, k := range []string{"key:1", "key:4", "key:2", "key:5", "key:1", "key:4"} {
			cmds = append(cmds, []any{"THROTTLE.ACQUIRE", k, iv, 5})
		}
		got := pipelineReplies(c, cmds)
		for i, r := range got {
			if existing := i%2 == 0; (existing && !strings.HasPrefix(r, "[1 ")) || (!existing && r != "error: "+msgOOM) {
				t.Fatalf("pipeline replies %q: want grants for existing keys, %q for new ones", got, msgOOM)
			}
		}
		// As in TestPipelinedAcquiresAnswerAsOneByOne: all six normally
		// arrive in one read and are served together.
		if served := server.PipelinedTotal(n.Server) - before; served < 2 {
			t.Fatalf("served %d commands as a pipeline, want (nearly) all 6", served)
		}
	})
	t.Run("transaction", func(t *testing.T) {
		got := txReplies(c, [][]any{
			{"MULTI"}, {"THROTTLE.ACQUIRE", "key:0", iv, 5}, {"THROTTLE.ACQUIRE", "key:5", iv, 5}, {"EXEC"},
			{"MULTI"}, {"THROTTLE.ACQUIRE", "key:0", iv, 5}, {"THROTTLE.RESET", "key:5"}, {"EXEC"},
		})
		want := []string{"OK", "QUEUED", "QUEUED", msgExecOOM, "OK", "QUEUED", "QUEUED", "[granted, 0]"}
		if len(got) != len(want) {
			t.Fatalf("replies %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("replies %q, want %q", got, want)
			}
		}
	})

	// RESET makes room.
	if v, e := do(t, c, "THROTTLE.RESET", "key:2"); v != int64(1) {
		t.Fatalf("RESET: %v %q", v, e)
	}
	mustGrant("key:3", iv)
	mustOOM("key:6")

	// So does expiry, before anything prunes the expired key: the door
	// counts only live keys.
	do(t, c, "THROTTLE.RESET", "key:3")
	mustGrant("key:s", 200)
	testcluster.WaitFor(t, 10*time.Second, "key:s to expire", func() bool {
		return !n.Server.FSM().Exists("key:s", time.Now().UnixMilli())
	})
	mustGrant("key:6", iv)
	mustOOM("key:7")
}

// TestMaxMemoryThroughAFollower: the leader's door refuses new keys sent to
// a follower (the reply is relayed), and every replica accounts the same
// state. Each forwarded ACQUIRE carries the follower's forwarding session
// and a number, remembered for the follower's window (resendWindow) and
// accounted with the keys (fsm.SeqCost).
func TestMaxMemoryThroughAFollower(t *testing.T) {
	seq := fsm.SeqCost("f:0")
	cost := fsm.KeyCost("f:0") + seq
	cl := testcluster.Start(t, 3, testcluster.Options{MaxMemory: 2 * cost})
	cl.WaitForLeader(10 * time.Second)
	c := cl.Followers()[0].Client()
	for i, want := range []string{"", "", msgOOM} {
		_, e := do(t, c, "THROTTLE.ACQUIRE", "f:"+strconv.Itoa(i), 60_000, 1)
		if e != want {
			t.Fatalf("ACQUIRE f:%d through a follower: %q, want %q", i, e, want)
		}
	}
	if _, e := do(t, c, "THROTTLE.ACQUIRE", "f:0", 60_000, 1); e != "" {
		t.Fatalf("existing key through a follower: %q", e)
	}
	testcluster.WaitFor(t, 10*time.Second, "every replica to account both keys and three numbers", func() bool {
		for _, n := range cl.Running() {
			if n.Server.FSM().MemoryUsage(0) != 2*cost+seq || n.Server.FSM().Sequences() != 3 || n.Server.FSM().Tokens() != 0 {
				return false
			}
		}
		return true
	})
}
