package server

import (
	"context"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"12345", 12345, true},
		{"100b", 100, true},
		{"1k", 1000, true},
		{"1kb", 1024, true},
		{"1KB", 1024, true},
		{"2m", 2_000_000, true},
		{"100mb", 100 << 20, true},
		{"100Mb", 100 << 20, true},
		{"1g", 1_000_000_000, true},
		{"1gb", 1 << 30, true},
		{"1GB", 1 << 30, true},
		{"007kb", 7 << 10, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"8589934591gb", 8589934591 << 30, true}, // (2^63-1)>>30, the largest that fits
		{"8589934592gb", 0, false},
		{"9223372036854775808", 0, false},
		{"99999999999999999999999", 0, false},
		{"", 0, false},
		{"mb", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5gb", 0, false},
		{" 1gb", 0, false},
		{"1gb ", 0, false},
		{"1 gb", 0, false},
		{"1tb", 0, false},
		{"1kib", 0, false},
		{"1bb", 0, false},
		{"0x10", 0, false},
		{"1e6", 0, false},
		{"١٢", 0, false},
		{"1\u212a", 0, false}, // Kelvin sign, which Unicode folds to k
	}
	for _, tt := range tests {
		got, err := ParseMemory(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidMemory) {
			t.Errorf("ParseMemory(%q) = %d, %v; want ErrInvalidMemory", tt.in, got, err)
		}
	}
}

// memorySyntax is ParseMemory's grammar, written independently as a
// regular expression; FuzzParseMemory checks the parser against it.
var memorySyntax = regexp.MustCompile(`^([0-9]+)([bB]|[kK]|[kK][bB]|[mM]|[mM][bB]|[gG]|[gG][bB])?$`)

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"0", "1gb", "100MB", "1k", "", "-1", "gb", "1.5g",
		"9223372036854775807", "9223372036854775808", "8589934592gb", "1\x00gb", "1gb\n", "١", "1ǵb", "1\u212a", "1\u212ab"} {
		f.Add(s)
	}
	muls := map[string]int64{"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1e6, "mb": 1 << 20, "g": 1e9, "gb": 1 << 30}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseMemory(s)
		m := memorySyntax.FindStringSubmatch(s)
		if m == nil {
			if err == nil {
				t.Fatalf("ParseMemory(%q) = %d, want an error", s, got)
			}
			return
		}
		want := new(big.Int)
		want.SetString(m[1], 10)
		want.Mul(want, big.NewInt(muls[strings.ToLower(m[2])]))
		if !want.IsInt64() {
			if err == nil {
				t.Fatalf("ParseMemory(%q) = %d, want too large", s, got)
			}
			return
		}
		if err != nil || got != want.Int64() {
			t.Fatalf("ParseMemory(%q) = %d, %v; want %d", s, got, err, want.Int64())
		}
	})
}

// gateFixture is a state machine with keys "old1" and "old2" live until
// 10,000, and a gate over it with room for exactly one more key of four
// bytes.
func gateFixture(t *testing.T) (*fsm.FSM, *memGate) {
	t.Helper()
	f := fsm.New(fsm.Config{})
	e := fsm.Entry{Now: 1000, Commands: []fsm.Command{
		fsm.Acquire{Key: "old1", Interval: 9000, Max: 1, Slop: 1},
		fsm.Acquire{Key: "old2", Interval: 9000, Max: 1, Slop: 1},
	}}
	f.Apply(&raft.Log{Data: e.Encode()})
	return f, newMemGate(3*fsm.KeyCost("old1"), f, func() int64 { return 1000 })
}

func acquireOf(keys ...string) []fsm.Command {
	var cmds []fsm.Command
	for _, k := range keys {
		cmds = append(cmds, fsm.Acquire{Key: k, Interval: 9000, Max: 1, Slop: 1})
	}
	return cmds
}

func TestMemGateAdmit(t *testing.T) {
	tests := []struct {
		name string
		cmds []fsm.Command
		ok   bool
	}{
		{"existing keys", acquireOf("old1", "old2", "old1"), true},
		{"one new key fits", acquireOf("new1"), true},
		{"a new key repeated counts once", acquireOf("new1", "new1", "old1"), true},
		{"two new keys do not fit", acquireOf("new1", "new2"), false},
		{"a transaction is refused whole", acquireOf("old1", "new1", "new2"), false},
		{"a longer key does not fit", acquireOf("new10"), false},
		{"reset and membership create nothing", []fsm.Command{fsm.Reset{Keys: []string{"x"}}, fsm.SetNode{ID: "n", RESPAddr: "a"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, g := gateFixture(t)
			keys, err := g.admit(tt.cmds)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrOOM)) {
				t.Fatalf("admit: %v, want ok=%v", err, tt.ok)
			}
			if err != nil && (len(g.pending) != 0 || g.pendingBytes != 0) {
				t.Fatalf("a refused proposal left %v pending", g.pending)
			}
			g.release(keys)
			if len(g.pending) != 0 || g.pendingBytes != 0 {
				t.Fatalf("release left %v (%d bytes) pending", g.pending, g.pendingBytes)
			}
		})
	}
}

// TestMemGateCountsEntriesInFlight checks that keys admitted but not yet
// applied count against the limit, that a key in flight is not counted
// twice, and that releasing them makes room again.
func TestMemGateCountsEntriesInFlight(t *testing.T) {
	f, g := gateFixture(t)
	k1, err := g.admit(acquireOf("new1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.admit(acquireOf("new2")); !errors.Is(err, ErrOOM) {
		t.Fatalf("second new key while the first is in flight: %v, want ErrOOM", err)
	}
	k1again, err := g.admit(acquireOf("new1"))
	if err != nil {
		t.Fatalf("the key in flight, again: %v", err)
	}
	// The first entry is applied; the key is in the state now.
	f.Apply(&raft.Log{Data: fsm.Entry{Now: 1000, Commands: acquireOf("new1")}.Encode()})
	g.release(k1)
	if _, err := g.admit(acquireOf("new2")); !errors.Is(err, ErrOOM) {
		t.Fatalf("state full: %v, want ErrOOM", err)
	}
	g.release(k1again)
	if g.pendingBytes != 0 {
		t.Fatalf("%d bytes still pending", g.pendingBytes)
	}
	f.Apply(&raft.Log{Data: fsm.Entry{Now: 1000, Commands: []fsm.Command{fsm.Reset{Keys: []string{"old1"}}}}.Encode()})
	if _, err := g.admit(acquireOf("new2")); err != nil {
		t.Fatalf("after RESET freed a key: %v", err)
	}
}

// TestProposerRefusesAtTheGate checks that a refused proposal gets ErrOOM,
// never reaches the log, and does not hold up the proposals around it.
func TestProposerRefusesAtTheGate(t *testing.T) {
	f, g := gateFixture(t)
	r := &fakeRaft{fsm: f}
	p := newProposer(r, 8, time.Second, func() int64 { return 1000 })
	p.gate = g
	go p.run()
	defer p.close()
	ctx := context.Background()
	prs := make([]*proposal, 0, 4)
	for _, cmds := range [][]fsm.Command{acquireOf("new1"), acquireOf("new2"), acquireOf("old1"), acquireOf("new1", "old2")} {
		pr, err := p.enqueue(ctx, cmds...)
		if err != nil {
			t.Fatal(err)
		}
		prs = append(prs, pr)
	}
	wantOOM := []bool{false, true, false, false}
	for i, pr := range prs {
		res, err := p.await(pr)
		if wantOOM[i] {
			if !errors.Is(err, ErrOOM) || errorText(err) != msgOOM {
				t.Errorf("proposal %d: %v, want %q", i, err, msgOOM)
			}
			continue
		}
		if err != nil || !res[0].Permit.Granted {
			t.Errorf("proposal %d: %+v %v, want a grant", i, res, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		for _, c := range e.Commands {
			if c.(fsm.Acquire).Key == "new2" {
				t.Fatal("a refused command reached the log")
			}
		}
	}
	if got, want := f.MemoryUsage(1000), 3*fsm.KeyCost("old1"); got != want {
		t.Fatalf("state uses %d, want %d", got, want)
	}
}
