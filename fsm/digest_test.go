package fsm

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// applyAt applies one entry at log index idx, as Raft would.
func applyAt(t *testing.T, f *FSM, idx uint64, now int64, cmds ...Command) {
	t.Helper()
	if _, ok := f.Apply(&raft.Log{Index: idx, Data: Entry{Now: now, Commands: cmds}.Encode()}).([]Result); !ok {
		t.Fatalf("apply %d failed", idx)
	}
}

// TestDigest checks that the digest is a function of the applied log alone:
// replicas that applied the same entries agree (whatever the order keys were
// created in, and across a snapshot and restore), and any difference in
// clock, counters, slots or membership changes it.
func TestDigest(t *testing.T) {
	// base builds the reference state: entries 1..3.
	base := func(t *testing.T) *FSM {
		f := New(Config{})
		applyAt(t, f, 1, 1000, acq("a", 100, 3), acq("b", 5000, 1), SetNode{ID: "n1", RESPAddr: "x:1"})
		applyAt(t, f, 2, 1001, acq("a", 100, 3), acq("a", 100, 0))
		applyAt(t, f, 3, 1002, acq("c", 10, 1))
		return f
	}
	ref := base(t)
	refIdx, refSum := ref.Digest()
	if refIdx != 3 {
		t.Fatalf("index %d, want 3", refIdx)
	}
	if i, s := New(Config{}).Digest(); i != 0 || s == refSum {
		t.Fatalf("empty state: index %d, same sum %v", i, s == refSum)
	}

	t.Run("same log same digest", func(t *testing.T) {
		if i, s := base(t).Digest(); i != refIdx || s != refSum {
			t.Fatalf("replica: index %d sum %x, want %d %x", i, s, refIdx, refSum)
		}
	})

	t.Run("snapshot and restore keep the digest", func(t *testing.T) {
		f := base(t)
		sink := persisted(t, f)
		g := New(Config{})
		applyAt(t, g, 1, 1, acq("stale", 1<<30, 1))
		if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
			t.Fatal(err)
		}
		if i, s := g.Digest(); i != 0 || s != refSum {
			t.Fatalf("restored: index %d (want 0: unknown after restore), same sum %v", i, s == refSum)
		}
		// Both apply entry 4: same index, same digest.
		applyAt(t, f, 4, 1003, acq("a", 100, 3))
		applyAt(t, g, 4, 1003, acq("a", 100, 3))
		fi, fs := f.Digest()
		gi, gs := g.Digest()
		if fi != 4 || gi != 4 || fs != gs {
			t.Fatalf("after entry 4: %d %x vs %d %x", fi, fs, gi, gs)
		}
	})

	// Each mutation of the reference log must change the digest.
	for _, tt := range []struct {
		name string
		last func(t *testing.T, f *FSM)
	}{
		{"later clock", func(t *testing.T, f *FSM) { applyAt(t, f, 3, 1003, acq("c", 10, 1)) }},
		{"other interval", func(t *testing.T, f *FSM) { applyAt(t, f, 3, 1002, acq("c", 11, 1)) }},
		{"other key", func(t *testing.T, f *FSM) { applyAt(t, f, 3, 1002, acq("d", 10, 1)) }},
		{"a denial more", func(t *testing.T, f *FSM) { applyAt(t, f, 3, 1002, acq("c", 10, 1), acq("a", 100, 0)) }},
		{"membership", func(t *testing.T, f *FSM) {
			applyAt(t, f, 3, 1002, acq("c", 10, 1), SetNode{ID: "n2", RESPAddr: "y:2"})
		}},
		{"reset", func(t *testing.T, f *FSM) { applyAt(t, f, 3, 1002, acq("c", 10, 1), Reset{Keys: []string{"b"}}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{})
			applyAt(t, f, 1, 1000, acq("a", 100, 3), acq("b", 5000, 1), SetNode{ID: "n1", RESPAddr: "x:1"})
			applyAt(t, f, 2, 1001, acq("a", 100, 3), acq("a", 100, 0))
			tt.last(t, f)
			if i, s := f.Digest(); i != 3 || s == refSum {
				t.Fatalf("index %d, digest unchanged: %v", i, s == refSum)
			}
		})
	}
}
