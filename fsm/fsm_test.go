package fsm

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// apply encodes one entry and applies it through the raft.FSM interface, as
// Raft would, with no Raft running.
func apply(t *testing.T, f *FSM, now int64, cmds ...Command) []Result {
	t.Helper()
	out := f.Apply(&raft.Log{Index: 1, Data: Entry{Now: now, Commands: cmds}.Encode()})
	res, ok := out.([]Result)
	if !ok || len(res) != len(cmds) {
		t.Fatalf("Apply returned %#v", out)
	}
	return res
}

func acq(key string, interval, max int64) Acquire {
	return Acquire{Key: key, Interval: interval, Max: max, Slop: DefaultSlop(interval)}
}

func TestAcquireExerciseCases(t *testing.T) {
	// The four reference cases of the exercise (README), interval 3. setup grants
	// slots at time setupNow until the key's last slot is `last`.
	tests := []struct {
		name     string
		setup    []int64 // times at which to take a slot with a large max
		max, now int64
		want     Permit
	}{
		{"max0-now2-last1-denied", []int64{1}, 0, 2,
			Permit{Granted: false, WaitMs: 2, ValidAt: -1, ExpiresAt: -1, Pending: 0}},
		{"max0-now4-last1-granted", []int64{1}, 0, 4,
			Permit{Granted: true, WaitMs: 0, ValidAt: 4, ExpiresAt: 5, Pending: 0}},
		{"max1-now2-last1-reserved", []int64{1}, 1, 2,
			Permit{Granted: true, WaitMs: 2, ValidAt: 4, ExpiresAt: 5, Pending: 1}},
		{"max2-now2-last8-denied", []int64{2, 2, 2}, 2, 2,
			Permit{Granted: false, WaitMs: 3, ValidAt: -1, ExpiresAt: -1, Pending: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{})
			for _, at := range tt.setup {
				if r := apply(t, f, at, acq("k", 3, 100))[0]; !r.Permit.Granted || r.Err != nil {
					t.Fatalf("setup at %d: %+v", at, r)
				}
			}
			got := apply(t, f, tt.now, acq("k", 3, tt.max))[0]
			if got.Err != nil || got.Permit != tt.want {
				t.Fatalf("got %+v err %v, want %+v", got.Permit, got.Err, tt.want)
			}
		})
	}
}

func TestAcquireSequence(t *testing.T) {
	f := New(Config{})
	steps := []struct {
		now  int64
		c    Acquire
		want Permit
	}{
		{1000, acq("a", 100, 2), Permit{true, 0, 1000, 1010, 0}},
		{1000, acq("a", 100, 2), Permit{true, 100, 1100, 1110, 1}},
		{1000, acq("a", 100, 2), Permit{true, 200, 1200, 1210, 2}},
		{1000, acq("a", 100, 2), Permit{false, 100, -1, -1, 2}},
		{1099, acq("a", 100, 2), Permit{false, 1, -1, -1, 2}},
		{1100, acq("a", 100, 2), Permit{true, 200, 1300, 1310, 2}},
		// Time never runs backwards: an entry stamped earlier is applied at
		// the clock already reached.
		{500, acq("a", 100, 5), Permit{true, 300, 1400, 1410, 3}},
		// Slop set explicitly, including 0.
		{1100, Acquire{Key: "b", Interval: 100, Max: 1, Slop: 0}, Permit{true, 0, 1100, 1100, 0}},
		{1100, Acquire{Key: "c", Interval: 100, Max: 1, Slop: 42}, Permit{true, 0, 1100, 1142, 0}},
		// Expiry: at last+interval the key is as good as absent.
		{1500, acq("a", 100, 0), Permit{true, 0, 1500, 1510, 0}},
		// A shorter interval than the stored one: spaced by the call's own.
		{1550, acq("a", 50, 0), Permit{true, 0, 1550, 1555, 0}},
	}
	for i, s := range steps {
		got := apply(t, f, s.now, s.c)[0]
		if got.Err != nil || got.Permit != s.want {
			t.Fatalf("step %d (now %d %+v): got %+v err %v, want %+v", i, s.now, s.c, got.Permit, got.Err, s.want)
		}
	}
	if st := f.Stats(); st != (Stats{Grants: 5, Reservations: 4, Denials: 2}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestAcquireInvalid(t *testing.T) {
	big := int64(math.MaxInt64)
	tests := []struct {
		name string
		c    Acquire
		want error
	}{
		{"empty-key", Acquire{Key: "", Interval: 1}, ErrInvalidKey},
		{"long-key", Acquire{Key: string(make([]byte, MaxKeyLen+1)), Interval: 1}, ErrInvalidKey},
		{"zero-interval", Acquire{Key: "k", Interval: 0}, ErrInvalidInterval},
		{"negative-max", Acquire{Key: "k", Interval: 1, Max: -1}, ErrInvalidMax},
		{"negative-slop", Acquire{Key: "k", Interval: 1, Slop: -1}, ErrInvalidSlop},
		{"interval-overflow", Acquire{Key: "k", Interval: big, Max: 1}, ErrOverflow},
		{"slop-overflow", Acquire{Key: "k", Interval: 1, Max: 1, Slop: big}, ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{})
			got := apply(t, f, 1000, tt.c)[0]
			if !errors.Is(got.Err, tt.want) {
				t.Fatalf("err %v, want %v", got.Err, tt.want)
			}
			if f.DBSize(0) != 0 || f.Stats() != (Stats{}) {
				t.Fatalf("a failed command changed state: size %d stats %+v", f.DBSize(0), f.Stats())
			}
		})
	}
	t.Run("max-times-interval-overflow", func(t *testing.T) {
		f := New(Config{})
		apply(t, f, 1000, acq("k", 1<<40, 10))
		apply(t, f, 1000, acq("k", 1<<40, 10))
		before := f.Keys(0)
		got := apply(t, f, 1000, Acquire{Key: "k", Interval: math.MaxInt64 - 1<<30, Max: 0})[0]
		if !errors.Is(got.Err, ErrOverflow) {
			t.Fatalf("err %v, want ErrOverflow", got.Err)
		}
		if !reflect.DeepEqual(before, f.Keys(0)) {
			t.Fatal("overflowing command changed state")
		}
	})
}

func TestResetAndExpiry(t *testing.T) {
	f := New(Config{})
	apply(t, f, 1000, acq("a", 100, 1), acq("b", 1000, 1), acq("c", 10, 1))
	if n := f.DBSize(1000); n != 3 {
		t.Fatalf("dbsize %d, want 3", n)
	}
	if n := f.DBSize(1050); n != 2 { // c expired at 1010
		t.Fatalf("dbsize at 1050 = %d, want 2", n)
	}
	// RESET counts only unexpired keys, and duplicates once.
	r := apply(t, f, 1200, Reset{Keys: []string{"a", "b", "b", "c", "nope"}})[0]
	if r.Count != 1 || r.Err != nil {
		t.Fatalf("reset %+v, want count 1", r)
	}
	if n := f.DBSize(0); n != 0 || f.ks.len() != 0 || len(f.ks.heap) != 0 {
		t.Fatalf("after reset: dbsize %d, store %d, heap %d", n, f.ks.len(), len(f.ks.heap))
	}
	// Applying later entries prunes expired keys from memory.
	apply(t, f, 2000, acq("x", 10, 0), acq("y", 500, 0))
	apply(t, f, 2100)
	if id, _ := f.ks.get("x"); id != 0 || len(f.ks.heap) != 1 {
		t.Fatalf("x not pruned: keys %d heap %d", f.ks.len(), len(f.ks.heap))
	}
}

func TestPeekChangesNothing(t *testing.T) {
	f := New(Config{})
	apply(t, f, 1000, acq("k", 100, 1))
	p, err := f.Peek(acq("k", 100, 1), 1000)
	if err != nil || p != (Permit{true, 100, 1100, 1110, 1}) {
		t.Fatalf("peek %+v %v", p, err)
	}
	if got := apply(t, f, 1000, acq("k", 100, 1))[0].Permit; got != p {
		t.Fatalf("acquire after peek %+v, want %+v", got, p)
	}
	if _, err := f.Peek(Acquire{Key: "k", Interval: 0}, 0); !errors.Is(err, ErrInvalidInterval) {
		t.Fatalf("peek err %v", err)
	}
}

func TestNodes(t *testing.T) {
	f := New(Config{})
	apply(t, f, 1, SetNode{ID: "n2", RESPAddr: "b:2"}, SetNode{ID: "n1", RESPAddr: "a:1"}, SetNode{ID: "n2", RESPAddr: "b:3"})
	want := []Node{{"n1", "a:1"}, {"n2", "b:3"}}
	if got := f.Nodes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("nodes %v", got)
	}
	apply(t, f, 1, RemoveNode{ID: "n1"})
	if _, ok := f.NodeAddr("n1"); ok {
		t.Fatal("n1 still present")
	}
}

// TestPropertySpacing applies random interleavings of ACQUIRE with random
// interval and max, and checks the throttle's promises: a granted slot of a
// key is at least the granting call's interval after the previous slot (or,
// when callers disagree on the interval, at least the smaller of the two: the
// previous slot's key expired after its own interval), and never more than
// max slots are pending after a grant.
func TestPropertySpacing(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		f := New(Config{})
		now := int64(1_000_000)
		lastSlot := map[string]int64{}
		lastIv := map[string]int64{}
		for i := 0; i < 3000; i++ {
			now += rng.Int63n(40)
			key := string(rune('a' + rng.Intn(3)))
			c := acq(key, 1+rng.Int63n(100), rng.Int63n(4))
			if rng.Intn(50) == 0 {
				c.Slop = rng.Int63n(10)
			}
			entryNow := now - rng.Int63n(20) // stamps may go backwards
			clock := max(f.Clock(0), entryNow)
			r := apply(t, f, entryNow, c)[0]
			if r.Err != nil {
				t.Fatalf("seed %d step %d: %v", seed, i, r.Err)
			}
			p := r.Permit
			if !p.Granted {
				if p.WaitMs <= 0 || p.ValidAt != -1 {
					t.Fatalf("seed %d step %d: bad denial %+v", seed, i, p)
				}
				continue
			}
			if prev, ok := lastSlot[key]; ok && p.ValidAt-prev < min(c.Interval, lastIv[key]) {
				t.Fatalf("seed %d step %d: slot %d only %d after %d (interval %d, previous %d)",
					seed, i, p.ValidAt, p.ValidAt-prev, prev, c.Interval, lastIv[key])
			}
			if p.ValidAt < clock || p.WaitMs != p.ValidAt-clock || p.ExpiresAt != p.ValidAt+c.Slop {
				t.Fatalf("seed %d step %d: inconsistent permit %+v at %d", seed, i, p, clock)
			}
			if p.Pending > c.Max {
				t.Fatalf("seed %d step %d: %d pending > max %d", seed, i, p.Pending, c.Max)
			}
			lastSlot[key], lastIv[key] = p.ValidAt, c.Interval
		}
	}
}

func TestSnapshotRestore(t *testing.T) {
	f := New(Config{})
	apply(t, f, 1000, acq("a", 100, 3), acq("a", 100, 3), acq("b", 5000, 1), SetNode{ID: "n1", RESPAddr: "x:1"})
	apply(t, f, 1001, acq("a", 100, 0))
	sink := persisted(t, f)
	// Changes after the snapshot must not leak into it.
	apply(t, f, 1002, acq("c", 1, 1))

	g := New(Config{})
	apply(t, g, 1, acq("stale", 1<<30, 1))
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if g.Clock(0) != 1001 || g.Stats() != (Stats{Grants: 2, Reservations: 1, Denials: 1}) {
		t.Fatalf("clock %d stats %+v", g.Clock(0), g.Stats())
	}
	want := map[string]KeyState{"a": {Last: 1100, Interval: 100}, "b": {Last: 1000, Interval: 5000}}
	if got := g.Keys(0); !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	if !reflect.DeepEqual(g.Nodes(), []Node{{"n1", "x:1"}}) {
		t.Fatalf("nodes %v", g.Nodes())
	}
	// The restored machine answers exactly as the original would have.
	f2 := New(Config{})
	_ = f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes())))
	for _, m := range []*FSM{g, f2} {
		if p := apply(t, m, 1050, acq("a", 100, 3))[0].Permit; p != (Permit{true, 150, 1200, 1210, 2}) {
			t.Fatalf("after restore: %+v", p)
		}
	}

	t.Run("backup is the snapshot image", func(t *testing.T) {
		// Backup (RAFT.BACKUP) must write what Restore reads: the same
		// bytes a snapshot of the same state holds.
		h := New(Config{})
		_ = h.Restore(io.NopCloser(bytes.NewReader(sink.Bytes())))
		var buf bytes.Buffer
		if err := h.Backup(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), sink.Bytes()) {
			t.Fatalf("backup of a restored state differs from the snapshot it was restored from")
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		data := sink.Bytes()
		for _, bad := range [][]byte{nil, []byte("nope"), data[:len(data)-1], append(append([]byte{}, data...), 0)} {
			if err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore of %d bytes: %v", len(bad), err)
			}
		}
	})
}

func TestApplyPanicsOnCorruptEntry(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(Config{}).Apply(&raft.Log{Data: []byte{byte(EntryBatch), entryBatchVersion, 0x80}})
}

type memSink struct{ bytes.Buffer }

// persisted snapshots f and persists the snapshot into memory, as Raft
// does (Persist, then Release).
func persisted(t *testing.T, f *FSM) *memSink {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink
}

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }
