package server_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// permitOf runs a command that answers with THROTTLE.ACQUIRE's five
// integers.
func permitOf(t *testing.T, c *redis.Client, args ...any) []int64 {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Int64Slice()
	if err != nil || len(v) != 5 {
		t.Fatalf("%v: %v %v", args, v, err)
	}
	return v
}

// TestCostCancelAndIDContract is the contract of COST, THROTTLE.CANCEL and
// ID (README, "The contract"), on one node.
func TestCostCancelAndIDContract(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	const iv = 60000
	first := permitOf(t, c, "THROTTLE.ACQUIRE", "k", iv, 5, "COST", 3)
	now := first[2]
	tests := []struct {
		name string
		args []any
		want []int64 // granted, valid_at - now, pending; wait checked against valid_at
	}{
		// COST 3 took now, now+iv and now+2iv: the next slot is 3
		// intervals on. Pending counts the slots after now.
		{"after cost 3", []any{"THROTTLE.ACQUIRE", "k", iv, 5}, []int64{1, 3 * iv, 3}},
		// COST 0 answers as PEEK: slot now+4iv, nothing taken.
		{"cost 0 peeks", []any{"THROTTLE.ACQUIRE", "k", iv, 5, "COST", 0}, []int64{1, 4 * iv, 4}},
		{"peek with cost 2", []any{"THROTTLE.PEEK", "k", iv, 6, "COST", 2}, []int64{1, 4 * iv, 5}},
		// 3 pending, COST 2 would make 5 > max 4.
		{"cost beyond max is denied", []any{"THROTTLE.ACQUIRE", "k", iv, 4, "COST", 2}, []int64{0, -1, 3}},
		// Options in any order, the ID remembered.
		{"options in any order", []any{"THROTTLE.ACQUIRE", "k", iv, 9, "ID", "req-1", "SLOP", 0, "COST", 2}, []int64{1, 4 * iv, 5}},
		// A retry with the same ID: the same reply, nothing taken.
		{"retry with the same ID", []any{"THROTTLE.ACQUIRE", "k", iv, 9, "COST", 2, "ID", "req-1"}, []int64{1, 4 * iv, 5}},
		{"the retry took nothing", []any{"THROTTLE.PEEK", "k", iv, 9}, []int64{1, 6 * iv, 6}},
	}
	for _, tt := range tests {
		got := permitOf(t, c, tt.args...)
		rel := got[2]
		if rel >= 0 {
			rel -= now
		}
		if got[0] != tt.want[0] || rel != tt.want[1] || got[4] != tt.want[2] {
			t.Fatalf("%s: %v (valid_at-now %d), want granted %d, valid_at-now %d, pending %d", tt.name, got, rel, tt.want[0], tt.want[1], tt.want[2])
		}
	}
	cancels := []struct {
		name string
		args []any
		want int64
	}{
		{"not the newest", []any{"THROTTLE.CANCEL", "k", now + 3*iv}, 0},
		{"the newest (cost 2) is given back", []any{"THROTTLE.CANCEL", "k", now + 4*iv, "ID", "c-1"}, 1},
		{"its retry answers 1 again", []any{"THROTTLE.CANCEL", "k", now + 4*iv, "ID", "c-1"}, 1},
		{"once given back, the one before cannot be", []any{"THROTTLE.CANCEL", "k", now + 3*iv}, 0},
		{"absent key", []any{"THROTTLE.CANCEL", "nokey", now}, 0},
	}
	for _, tt := range cancels {
		if v, e := do(t, c, tt.args...); e != "" || v.(int64) != tt.want {
			t.Fatalf("%s: %v %q, want %d", tt.name, v, e, tt.want)
		}
	}
	// The next caller gets the slot given back.
	if got := permitOf(t, c, "THROTTLE.ACQUIRE", "k", iv, 9); got[2] != now+4*iv || got[4] != 4 {
		t.Fatalf("after the give-back: %v, want slot %d", got, now+4*iv)
	}

	errs := []struct {
		name string
		args []any
		want string
	}{
		{"cost negative", []any{"THROTTLE.ACQUIRE", "k", 1, 1, "COST", -1}, "ERR COST must be zero or a positive integer, at most max+1"},
		{"cost above max+1", []any{"THROTTLE.ACQUIRE", "k", 1, 1, "COST", 3}, "ERR COST must be zero or a positive integer, at most max+1"},
		{"cost not an integer", []any{"THROTTLE.ACQUIRE", "k", 1, 1, "COST", "x"}, "ERR value is not an integer or out of range"},
		{"cost times interval overflows", []any{"THROTTLE.ACQUIRE", "k", "4611686018427387904", 5, "COST", 2}, "ERR interval, max, SLOP or COST too large: the slot time would overflow int64 milliseconds"},
		{"duplicate option", []any{"THROTTLE.ACQUIRE", "k", 1, 1, "COST", 1, "cost", 1}, "ERR syntax error"},
		{"option without value", []any{"THROTTLE.ACQUIRE", "k", 1, 1, "ID"}, "ERR syntax error"},
		{"empty ID", []any{"THROTTLE.ACQUIRE", "k", 1, 1, "ID", ""}, "ERR ID must be 1 to 64 bytes"},
		{"long ID", []any{"THROTTLE.ACQUIRE", "k", 1, 1, "ID", strings.Repeat("i", 65)}, "ERR ID must be 1 to 64 bytes"},
		{"PEEK takes no ID", []any{"THROTTLE.PEEK", "k", 1, 1, "ID", "x"}, "ERR syntax error"},
		{"cancel arity", []any{"THROTTLE.CANCEL", "k"}, "ERR wrong number of arguments for 'throttle.cancel' command"},
		{"cancel valid_at", []any{"THROTTLE.CANCEL", "k", "soon"}, "ERR value is not an integer or out of range"},
		{"cancel option", []any{"THROTTLE.CANCEL", "k", 1, "COST", 1}, "ERR syntax error"},
		{"cancel extra", []any{"THROTTLE.CANCEL", "k", 1, "ID"}, "ERR syntax error"},
		{"cancel empty key", []any{"THROTTLE.CANCEL", "", 1}, "ERR invalid key: keys must be 1 to 65536 bytes"},
	}
	for _, tt := range errs {
		if v, got := do(t, c, tt.args...); got != tt.want {
			t.Errorf("%s: got %v %q, want %q", tt.name, v, got, tt.want)
		}
	}
}

// TestCostInTransactionsAndPipelines: COST and CANCEL are queued in MULTI
// and applied in EXEC's one entry; COST 0 in MULTI is refused in its
// place; a pipeline with a COST 0 answers it in order.
func TestCostInTransactionsAndPipelines(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ctx := context.Background()
	var acq, peek, cancel, acq2 *redis.Cmd
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		acq = p.Do(ctx, "THROTTLE.ACQUIRE", "t", 60000, 3, "COST", 2)
		peek = p.Do(ctx, "THROTTLE.ACQUIRE", "t", 60000, 3, "COST", 0)
		cancel = p.Do(ctx, "THROTTLE.CANCEL", "t", 0) // not the newest
		acq2 = p.Do(ctx, "THROTTLE.ACQUIRE", "t", 60000, 3)
		return nil
	})
	if err == nil || peek.Err() == nil || !strings.Contains(peek.Err().Error(), "COST 0 (a peek) cannot run in a transaction") {
		t.Fatalf("EXEC: %v; COST 0 in MULTI: %v", err, peek.Err())
	}
	a, _ := acq.Int64Slice()
	a2, _ := acq2.Int64Slice()
	if v, _ := cancel.Int64(); len(a) != 5 || len(a2) != 5 || a[4] != 1 || a2[2] != a[2]+120000 || v != 0 {
		t.Fatalf("transaction replies: %v %v cancel %v", a, a2, cancel.Val())
	}
	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "THROTTLE.ACQUIRE", "p", 60000, 5)
		p.Do(ctx, "THROTTLE.ACQUIRE", "p", 60000, 5, "COST", 0)
		p.Do(ctx, "THROTTLE.ACQUIRE", "p", 60000, 5, "COST", 2)
		p.Do(ctx, "THROTTLE.ACQUIRE", "p", 60000, 5, "COST", 0)
		return nil
	})
	var got [][]int64
	for _, cmd := range cmds {
		v, err := cmd.(*redis.Cmd).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	base := got[0][2]
	// Each peek sees exactly the commands before it.
	if got[1][2] != base+60000 || got[2][2] != base+60000 || got[3][2] != base+180000 || got[3][4] != 3 {
		t.Fatalf("pipeline: %v", got)
	}
}

// TestForwardedIDAndResend checks retries through a follower: a client's
// ID is kept when its command is forwarded, and a forwarded ACQUIRE whose
// reply was lost after the leader applied it is sent again with the token
// the follower added and answered with the first reply, taking one slot.
func TestForwardedIDAndResend(t *testing.T) {
	var leaderAddr atomic.Value
	lossy := newReplyDropper(t, func() string { return leaderAddr.Load().(string) })
	c := testcluster.Start(t, 2, testcluster.Options{
		LeaderWait: 20 * time.Second,
		Configure: func(cfg *server.Config) {
			if cfg.ID == "n2" {
				cfg.DebugPeerRESPAddrs = map[string]string{"n1": lossy.addr()}
			}
		},
	})
	leader := c.Leader()
	if leader == nil || leader.ID() != "n1" {
		t.Fatalf("leader %v, want n1", leader)
	}
	leaderAddr.Store(leader.Addr())
	follower := c.Nodes[1].Client()
	lc := leader.Client()

	got := permitOf(t, follower, "THROTTLE.ACQUIRE", "r", 60000, 5)
	if got[0] != 1 || got[1] != 0 {
		t.Fatalf("forwarded acquire: %v", got)
	}
	if lossy.proposals.Load() != 2 {
		t.Fatalf("the follower sent %d proposals, want 2 (the first's reply was dropped)", lossy.proposals.Load())
	}
	if st := leader.Server.FSM().Stats(); st.Grants != 1 || st.Reservations != 0 {
		t.Fatalf("leader stats %+v: the resend took a second slot", st)
	}
	if next := permitOf(t, lc, "THROTTLE.ACQUIRE", "r", 60000, 5); next[2] != got[2]+60000 {
		t.Fatalf("next slot %d, want %d: the resend took a slot", next[2], got[2]+60000)
	}
	// The client's own ID travels: the same reply through either node.
	a := permitOf(t, lc, "THROTTLE.ACQUIRE", "r", 60000, 5, "ID", "x")
	b := permitOf(t, follower, "THROTTLE.ACQUIRE", "r", 60000, 5, "ID", "x")
	if !slicesEqual(a, b) {
		t.Fatalf("same ID through the follower: %v, through the leader %v", b, a)
	}
	// CANCEL through the follower (forwarded with a token of its own).
	if v, e := do(t, follower, "THROTTLE.CANCEL", "r", a[2]); e != "" || v.(int64) != 1 {
		t.Fatalf("CANCEL through the follower: %v %q", v, e)
	}
	if again := permitOf(t, lc, "THROTTLE.ACQUIRE", "r", 60000, 5); again[2] != a[2] {
		t.Fatalf("after the give-back the next slot is %d, want %d", again[2], a[2])
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// replyDropper proxies a follower's forwarding connections to the leader;
// on the first connection, once a RAFT.PROPOSE has passed, it closes the
// connection instead of relaying the leader's reply: a reply lost after
// the leader committed.
type replyDropper struct {
	ln        net.Listener
	target    func() string
	conns     atomic.Int64
	proposals atomic.Int64
	wg        sync.WaitGroup
}

func newReplyDropper(t *testing.T, target func() string) *replyDropper {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &replyDropper{ln: ln, target: target}
	d.wg.Add(1)
	go d.accept()
	t.Cleanup(func() { ln.Close(); d.wg.Wait() })
	return d
}

func (d *replyDropper) addr() string { return d.ln.Addr().String() }

func (d *replyDropper) accept() {
	defer d.wg.Done()
	for {
		cl, err := d.ln.Accept()
		if err != nil {
			return
		}
		d.wg.Add(1)
		go d.serve(cl, d.conns.Add(1) == 1)
	}
}

func (d *replyDropper) serve(cl net.Conn, drop bool) {
	defer d.wg.Done()
	defer cl.Close()
	up, err := net.DialTimeout("tcp", d.target(), 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	var proposed atomic.Bool
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := cl.Read(buf)
			if n > 0 {
				// The forwarder's probe of a new connection (an empty
				// version 2 request) proposes nothing: not counted, and
				// its reply is not the one to lose.
				probes := bytes.Count(buf[:n], []byte("RAFT.PROPOSE\r\n$2\r\n\x02\x00\r\n"))
				if c := bytes.Count(buf[:n], []byte("RAFT.PROPOSE")) - probes; c > 0 {
					d.proposals.Add(int64(c))
					proposed.Store(true)
				}
				if _, werr := up.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				up.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if drop && proposed.Load() {
				return // the reply to the proposal is lost
			}
			if _, werr := cl.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

// TestTokensSurviveRestart: a token granted before a snapshot and one
// granted after it (in the log only) are both remembered by the node after
// a restart, and its digest is what it was.
func TestTokensSurviveRestart(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	before := permitOf(t, c, "THROTTLE.ACQUIRE", "s", 60000, 5, "ID", "in-snapshot")
	if err := c.Do(context.Background(), "RAFT.SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	after := permitOf(t, c, "THROTTLE.ACQUIRE", "s", 60000, 5, "ID", "in-log", "COST", 2)
	n.Restart(false)
	c = n.Client()
	testcluster.WaitFor(t, 10*time.Second, "the restarted node to lead", func() bool {
		_, e := do(t, c, "THROTTLE.PEEK", "s", 60000, 5)
		return e == ""
	})
	for _, tc := range []struct {
		args []any
		want []int64
	}{
		{[]any{"THROTTLE.ACQUIRE", "s", 60000, 5, "ID", "in-snapshot"}, before},
		{[]any{"THROTTLE.ACQUIRE", "s", 60000, 5, "ID", "in-log", "COST", 2}, after},
	} {
		if got := permitOf(t, c, tc.args...); !slicesEqual(got, tc.want) {
			t.Fatalf("%v after a restart: %v, want the first reply %v", tc.args, got, tc.want)
		}
	}
	// Nothing was taken by the retries: the next slot follows the COST 2.
	if next := permitOf(t, c, "THROTTLE.ACQUIRE", "s", 60000, 5); next[2] != after[2]+2*60000 {
		t.Fatalf("next slot %d, want %d", next[2], after[2]+2*60000)
	}
}
