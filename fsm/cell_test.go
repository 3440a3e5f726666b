package fsm

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
)

func cl(key string, burst, count, period, quantity int64) CellThrottle {
	return CellThrottle{Key: key, MaxBurst: burst, Count: count, Period: period, Quantity: quantity}
}

const start = 1_700_000_000_000 // ms

// TestCellRedisCellCases replays redis-cell's own unit test
// (src/cell/mod.rs, it_rate_limits): limit 5 (max_burst 4), one token per
// second, at the same clock offsets, expecting the same durations.
func TestCellRedisCellCases(t *testing.T) {
	const s, ms = int64(1e9), int64(1e6)
	cases := []struct {
		at                     int64 // ms after start
		volume, remaining      int64
		resetAfter, retryAfter int64 // ns
		limited                bool
	}{
		// You can never make a request larger than the maximum.
		{0, 6, 5, 0, -s, true},
		// Rate limit normal requests appropriately.
		{0, 1, 4, 1 * s, -s, false},
		{0, 1, 3, 2 * s, -s, false},
		{0, 1, 2, 3 * s, -s, false},
		{0, 1, 1, 4 * s, -s, false},
		{0, 1, 0, 5 * s, -s, false},
		{0, 1, 0, 5 * s, 1 * s, true},
		{3000, 1, 2, 3000 * ms, -s, false},
		{3100, 1, 1, 3900 * ms, -s, false},
		{4000, 1, 1, 4000 * ms, -s, false},
		{8000, 1, 4, 1000 * ms, -s, false},
		{9500, 1, 4, 1000 * ms, -s, false},
		// Zero-volume request just peeks at the state.
		{9500, 0, 4, 1 * s, -s, false},
		// High-volume request uses up more of the limit.
		{9500, 2, 2, 3 * s, -s, false},
		// Large requests cannot exceed limits.
		{9500, 5, 2, 3 * s, 3 * s, true},
	}
	f := New(Config{})
	for i, c := range cases {
		r := apply(t, f, start+c.at, cl("foo", 4, 1, 1, c.volume))[0]
		want := CellResult{Limited: c.limited, Limit: 5, Remaining: c.remaining, RetryAfter: c.retryAfter, ResetAfter: c.resetAfter}
		if r.Err != nil || r.Cell != want {
			t.Fatalf("case %d: got %+v err %v, want %+v", i, r.Cell, r.Err, want)
		}
	}
}

// TestCellReplies checks the rounded five-integer replies of redis-cell's
// README and of its end-to-end test.
func TestCellReplies(t *testing.T) {
	type step struct {
		at   int64 // ms after start
		c    CellThrottle
		want [5]int64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"readme", []step{{0, cl("user123", 15, 30, 60, 1), [5]int64{0, 16, 15, -1, 2}}}},
		{"readme-default-quantity-twice", []step{
			{0, cl("user123", 15, 30, 60, 1), [5]int64{0, 16, 15, -1, 2}},
			{0, cl("user123", 15, 30, 60, 1), [5]int64{0, 16, 14, -1, 4}},
		}},
		{"e2e", []step{
			{0, cl("user123", 0, 1, 2, 1), [5]int64{0, 1, 0, -1, 2}},
			{0, cl("user123", 0, 1, 2, 1), [5]int64{1, 1, 0, 2, 2}},
			{2000, cl("user123", 0, 1, 2, 1), [5]int64{0, 1, 0, -1, 2}},
		}},
		{"partial-seconds-round-up", []step{
			// 3 per 10 s: one emission is 3.333333333 s.
			{0, cl("k", 0, 3, 10, 1), [5]int64{0, 1, 0, -1, 4}},
			{1, cl("k", 0, 3, 10, 1), [5]int64{1, 1, 0, 4, 4}},
		}},
		{"peek-on-absent-key", []step{{0, cl("k", 2, 1, 1, 0), [5]int64{0, 3, 3, -1, 0}}}},
		{"quantity-above-limit-never-fits", []step{{0, cl("k", 1, 1, 1, 3), [5]int64{1, 2, 2, -1, 0}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{})
			for i, st := range tt.steps {
				r := apply(t, f, start+st.at, st.c)[0]
				if r.Err != nil || r.Cell.Reply() != st.want {
					t.Fatalf("step %d: got %v (%+v) err %v, want %v", i, r.Cell.Reply(), r.Cell, r.Err, st.want)
				}
			}
		})
	}
}

func TestCellSeconds(t *testing.T) {
	tests := []struct{ ns, want int64 }{
		{-1e9, -1},
		{0, 0},
		{2e9, 2},
		{1_000_500_000, 1}, // under a whole millisecond more: not rounded up
		{1_001_000_000, 2},
		{3_900_000_000, 4},
		{999_999, 0},
		{1_000_000, 1},
		{math.MaxInt64, 9223372037},
	}
	for _, tt := range tests {
		if got := cellSeconds(tt.ns); got != tt.want {
			t.Errorf("cellSeconds(%d) = %d, want %d", tt.ns, got, tt.want)
		}
	}
}

func TestCellInvalid(t *testing.T) {
	tests := []struct {
		name string
		c    CellThrottle
		want error
	}{
		{"empty-key", cl("", 1, 1, 1, 1), ErrInvalidKey},
		{"negative-burst", cl("k", -1, 1, 1, 1), ErrInvalidCell},
		{"negative-count", cl("k", 1, -1, 1, 1), ErrInvalidCell},
		{"negative-period", cl("k", 1, 1, -1, 1), ErrInvalidCell},
		{"negative-quantity", cl("k", 1, 1, 1, -1), ErrInvalidCell},
		{"zero-count", cl("k", 1, 0, 1, 1), ErrInvalidCell},
		{"zero-period", cl("k", 1, 1, 0, 1), ErrInvalidCell},
		{"over-one-per-ns", cl("k", 1, 2_000_000_000, 1, 1), ErrInvalidCell},
		{"period-ns-overflow", cl("k", 1, 1, math.MaxInt64/1_000_000_000+1, 1), ErrInvalidCell},
		{"burst-overflow", cl("k", math.MaxInt64, 1, 1, 1), ErrInvalidCell},
		{"dvt-overflow", cl("k", 1<<40, 1, 1_000_000, 1), ErrInvalidCell},
		{"quantity-overflow", cl("k", 1, 1, 1_000_000, 1<<40), ErrInvalidCell},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{})
			r := apply(t, f, start, tt.c)[0]
			if !errors.Is(r.Err, tt.want) {
				t.Fatalf("err %v, want %v", r.Err, tt.want)
			}
			if f.DBSize(0) != 0 || f.Stats() != (Stats{}) {
				t.Fatalf("a refused command changed the state: %d keys, %+v", f.DBSize(0), f.Stats())
			}
		})
	}
}

func TestCellWrongType(t *testing.T) {
	f := New(Config{})
	apply(t, f, start, acq("t", 1000, 1), cl("c", 1, 1, 1, 1))
	withToken := acq("c", 1000, 1)
	withToken.Token, withToken.Cost = "tok", 1
	rs := apply(t, f, start, cl("t", 1, 1, 1, 1), acq("c", 1000, 1), withToken,
		Cancel{Key: "c", ValidAt: start})
	for i, r := range rs {
		if !errors.Is(r.Err, ErrWrongType) {
			t.Fatalf("command %d: %+v", i, r)
		}
	}
	if _, err := f.Peek(acq("c", 1000, 1), 0); !errors.Is(err, ErrWrongType) {
		t.Fatalf("PEEK of a cell key: %v", err)
	}
	if _, err := f.PeekCell(cl("t", 1, 1, 1, 0), 0); !errors.Is(err, ErrWrongType) {
		t.Fatalf("peek of a throttle key: %v", err)
	}
	// Once a key expires, either kind may take its name.
	apply(t, f, start+2000, acq("c", 1000, 1), cl("t", 1, 1, 1, 1))
	if k := f.Keys(0); !k["t"].Cell || k["c"].Cell {
		t.Fatalf("keys %+v", k)
	}
}

func TestCellExpiry(t *testing.T) {
	f := New(Config{})
	// A peek creates nothing.
	apply(t, f, start, cl("k", 1, 1, 1, 0))
	if f.DBSize(0) != 0 {
		t.Fatal("a peek created a key")
	}
	// 1 per 3 s, quantity 1: the TAT is start+3 s, when the key expires.
	apply(t, f, start, cl("k", 1, 1, 3, 1))
	if typ, exp := f.Lookup("k", start); typ != TypeCell || exp != start+3000 {
		t.Fatalf("lookup: %v expires %d", typ, exp)
	}
	if f.DBSize(start+2999) != 1 || f.DBSize(start+3000) != 0 {
		t.Fatal("the key does not expire at its TAT")
	}
	if f.MemoryUsage(start) != KeyCost("k") || f.MemoryUsage(start+3000) != 0 {
		t.Fatalf("memory %d", f.MemoryUsage(start))
	}
	// A TAT that is not a whole millisecond: the key lives until the
	// first millisecond at or after it. 3 per 1 s: 333.333333 ms.
	apply(t, f, start, cl("m", 5, 3, 1, 1))
	if _, exp := f.Lookup("m", start); exp != start+334 {
		t.Fatalf("expires %d, want %d", exp, start+334)
	}
	apply(t, f, start+3000)
	if f.ks.len() != 0 || f.ks.index.Len() != 0 || len(f.ks.heap) != 0 {
		t.Fatalf("expired keys not pruned: %v", f.Keys(0))
	}
}

func TestCellStats(t *testing.T) {
	f := New(Config{})
	apply(t, f, start, cl("k", 0, 1, 10, 1), cl("k", 0, 1, 10, 1), cl("k", 0, 1, 10, 0))
	if got := f.Stats(); got != (Stats{Grants: 1, Denials: 1}) {
		t.Fatalf("stats %+v", got)
	}
}

func TestFlushAll(t *testing.T) {
	f := New(Config{})
	apply(t, f, start, acq("a", 1000, 1), cl("b", 1, 1, 1, 1))
	apply(t, f, start, FlushAll{})
	if f.DBSize(0) != 0 || f.MemoryUsage(0) != 0 || len(f.AllKeys(0, nil)) != 0 {
		t.Fatal("FLUSHALL left keys")
	}
	if f.Stats().Grants != 2 {
		t.Fatalf("FLUSHALL changed the counters: %+v", f.Stats())
	}
	apply(t, f, start, acq("a", 1000, 1))
	if f.DBSize(0) != 1 {
		t.Fatal("no key after FLUSHALL")
	}
}

func TestCellSnapshotAndDigest(t *testing.T) {
	f := New(Config{})
	applyAt(t, f, 1, start, acq("a", 100000, 1), cl("b", 3, 1, 60, 1), cl("c", 3, 7, 1, 2))
	var sink memSink
	snap, _ := f.Snapshot()
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := New(Config{})
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Keys(0), f.Keys(0)) || g.MemoryUsage(0) != f.MemoryUsage(0) {
		t.Fatalf("restored %v, want %v", g.Keys(0), f.Keys(0))
	}
	if _, a := f.Digest(); true {
		if _, b := g.Digest(); a != b {
			t.Fatal("digests differ after a round trip")
		}
	}
	// The restored state keeps answering as the original.
	for _, h := range []*FSM{f, g} {
		applyAt(t, h, 2, start+10, cl("b", 3, 1, 60, 1))
	}
	_, a := f.Digest()
	_, b := g.Digest()
	if a != b || !reflect.DeepEqual(g.Keys(0), f.Keys(0)) {
		t.Fatal("diverged after restore")
	}
	// A cell key's TAT is in the digest.
	h := New(Config{})
	applyAt(t, h, 2, start, acq("a", 100000, 1), cl("b", 3, 1, 60, 2), cl("c", 3, 7, 1, 2))
	if _, d := h.Digest(); d == a {
		t.Fatal("digest ignores the cell keys")
	}
}

func TestCellImageValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(*image)
	}{
		{"negative-tat", func(img *image) { img.cells = []cellKey{{"c", -1}} }},
		{"empty-key", func(img *image) { img.cells = []cellKey{{"", 5}} }},
		{"duplicate-across-types", func(img *image) { img.cells = []cellKey{{img.keys[0].key, 5}} }},
		{"duplicate-cell", func(img *image) { img.cells = []cellKey{{"c", 5}, {"c", 6}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := goodImage()
			tt.edit(&img)
			err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(encodeImage(t, img))))
			if !errors.Is(err, ErrInvalidImage) {
				t.Fatalf("err %v", err)
			}
		})
	}
	img := goodImage()
	img.cells = []cellKey{{"c", start * 1e6}}
	if err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(encodeImage(t, img)))); err != nil {
		t.Fatalf("a good image with a cell key: %v", err)
	}
}
