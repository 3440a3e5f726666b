package fsm

import (
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
