package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

type raftLog = raft.Log

// acqN is acq with a cost.
func acqN(key string, interval, max, cost int64) Acquire {
	a := acq(key, interval, max)
	a.Cost = cost
	return a
}

// step is one entry of a table test: the commands applied at now and the
// results wanted.
type step struct {
	now  int64
	cmds []Command
	want []Result
}

func runSteps(t *testing.T, f *FSM, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := apply(t, f, s.now, s.cmds...)
		for j := range got {
			if !errors.Is(got[j].Err, s.want[j].Err) || got[j].Permit != s.want[j].Permit || got[j].Count != s.want[j].Count {
				t.Fatalf("step %d (now %d) command %d %+v: got %+v, want %+v", i, s.now, j, s.cmds[j], got[j], s.want[j])
			}
		}
	}
}

func granted(wait, valid, slop, pending int64) Result {
	return Result{Permit: Permit{Granted: true, WaitMs: wait, ValidAt: valid, ExpiresAt: valid + slop, Pending: pending}}
}

func denied(wait, pending int64) Result {
	return Result{Permit: Permit{WaitMs: wait, ValidAt: -1, ExpiresAt: -1, Pending: pending}}
}

// TestAcquireCost checks COST n against the rule in decide's comment: n
// consecutive slots, the next caller's n intervals later, granted only if
// at most max slots are pending afterwards.
func TestAcquireCost(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"cost 1 is the plain acquire", []step{
			{1000, []Command{acqN("k", 100, 2, 1), acq("k", 100, 2)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
		}},
		{"cost 3 on an absent key takes now and two future slots", []step{
			{1000, []Command{acqN("k", 100, 2, 3)}, []Result{granted(0, 1000, 10, 2)}},
			// The next caller's slot is 3 intervals later: 1300, pending 3.
			{1000, []Command{acqN("k", 100, 3, 1)}, []Result{granted(300, 1300, 10, 3)}},
		}},
		{"cost max+1 on an absent key is granted, the next one is not", []step{
			{1000, []Command{acqN("k", 100, 2, 3), acqN("k", 100, 2, 1)}, []Result{granted(0, 1000, 10, 2), denied(100, 2)}},
			// At 1100 the slot 1300 would leave 2 pending: granted.
			{1100, []Command{acqN("k", 100, 2, 1)}, []Result{granted(200, 1300, 10, 2)}},
		}},
		{"a reservation of cost 2 needs two free places among max", []step{
			{1000, []Command{acq("k", 100, 5)}, []Result{granted(0, 1000, 10, 0)}},
			{1000, []Command{acqN("k", 100, 2, 2)}, []Result{granted(100, 1100, 10, 2)}},
			// 2 pending, cost 2 would make 4 > max 3: denied; it fits once
			// t >= last + (n-max)·iv = 1200 + (2-3)·100 = 1100.
			{1050, []Command{acqN("k", 100, 3, 2)}, []Result{denied(50, 2)}},
			{1100, []Command{acqN("k", 100, 3, 2)}, []Result{granted(200, 1300, 10, 3)}},
		}},
		{"the denial's wait is exact", []step{
			{1000, []Command{acqN("k", 10, 9, 10)}, []Result{granted(0, 1000, 1, 9)}},
			// last 1090; cost 4 with max 9 fits from 1090 + (4-9)·10 = 1040.
			{1000, []Command{acqN("k", 10, 9, 4)}, []Result{denied(40, 9)}},
			{1039, []Command{acqN("k", 10, 9, 4)}, []Result{denied(1, 6)}},
			{1040, []Command{acqN("k", 10, 9, 4)}, []Result{granted(60, 1100, 1, 9)}},
		}},
		{"after the interval has passed, cost n starts now", []step{
			{1000, []Command{acqN("k", 100, 1, 2)}, []Result{granted(0, 1000, 10, 1)}},
			{1200, []Command{acqN("k", 100, 1, 2)}, []Result{granted(0, 1200, 10, 1)}},
		}},
		{"max 0 allows cost 1 only", []step{
			{1000, []Command{acqN("k", 100, 0, 2)}, []Result{{Err: ErrInvalidCost}}},
			{1000, []Command{acqN("k", 100, 0, 1)}, []Result{granted(0, 1000, 10, 0)}},
		}},
		{"invalid costs change nothing", []step{
			{1000, []Command{acqN("k", 100, 5, -1), acqN("k", 100, 5, 7), acqN("k", math.MaxInt64/2, 5, 3)},
				[]Result{{Err: ErrInvalidCost}, {Err: ErrInvalidCost}, {Err: ErrOverflow}}},
			{1000, []Command{acqN("k", 100, 5, 6)}, []Result{granted(0, 1000, 10, 5)}},
		}},
		{"a last slot that would overflow is refused", []step{
			{1000, []Command{acqN("k", math.MaxInt64/3, 3, 3)}, []Result{{Err: ErrOverflow}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, New(Config{}), tt.steps)
		})
	}
}

// TestCostEqualsRepeatedAcquires checks that a granted COST n takes the
// same slots as n acquires of cost 1 in a row with the same max (each of
// them granted), for many states.
func TestCostEqualsRepeatedAcquires(t *testing.T) {
	for _, pre := range []int{0, 1, 2, 4} {
		for _, at := range []int64{1000, 1050, 1100, 1400} {
			for n := int64(1); n <= 5; n++ {
				for max := n - 1; max <= 6; max++ {
					one, many := New(Config{}), New(Config{})
					for i := 0; i < pre; i++ {
						apply(t, one, 1000, acq("k", 100, 10))
						apply(t, many, 1000, acq("k", 100, 10))
					}
					r := apply(t, one, at, acqN("k", 100, max, n))[0]
					var rs []Result
					for i := int64(0); i < n; i++ {
						rs = append(rs, apply(t, many, at, acq("k", 100, max))[0])
					}
					allGranted := true
					for _, x := range rs {
						allGranted = allGranted && x.Permit.Granted
					}
					name := strconv.Itoa(pre) + "/" + strconv.FormatInt(at, 10) + "/" + strconv.FormatInt(n, 10) + "/" + strconv.FormatInt(max, 10)
					if r.Permit.Granted != allGranted {
						t.Fatalf("%s: cost %d granted %v, %d acquires all granted %v", name, n, r.Permit.Granted, n, allGranted)
					}
					if !allGranted {
						continue
					}
					if r.Permit.ValidAt != rs[0].Permit.ValidAt || r.Permit.Pending != rs[n-1].Permit.Pending {
						t.Fatalf("%s: cost %d gave %+v, acquires gave first %+v last %+v", name, n, r.Permit, rs[0].Permit, rs[n-1].Permit)
					}
					if !reflect.DeepEqual(one.Keys(0), many.Keys(0)) {
						t.Fatalf("%s: states differ: %v vs %v", name, one.Keys(0), many.Keys(0))
					}
				}
			}
		}
	}
}

func cancel(key string, validAt int64) Cancel { return Cancel{Key: key, ValidAt: validAt} }

// TestCancel checks THROTTLE.CANCEL: the newest grant, identified by its
// first slot, is given back whole, and the next caller gets that slot.
func TestCancel(t *testing.T) {
	one, zero := Result{Count: 1}, Result{}
	tests := []struct {
		name  string
		steps []step
	}{
		{"the newest reservation is given back and taken again", []step{
			{1000, []Command{acq("k", 100, 5), acq("k", 100, 5)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			{1010, []Command{cancel("k", 1100), acq("k", 100, 5)}, []Result{one, granted(90, 1100, 10, 1)}},
		}},
		{"an older slot is not the newest: 0", []step{
			{1000, []Command{acq("k", 100, 5), acq("k", 100, 5)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			{1010, []Command{cancel("k", 1000), cancel("k", 1200), cancel("other", 1100)}, []Result{zero, zero, zero}},
			{1010, []Command{acq("k", 100, 5)}, []Result{granted(190, 1200, 10, 2)}},
		}},
		{"cost 3 is given back whole", []step{
			{1000, []Command{acq("k", 100, 5), acqN("k", 100, 5, 3)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 3)}},
			// Its last slot is not its first: 0.
			{1000, []Command{cancel("k", 1300)}, []Result{zero}},
			{1000, []Command{cancel("k", 1100), acq("k", 100, 5)}, []Result{one, granted(100, 1100, 10, 1)}},
		}},
		{"only the newest grant can be given back", []step{
			{1000, []Command{acq("k", 100, 5), acq("k", 100, 5), acq("k", 100, 5)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1), granted(200, 1200, 10, 2)}},
			{1000, []Command{cancel("k", 1200), cancel("k", 1100)}, []Result{one, zero}},
			{1000, []Command{acq("k", 100, 5)}, []Result{granted(200, 1200, 10, 2)}},
		}},
		{"a slot already open is given back: the key is as if absent", []step{
			{1000, []Command{acq("k", 100, 0)}, []Result{granted(0, 1000, 10, 0)}},
			{1020, []Command{cancel("k", 1000), acq("k", 100, 0)}, []Result{one, granted(0, 1020, 10, 0)}},
		}},
		{"a reserved slot that has opened since is given back too", []step{
			{1000, []Command{acq("k", 100, 1), acq("k", 100, 1)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			{1150, []Command{cancel("k", 1100), acq("k", 100, 0)}, []Result{one, granted(0, 1150, 10, 0)}},
		}},
		{"an expired key has nothing to give back", []step{
			{1000, []Command{acq("k", 100, 1)}, []Result{granted(0, 1000, 10, 0)}},
			{1100, []Command{cancel("k", 1000)}, []Result{zero}},
		}},
		{"invalid arguments", []step{
			{1000, []Command{cancel("", 1), Cancel{Key: "k", Token: strings.Repeat("t", MaxTokenLen+1)}}, []Result{{Err: ErrInvalidKey}, {Err: ErrInvalidToken}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, New(Config{}), tt.steps)
		})
	}
}

// TestTokens checks idempotent retries: a repeated token for the same key
// within TokenWindow answers as the first time and takes nothing; other
// keys, other kinds and later times are independent.
func TestTokens(t *testing.T) {
	withTok := func(a Acquire, tok string) Acquire { a.Token = tok; return a }
	withWin := func(a Acquire, tok string, window int64) Acquire { a.Token, a.TokenWindow = tok, window; return a }
	tests := []struct {
		name  string
		steps []step
	}{
		{"a retry gets the original reply", []step{
			{1000, []Command{withTok(acq("k", 100, 5), "t1"), withTok(acq("k", 100, 5), "t1")}, []Result{granted(0, 1000, 10, 0), granted(0, 1000, 10, 0)}},
			// Later, even with other arguments: the same reply.
			{1050, []Command{withTok(acq("k", 7, 0), "t1")}, []Result{granted(0, 1000, 10, 0)}},
			// No slot was taken by the retries.
			{1050, []Command{acq("k", 100, 5)}, []Result{granted(50, 1100, 10, 1)}},
		}},
		{"tokens are per key", []step{
			{1000, []Command{withTok(acq("a", 100, 5), "t"), withTok(acq("b", 100, 5), "t")}, []Result{granted(0, 1000, 10, 0), granted(0, 1000, 10, 0)}},
			{1000, []Command{withTok(acq("a", 100, 5), "u")}, []Result{granted(100, 1100, 10, 1)}},
		}},
		{"a denial is not remembered", []step{
			{1000, []Command{acq("k", 100, 0), withTok(acq("k", 100, 0), "t")}, []Result{granted(0, 1000, 10, 0), denied(100, 0)}},
			{1100, []Command{withTok(acq("k", 100, 0), "t")}, []Result{granted(0, 1100, 10, 0)}},
		}},
		{"the window ends after TokenWindow", []step{
			{1000, []Command{withTok(acq("k", 100, 5), "t")}, []Result{granted(0, 1000, 10, 0)}},
			{1000 + TokenWindow - 1, []Command{withTok(acq("k", 100, 5), "t")}, []Result{granted(0, 1000, 10, 0)}},
			{1000 + TokenWindow, []Command{withTok(acq("k", 100, 5), "t")}, []Result{granted(0, 1000+TokenWindow, 10, 0)}},
		}},
		{"a token survives a reset of its key", []step{
			{1000, []Command{withTok(acq("k", 100, 5), "t"), Reset{Keys: []string{"k"}}, withTok(acq("k", 100, 5), "t")}, []Result{granted(0, 1000, 10, 0), one(), granted(0, 1000, 10, 0)}},
		}},
		{"a cancel's retry does not give back another caller's slot", []step{
			{1000, []Command{acq("k", 100, 5), withTok(acq("k", 100, 5), "a")}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			{1010, []Command{Cancel{Key: "k", ValidAt: 1100, Token: "a"}, acq("k", 100, 5)}, []Result{one(), granted(90, 1100, 10, 1)}},
			// The retry answers 1 again; the other caller keeps 1100.
			{1020, []Command{Cancel{Key: "k", ValidAt: 1100, Token: "a"}, acq("k", 100, 5)}, []Result{one(), granted(180, 1200, 10, 2)}},
			// The acquire's token is remembered apart from the cancel's.
			{1020, []Command{withTok(acq("k", 100, 5), "a")}, []Result{granted(100, 1100, 10, 1)}},
		}},
		{"a cancel that gave nothing back is not remembered", []step{
			{1000, []Command{acq("k", 100, 5), Cancel{Key: "k", ValidAt: 1100, Token: "c"}, acq("k", 100, 5)}, []Result{granted(0, 1000, 10, 0), {}, granted(100, 1100, 10, 1)}},
			{1000, []Command{Cancel{Key: "k", ValidAt: 1100, Token: "c"}}, []Result{one()}},
		}},
		{"a token kept for a window of its own", []step{
			{1000, []Command{withWin(acq("k", 100, 5), "t", 500), withTok(acq("k", 100, 5), "u")}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			{1499, []Command{withWin(acq("k", 100, 5), "t", 500)}, []Result{granted(0, 1000, 10, 0)}},
			// t's window has ended, u's (TokenWindow) has not.
			{1500, []Command{withWin(acq("k", 100, 5), "t", 500), withTok(acq("k", 100, 5), "u")}, []Result{granted(0, 1500, 10, 0), granted(100, 1100, 10, 1)}},
		}},
		{"windows of their own end in their own order", []step{
			{1000, []Command{withWin(acq("a", 100, 5), "t", 900), withWin(acq("b", 100, 5), "t", 300), Cancel{Key: "b", ValidAt: 1000, Token: "c", TokenWindow: 600}}, []Result{granted(0, 1000, 10, 0), granted(0, 1000, 10, 0), one()}},
			{1300, []Command{withWin(acq("a", 100, 5), "t", 900), withWin(acq("b", 100, 5), "t", 300), Cancel{Key: "b", ValidAt: 1000, Token: "c", TokenWindow: 600}}, []Result{granted(0, 1000, 10, 0), granted(0, 1300, 10, 0), one()}},
			// c's window has ended: the give-back is decided again, and b's
			// grant of 1300 has expired by now.
			{1600, []Command{withWin(acq("a", 100, 5), "t", 900), Cancel{Key: "b", ValidAt: 1300, Token: "c", TokenWindow: 600}}, []Result{granted(0, 1000, 10, 0), {}}},
		}},
		{"a window above TokenWindow or below 0 is refused", []step{
			{1000, []Command{withWin(acq("k", 100, 5), "t", TokenWindow+1), withWin(acq("k", 100, 5), "t", -1), Cancel{Key: "k", ValidAt: 1000, Token: "c", TokenWindow: -5}}, []Result{{Err: ErrInvalidToken}, {Err: ErrInvalidToken}, {Err: ErrInvalidToken}}},
			{1000, []Command{withWin(acq("k", 100, 5), "t", TokenWindow)}, []Result{granted(0, 1000, 10, 0)}},
		}},
		{"an invalid acquire is refused before its token is looked up", []step{
			{1000, []Command{withTok(acq("k", 100, 5), "t"), withTok(acq("k", 0, 5), "t")}, []Result{granted(0, 1000, 10, 0), {Err: ErrInvalidInterval}}},
			{1000, []Command{withTok(acq("k", 100, 5), strings.Repeat("x", MaxTokenLen+1))}, []Result{{Err: ErrInvalidToken}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, New(Config{}), tt.steps)
		})
	}
}

func one() Result { return Result{Count: 1} }

// TestTokensSurviveSnapshots checks that tokens and the spans CANCEL needs
// are in snapshots: a restored replica answers retries and give-backs as
// the original does, accounts the same memory and has the same digest.
func TestTokensSurviveSnapshots(t *testing.T) {
	f := New(Config{})
	applyAt(t, f, 1, 1000, Acquire{Key: "k", Interval: 100, Max: 5, Slop: 10, Token: "t1"},
		Acquire{Key: "k", Interval: 100, Max: 5, Slop: 10, Cost: 3, Token: "t2"},
		Acquire{Key: "j", Interval: 100, Max: 5, Slop: 10},
		Acquire{Key: "j", Interval: 100, Max: 5, Slop: 10})
	applyAt(t, f, 2, 1001, Cancel{Key: "j", ValidAt: 1100, Token: "c"},
		Acquire{Key: "w", Interval: 100, Max: 5, Slop: 10, Token: "w1", TokenWindow: 5000},
		Acquire{Key: "w", Interval: 100, Max: 5, Slop: 10, Token: "w2", TokenWindow: 3000})
	var buf bytes.Buffer
	if err := f.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	g := New(Config{})
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if g.Tokens() != 5 || g.MemoryUsage(0) != f.MemoryUsage(0) {
		t.Fatalf("restored %d tokens, memory %d; want 5, %d", g.Tokens(), g.MemoryUsage(0), f.MemoryUsage(0))
	}
	if _, fs := f.Digest(); func() bool { _, gs := g.Digest(); return gs != fs }() {
		t.Fatal("restored digest differs")
	}
	next := []Command{
		Acquire{Key: "k", Interval: 100, Max: 5, Slop: 10, Token: "t2"},
		Cancel{Key: "j", ValidAt: 1100, Token: "c"},
		Cancel{Key: "k", ValidAt: 1100},
		Acquire{Key: "k", Interval: 100, Max: 5, Slop: 10},
		Acquire{Key: "w", Interval: 100, Max: 5, Slop: 10, Token: "w2", TokenWindow: 3000},
	}
	for i, r := range [][]Result{apply(t, f, 1002, next...), apply(t, g, 1002, next...)} {
		want := []Result{granted(100, 1100, 10, 3), one(), one(), granted(98, 1100, 10, 1), granted(100, 1101, 10, 1)}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("replica %d: %+v, want %+v", i, r, want)
		}
	}
	// After w2's window (3 s from 1001) and before w1's, on both replicas.
	for _, m := range []*FSM{f, g} {
		applyAt(t, m, 9, 4001)
		if m.Tokens() != 4 {
			t.Fatalf("%d tokens after w2's window, want 4", m.Tokens())
		}
	}
	if _, fs := f.Digest(); func() bool { _, gs := g.Digest(); return gs != fs }() {
		t.Fatal("digests differ after a window ended")
	}
}

// TestTokenMemory checks that tokens are accounted for while they are
// remembered and no longer once their window has passed, and that the
// digest sees them.
func TestTokenMemory(t *testing.T) {
	f := New(Config{})
	applyAt(t, f, 1, 1000, Acquire{Key: "k", Interval: 10, Max: 0, Slop: 1, Token: "tok"})
	if got, want := f.MemoryUsage(1000), KeyCost("k")+TokenCost("k", "tok"); got != want {
		t.Fatalf("memory %d, want %d", got, want)
	}
	// The key has expired; the token has not.
	if got, want := f.MemoryUsage(1010), TokenCost("k", "tok"); got != want {
		t.Fatalf("memory at 1010 %d, want %d", got, want)
	}
	if got := f.MemoryUsage(1000 + TokenWindow); got != 0 {
		t.Fatalf("memory after the window %d, want 0 (not pruned yet, not counted)", got)
	}
	_, before := f.Digest()
	applyAt(t, f, 2, 1000+TokenWindow, Acquire{Key: "other", Interval: 10, Max: 0, Slop: 1})
	if f.Tokens() != 0 || f.tokens.mem != 0 || f.tokens.n != 0 || f.tokens.first != f.tokens.last {
		t.Fatalf("window passed: %d tokens, %d bytes, queue %d, more than one chunk", f.Tokens(), f.tokens.mem, f.tokens.n)
	}
	// Digests differ with and without a token, all else equal.
	a, b := New(Config{}), New(Config{})
	applyAt(t, a, 1, 1000, Acquire{Key: "k", Interval: 10, Max: 0, Slop: 1, Token: "x"})
	applyAt(t, b, 1, 1000, Acquire{Key: "k", Interval: 10, Max: 0, Slop: 1, Token: "y"})
	if _, sa := a.Digest(); func() bool { _, sb := b.Digest(); return sa == sb }() || sa == before {
		t.Fatal("the digest does not cover tokens")
	}
}

// TestTokenCostMatchesHeap is the measurement behind TokenOverhead, as
// TestKeyCostMatchesHeap is KeyOverhead's: 100,000 grants with tokens on
// one key, the growth of the live heap against the accounted figure.
func TestTokenCostMatchesHeap(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocates 100,000 tokens; slow under -short and -race")
	}
	const n = 100_000
	for _, tokLen := range []int{16, 36, 64} {
		t.Run(strconv.Itoa(tokLen), func(t *testing.T) {
			pad := strings.Repeat("x", tokLen-7)
			f := New(Config{})
			before := liveHeap()
			for i := 0; i < n; i += 512 {
				e := Entry{Now: 1000}
				for j := i; j < min(i+512, n); j++ {
					e.Commands = append(e.Commands, Acquire{Key: "k", Interval: 1, Max: 1 << 40, Token: strconv.Itoa(10_000_000 + j)[1:] + pad})
				}
				f.Apply(&raftLog{Data: e.Encode()})
			}
			// Push the batches' results out of the ring of recent results,
			// which is bounded and not per token.
			empty := Entry{Now: 1000}.Encode()
			for range recentEntries {
				f.Apply(&raftLog{Data: empty})
			}
			grown := float64(liveHeap() - before)
			acc := float64(f.MemoryUsage(1000))
			runtime.KeepAlive(f)
			t.Logf("token of %d bytes: heap grew %.1f bytes a token, accounted %.1f", tokLen, grown/n, acc/n)
			if r := grown / acc; r < 0.75 || r > 1.25 {
				t.Errorf("heap grew %.0f bytes for %d tokens of %d bytes, accounted %.0f (ratio %.2f): re-measure TokenOverhead", grown, n, tokLen, acc, r)
			}
		})
	}
}

// TestCostEntriesRoundTrip checks the wire forms of THROTTLE.CANCEL and of
// the results of the new errors.
func TestCostEntriesRoundTrip(t *testing.T) {
	e := Entry{Now: 7, Commands: []Command{
		Cancel{Key: "k", ValidAt: 1 << 50},
		Cancel{Key: "ü", ValidAt: -3, Token: "tok"},
		Acquire{Key: "k", Interval: 5, Max: 1, Slop: 0, Cost: 2, Token: strings.Repeat("t", MaxTokenLen)},
		Acquire{Key: "k", Interval: 5, Max: 1, Slop: 0, Token: "f", TokenWindow: 18_000},
		Cancel{Key: "k", ValidAt: 9, Token: "f", TokenWindow: 1},
		Acquire{Key: "k", Interval: 5, Max: 1, TokenWindow: 7},
	}}
	got, err := DecodeEntry(e.Encode())
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip: %v\n got %#v\nwant %#v", err, got, e)
	}
	enc := e.Encode()
	if enc[4] != byte(OpCancel) {
		t.Fatalf("first command's op is %d, want %d", enc[4], OpCancel)
	}
	for n := range enc {
		if _, err := DecodeEntry(enc[:n]); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownType) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	rs := []Result{{Err: ErrInvalidCost}, {Err: ErrInvalidToken}, {Count: 1}}
	b, err := AppendResults(nil, rs)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeResults(b); err != nil || !reflect.DeepEqual(back, rs) {
		t.Fatalf("results: %v %+v", err, back)
	}
}

// TestRestoreRefusesInvalidTokens extends TestRestoreRefusesInvalidImages
// to the tokens and spans sections.
func TestRestoreRefusesInvalidTokens(t *testing.T) {
	tok := func(kind tokenKind, key, token string, at int64) tokenRecord {
		return tokenRecord{kind: kind, key: key, token: token, at: at}
	}
	win := func(r tokenRecord, window int64) tokenRecord { r.window = window; return r }
	tests := []struct {
		name   string
		mutate func(*image)
		want   string
	}{
		{"unknown kind", func(i *image) { i.tokens = []tokenRecord{tok(9, "a", "t", 5)} }, "unknown kind 9"},
		{"empty token", func(i *image) { i.tokens = []tokenRecord{tok(tokenAcquire, "a", "", 5)} }, "length 0"},
		{"long token", func(i *image) {
			i.tokens = []tokenRecord{tok(tokenAcquire, "a", strings.Repeat("t", MaxTokenLen+1), 5)}
		}, "length 65"},
		{"empty key", func(i *image) { i.tokens = []tokenRecord{tok(tokenCancel, "", "t", 5)} }, "key length 0"},
		{"after the clock", func(i *image) { i.tokens = []tokenRecord{tok(tokenAcquire, "a", "t", 1_000_001)} }, "after the clock"},
		{"out of order", func(i *image) {
			i.tokens = []tokenRecord{tok(tokenAcquire, "a", "t", 9), tok(tokenAcquire, "a", "u", 8)}
		}, "out of order"},
		{"duplicate", func(i *image) {
			i.tokens = []tokenRecord{tok(tokenAcquire, "a", "t", 8), tok(tokenAcquire, "a", "t", 9)}
		}, "appears twice"},
		{"duplicate across windows", func(i *image) {
			i.tokens = []tokenRecord{tok(tokenAcquire, "a", "t", 8), win(tok(tokenAcquire, "a", "t", 9), 10)}
		}, "appears twice"},
		{"window of TokenWindow", func(i *image) { i.tokens = []tokenRecord{win(tok(tokenAcquire, "a", "t", 9), TokenWindow)} }, "window 60000"},
		{"negative window", func(i *image) { i.tokens = []tokenRecord{win(tok(tokenAcquire, "a", "t", 9), -1)} }, "window -1"},
		{"timed out of order", func(i *image) {
			i.tokens = []tokenRecord{win(tok(tokenAcquire, "a", "t", 9), 10), win(tok(tokenAcquire, "a", "u", 9), 5)}
		}, "out of order"},
		{"timed tie out of order", func(i *image) {
			i.tokens = []tokenRecord{win(tok(tokenAcquire, "a", "u", 9), 10), win(tok(tokenAcquire, "a", "t", 9), 10)}
		}, "out of order"},
		{"span below -1", func(i *image) { i.keys[0].span = -2 }, `key "a": span -2`},
		{"span before time began", func(i *image) { i.keys[0].span = 1_000_000 }, `key "a": span 1000000 with interval 100`},
		{"span overflows", func(i *image) { i.keys[0].span = math.MaxInt64 / 2 }, "does not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := goodImage()
			tt.mutate(&img)
			err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(encodeImage(t, img))))
			if !errors.Is(err, ErrInvalidImage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidImage containing %q", err, tt.want)
			}
		})
	}
	t.Run("valid tokens and spans restore", func(t *testing.T) {
		img := goodImage()
		img.keys[0].span = 2
		img.keys[1].span = -1
		img.tokens = []tokenRecord{tok(tokenAcquire, "a", "t", 999_000), tok(tokenCancel, "a", "t", 999_000), tok(tokenAcquire, "gone", "t", 1_000_000)}
		f := New(Config{})
		if err := f.Restore(io.NopCloser(bytes.NewReader(encodeImage(t, img)))); err != nil {
			t.Fatal(err)
		}
		_, a := f.ks.get("a")
		_, b := f.ks.get("b")
		if f.Tokens() != 3 || a == nil || b == nil || f.ks.span(0, a) != 2 || f.ks.span(0, b) != -1 {
			t.Fatalf("restored %d tokens, keys %v %v", f.Tokens(), a, b)
		}
	})
	t.Run("a span of a key the image lacks", func(t *testing.T) {
		data := encodeImage(t, goodImage())
		data = data[:len(data)-1] // drop the end
		data = binary.AppendUvarint(data, uint64(sectionSpans))
		data = binary.AppendUvarint(data, 1)
		data = appendString(data, "nokey")
		data = binary.AppendVarint(data, 1)
		data = binary.AppendUvarint(data, uint64(sectionEnd))
		if err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(data))); !errors.Is(err, ErrInvalidImage) {
			t.Fatalf("got %v, want ErrInvalidImage", err)
		}
	})
}
