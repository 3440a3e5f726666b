package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

func TestResultsAt(t *testing.T) {
	f := New(Config{})
	mine := Entry{Now: 1000, Commands: []Command{Acquire{Key: "k", Interval: 100, Max: 1, Slop: 10}}}.Encode()
	other := Entry{Now: 1000, Commands: []Command{Reset{Keys: []string{"k"}}}}.Encode()
	if _, fate := f.ResultsAt(1, EntrySum(mine)); fate != FatePending {
		t.Fatalf("before apply: fate %v", fate)
	}
	f.Apply(&raft.Log{Index: 1, Data: mine})
	res, fate := f.ResultsAt(1, EntrySum(mine))
	if fate != FateCommitted || len(res) != 1 || !res[0].Permit.Granted {
		t.Fatalf("committed entry: %+v, fate %v", res, fate)
	}
	f.Apply(&raft.Log{Index: 2, Data: other})
	if _, fate := f.ResultsAt(2, EntrySum(mine)); fate != FateReplaced {
		t.Fatalf("another entry at the index: fate %v", fate)
	}
	for i := uint64(3); i < 3+recentEntries; i++ {
		f.Apply(&raft.Log{Index: i, Data: other})
	}
	if _, fate := f.ResultsAt(1, EntrySum(mine)); fate != FateForgotten {
		t.Fatalf("evicted: fate %v", fate)
	}
}

// TestResultsAtBoundedByResults checks that big entries are forgotten
// oldest first once the ring holds more than recentResults results, and
// that the newest entry is always remembered.
func TestResultsAtBoundedByResults(t *testing.T) {
	f := New(Config{})
	var cmds []Command
	for i := range 512 {
		cmds = append(cmds, Acquire{Key: "k" + string(rune('a'+i%26)), Interval: 100, Max: 1 << 40, Slop: 10})
	}
	data := Entry{Now: 1000, Commands: cmds}.Encode()
	const entries = 2 * recentResults / 512
	for i := uint64(1); i <= entries; i++ {
		f.Apply(&raft.Log{Index: i, Data: data})
		if f.recent.held > recentResults {
			t.Fatalf("after entry %d the ring holds %d results", i, f.recent.held)
		}
	}
	kept := uint64(recentResults / 512)
	for _, c := range []struct {
		index uint64
		want  EntryFate
	}{{1, FateForgotten}, {entries - kept, FateForgotten}, {entries - kept + 1, FateCommitted}, {entries, FateCommitted}} {
		if _, fate := f.ResultsAt(c.index, EntrySum(data)); fate != c.want {
			t.Errorf("entry %d: fate %v, want %v", c.index, fate, c.want)
		}
	}
}

// TestResultsAtSameAsApply checks that the results ResultsAt gives back
// (encoded in the ring, or kept whole when one is an error) are the ones
// Apply returned, error text included.
func TestResultsAtSameAsApply(t *testing.T) {
	f := New(Config{})
	for i, c := range []struct {
		name string
		cmds []Command
	}{
		{"grants", []Command{Acquire{Key: "a", Interval: 100, Max: 3, Slop: 10}, Acquire{Key: "a", Interval: 100, Max: 3, Slop: 10}, Acquire{Key: "b", Interval: 1 << 40, Max: 0, Slop: 0}}},
		{"denial", []Command{Acquire{Key: "c", Interval: 1000, Max: 0, Slop: 0}, Acquire{Key: "c", Interval: 1000, Max: 0, Slop: 0}}},
		{"cells", []Command{CellThrottle{Key: "cl", MaxBurst: 2, Count: 10, Period: 60, Quantity: 1}, Reset{Keys: []string{"a", "zz"}}}},
		{"wrong type", []Command{Acquire{Key: "cl", Interval: 100, Max: 1, Slop: 10}, Acquire{Key: "d", Interval: 100, Max: 1, Slop: 10}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := Entry{Now: 1000 + int64(i), Commands: c.cmds}.Encode()
			index := uint64(i + 1)
			want := f.Apply(&raft.Log{Index: index, Data: data}).([]Result)
			got, fate := f.ResultsAt(index, EntrySum(data))
			if fate != FateCommitted || len(got) != len(want) {
				t.Fatalf("fate %v, %d results, want %d", fate, len(got), len(want))
			}
			for j := range want {
				if got[j].Permit != want[j].Permit || got[j].Cell != want[j].Cell || got[j].Count != want[j].Count || fmt.Sprint(got[j].Err) != fmt.Sprint(want[j].Err) {
					t.Errorf("result %d: %+v, Apply gave %+v", j, got[j], want[j])
				}
			}
		})
	}
}
