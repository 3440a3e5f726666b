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
