package server

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
)

// walOp is one operation on a wal log store in TestWALTruncationsReopen:
// store entries from..to in one batch with term, or delete from..to.
type walOp struct {
	del            bool
	from, to, term uint64
}

func store(from, to, term uint64) walOp { return walOp{from: from, to: to, term: term} }
func del(from, to uint64) walOp         { return walOp{del: true, from: from, to: to} }

// TestWALTruncationsReopen checks that a wal log store reopens with every
// entry it kept, readable, after the truncations Raft makes: a follower
// deletes the tail of its log when a new leader's entries conflict with it,
// and every node deletes the head after a snapshot. raft-wal seals the
// tail segment at a tail truncation and starts a new one; v0.4.0 recorded
// that segment sealed without writing its index, so after a restart none of
// its entries could be read (hashicorp/raft-wal#31), which the start-up
// check reported as "sealed segment has no index frame" (the fault suite
// found it: a follower whose log had been truncated was killed -9 and
// did not start again).
func TestWALTruncationsReopen(t *testing.T) {
	for _, tt := range []struct {
		name string
		ops  []walOp
	}{
		{"tail", []walOp{store(1, 10, 1), store(11, 20, 1), del(15, 20), store(15, 18, 2)}},
		{"tail twice, into the sealed segment", []walOp{store(1, 20, 1), del(15, 20), store(15, 18, 2), del(12, 18), store(12, 14, 3)}},
		{"tail twice, nothing written between", []walOp{store(1, 20, 1), del(15, 20), del(10, 14), store(10, 11, 2)}},
		{"tail, then nothing written", []walOp{store(1, 20, 1), del(15, 20)}},
		{"all but the first entry", []walOp{store(1, 20, 1), del(2, 20), store(2, 3, 2)}},
		{"head, then tail", []walOp{store(1, 20, 1), del(1, 5), del(15, 20), store(15, 16, 2)}},
		{"tail, then head past the sealed segment", []walOp{store(1, 20, 1), del(15, 20), store(15, 30, 2), del(1, 16)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			want := map[uint64]uint64{} // index -> term
			s := openTestWAL(t, dir)
			for _, op := range tt.ops {
				if op.del {
					if err := s.DeleteRange(op.from, op.to); err != nil {
						t.Fatalf("DeleteRange(%d, %d): %v", op.from, op.to, err)
					}
					for i := op.from; i <= op.to; i++ {
						delete(want, i)
					}
					continue
				}
				var logs []*raft.Log
				for i := op.from; i <= op.to; i++ {
					logs = append(logs, testWALEntry(i, op.term))
					want[i] = op.term
				}
				if err := s.StoreLogs(logs); err != nil {
					t.Fatalf("StoreLogs(%d..%d): %v", op.from, op.to, err)
				}
			}
			checkWALEntries(t, s, want, "before closing")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Twice: the second time after writing to the reopened log.
			for round := 1; round <= 2; round++ {
				s = openTestWAL(t, dir)
				checkWALEntries(t, s, want, fmt.Sprintf("reopened (%d)", round))
				last, _ := s.LastIndex()
				if err := s.StoreLogs([]*raft.Log{testWALEntry(last+1, 9)}); err != nil {
					t.Fatalf("reopened (%d): StoreLogs(%d): %v", round, last+1, err)
				}
				want[last+1] = 9
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// openTestWAL opens dir's wal log store as a node does, with its start-up
// checks.
func openTestWAL(t *testing.T, dir string) logStore {
	t.Helper()
	s, err := openWAL(dir, hclog.NewNullLogger(), nil, 0)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// testWALEntry is entry i of term; its data names both, so a read of the
// wrong entry shows.
func testWALEntry(i, term uint64) *raft.Log {
	return &raft.Log{Index: i, Term: term, Type: raft.LogNoop, Data: []byte(fmt.Sprintf("%d/%d", term, i))}
}

// checkWALEntries checks that s holds exactly the entries in want (index
// to term), contiguous, each readable with its own data.
func checkWALEntries(t *testing.T, s logStore, want map[uint64]uint64, when string) {
	t.Helper()
	var first, last uint64
	for i := range want {
		if first == 0 || i < first {
			first = i
		}
		last = max(last, i)
	}
	gotFirst, err1 := s.FirstIndex()
	gotLast, err2 := s.LastIndex()
	if err1 != nil || err2 != nil || gotFirst != first || gotLast != last {
		t.Fatalf("%s: first %d last %d (%v, %v), want %d and %d", when, gotFirst, gotLast, err1, err2, first, last)
	}
	for i := first; i <= last && first > 0; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("%s: GetLog(%d): %v", when, i, err)
		}
		w := testWALEntry(i, want[i])
		if l.Index != i || l.Term != w.Term || string(l.Data) != string(w.Data) {
			t.Fatalf("%s: entry %d is %d/%d %q, want term %d %q", when, i, l.Index, l.Term, l.Data, w.Term, w.Data)
		}
	}
}

// TestWALSealedTailReopens checks a crash raft-wal leaves to its next
// start: it seals a segment (writes the index and fsyncs) before it
// records the seal in its metadata, both when a segment fills (the next
// segment is created in the background) and at a tail truncation. A kill
// in between leaves a sealed file that the metadata lists as the open tail.
func TestWALSealedTailReopens(t *testing.T) {
	dir := t.TempDir()
	s := openTestWAL(t, dir)
	want := map[uint64]uint64{}
	for i := uint64(1); i <= 12; i++ {
		if err := s.StoreLogs([]*raft.Log{testWALEntry(i, 1)}); err != nil {
			t.Fatal(err)
		}
		want[i] = 1
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Seal the tail as raft-wal does, and stop there.
	wdir := filepath.Join(dir, walDir)
	var meta metadb.BoltMetaDB
	state, err := meta.Load(wdir)
	meta.Close()
	if err != nil {
		t.Fatal(err)
	}
	tail := state.Segments[len(state.Segments)-1]
	w, err := segment.NewFiler(wdir, walfs.New()).RecoverTail(tail)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ForceSeal(); err != nil {
		t.Fatal(err)
	}
	w.Close()

	for round := 1; round <= 2; round++ {
		s = openTestWAL(t, dir)
		checkWALEntries(t, s, want, fmt.Sprintf("reopened (%d)", round))
		last, _ := s.LastIndex()
		if err := s.StoreLogs([]*raft.Log{testWALEntry(last+1, 2)}); err != nil {
			t.Fatalf("reopened (%d): StoreLogs(%d): %v", round, last+1, err)
		}
		want[last+1] = 2
		checkWALEntries(t, s, want, fmt.Sprintf("reopened (%d), written", round))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
