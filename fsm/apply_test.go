package fsm

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// applyReference applies e at index as Apply did before it reused its
// decoding space: commands decoded by DecodeEntry (each Acquire a value in
// the interface), a fresh results slice, remembered in the recent ring.
func applyReference(f *FSM, index uint64, data []byte) []Result {
	e, err := DecodeEntry(data)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	results := f.applyEntry(index, e)
	f.recent.add(index, data, results)
	return results
}

// churnEntries makes entries of every command kind, in sizes from one
// command to more than decodeReuse, with keys that collide, expire, are
// reset and cancelled, so that an entry's commands land where an earlier,
// larger entry's were.
func churnEntries(seed int64) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	sizes := []int{1, 64, 3, decodeReuse + 90, 2, 200, 1, decodeReuse, 5, 64}
	var out [][]byte
	seq := uint64(1)
	for i, n := range sizes {
		e := Entry{Now: int64(1_000_000 + 40*i)}
		for range n {
			key := fmt.Sprintf("k%d:%s", rng.Intn(40), []string{"", "long-enough-to-live-in-the-map"}[rng.Intn(2)])
			switch rng.Intn(9) {
			case 0:
				e.Commands = append(e.Commands, Acquire{Key: key, Interval: 50, Max: 3, Slop: 5, Cost: 2})
			case 1:
				e.Commands = append(e.Commands, Acquire{Key: key, Interval: 50, Max: 3, Token: fmt.Sprint("t", rng.Intn(5))})
			case 2:
				e.Commands = append(e.Commands, Acquire{Key: key, Interval: 50, Max: 3, Session: 9, Seq: seq, TokenWindow: 500})
				seq++
			case 3:
				e.Commands = append(e.Commands, Cancel{Key: key, ValidAt: int64(1_000_000 + 10*rng.Intn(40))})
			case 4:
				e.Commands = append(e.Commands, Reset{Keys: []string{key, "k1:"}})
			case 5:
				e.Commands = append(e.Commands, CellThrottle{Key: "cell:" + key, MaxBurst: 3, Count: 10, Period: 1, Quantity: 1})
			case 6:
				e.Commands = append(e.Commands, Acquire{Key: "", Interval: 50, Max: 3}) // invalid: an error result
			default:
				e.Commands = append(e.Commands, Acquire{Key: key, Interval: 50, Max: 3, Slop: 5})
			}
		}
		if i == 4 {
			e.Commands = append(e.Commands, SetNode{ID: "n1", RESPAddr: "127.0.0.1:1"})
		}
		out = append(out, e.Encode())
	}
	return out
}

// TestApplyReusesDecodingSpace applies entries of every command kind and
// size through Apply, which decodes Acquires into space it reuses, and
// through the reference path: the results, the recent ring's answers, the
// digest and the snapshot image are the same, and between entries the
// space holds nothing (no key kept alive) and no more than decodeReuse.
func TestApplyReusesDecodingSpace(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			f, ref := New(Config{}), New(Config{})
			for i, data := range churnEntries(seed) {
				index := uint64(i + 1)
				got := f.Apply(&raft.Log{Index: index, Data: data}).([]Result)
				want := applyReference(ref, index, data)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("entry %d: results differ:\n%v\n%v", i, got, want)
				}
				gotR, fate := f.ResultsAt(index, EntrySum(data))
				wantR, _ := ref.ResultsAt(index, EntrySum(data))
				if fate != FateCommitted || fmt.Sprint(gotR) != fmt.Sprint(wantR) {
					t.Fatalf("entry %d: remembered results differ (%v)", i, fate)
				}
				if len(f.decCmds) != 0 || len(f.decSlab) != 0 || cap(f.decCmds) > decodeReuse || cap(f.decSlab) > decodeReuse {
					t.Fatalf("entry %d: decoding space kept: %d/%d commands, %d/%d acquires", i, len(f.decCmds), cap(f.decCmds), len(f.decSlab), cap(f.decSlab))
				}
				for j, a := range f.decSlab[:cap(f.decSlab)] {
					if !reflect.ValueOf(a).IsZero() {
						t.Fatalf("entry %d: acquire %d of the reused space still holds %+v", i, j, a)
					}
				}
				for j, c := range f.decCmds[:cap(f.decCmds)] {
					if c != nil {
						t.Fatalf("entry %d: command %d of the reused space still holds %#v", i, j, c)
					}
				}
			}
			if _, a := f.Digest(); a != func() [32]byte { _, b := ref.Digest(); return b }() {
				t.Fatal("digests differ")
			}
			var a, b bytes.Buffer
			if err := f.Backup(&a); err != nil {
				t.Fatal(err)
			}
			if err := ref.Backup(&b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("snapshot images differ")
			}
		})
	}
}

// TestApplyDoesNotBoxAcquires counts Apply's allocations for an entry of
// 64 Acquires of keys that exist: the results, the decoded keys and the
// remembered results, but no allocation per command for the command
// itself.
func TestApplyDoesNotBoxAcquires(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	e := Entry{Now: 1_000_000}
	for i := range 64 {
		e.Commands = append(e.Commands, Acquire{Key: fmt.Sprintf("r1:key:%012d", i), Interval: 1e9, Max: 1})
	}
	data := e.Encode()
	f := New(Config{})
	index := uint64(1)
	f.Apply(&raft.Log{Index: index, Data: data}) // creates the keys; the rest are denied
	allocs := testing.AllocsPerRun(50, func() {
		index++
		f.Apply(&raft.Log{Index: index, Data: data})
	})
	// 64 keys, the results, the recent ring's copy, and a few more.
	if allocs > 64+4 {
		t.Fatalf("%.1f allocations to apply 64 acquires; want at most %d", allocs, 64+4)
	}
}

// TestEntrySumTellsEntriesApart checks that EntrySum, by which ResultsAt
// tells a node's own entry from another committed at its index, differs
// for entries that differ in any one bit or in length, and is the same
// for the same bytes.
func TestEntrySumTellsEntriesApart(t *testing.T) {
	for i, data := range churnEntries(4) {
		sum := EntrySum(data)
		if EntrySum(bytes.Clone(data)) != sum {
			t.Fatalf("entry %d: the same bytes sum differently", i)
		}
		if EntrySum(data[:len(data)-1]) == sum || EntrySum(append(bytes.Clone(data), 0)) == sum {
			t.Fatalf("entry %d: a shorter or longer entry sums the same", i)
		}
		for _, at := range []int{0, 1, len(data) / 2, len(data) - 1} {
			for bit := range 8 {
				other := bytes.Clone(data)
				other[at] ^= 1 << bit
				if EntrySum(other) == sum {
					t.Fatalf("entry %d: flipping bit %d of byte %d keeps the sum", i, bit, at)
				}
			}
		}
	}
}
