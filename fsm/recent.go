package fsm

import "hash/crc64"

// recentEntries is how many applied entries' results an FSM remembers.
const recentEntries = 4096

var crcTable = crc64.MakeTable(crc64.ECMA)

// EntrySum is the checksum ResultsAt compares entries by.
func EntrySum(data []byte) uint64 { return crc64.Checksum(data, crcTable) }

// appliedEntry is what Apply remembers of one entry (see ResultsAt).
type appliedEntry struct {
	index   uint64
	sum     uint64
	results []Result
}

// recent remembers the last recentEntries applied entries' results, in a
// ring indexed by log index. It is local to this replica, not replicated
// state: it only lets a node that lost leadership learn what became of an
// entry it had proposed.
type recent struct {
	ring [recentEntries]appliedEntry
}

func (r *recent) add(index uint64, data []byte, results []Result) {
	r.ring[index%recentEntries] = appliedEntry{index: index, sum: EntrySum(data), results: results}
}

// AppliedIndex returns the index of the last log entry Apply applied, or 0
// before the first since New or the last Restore (a snapshot's index is
// Raft's, not known here).
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// EntryFate is what became of an entry a node proposed, as ResultsAt
// tells it.
type EntryFate int

// The fates ResultsAt reports.
const (
	// FatePending: this node has not applied the entry's index yet.
	FatePending EntryFate = iota
	// FateCommitted: the entry was committed and applied.
	FateCommitted
	// FateReplaced: another entry was committed at its index, so it never
	// will be.
	FateReplaced
	// FateForgotten: the index was applied too long ago to remember, or
	// skipped by installing a snapshot.
	FateForgotten
)

// ResultsAt reports what became of the entry with checksum sum (EntrySum)
// that this node proposed at index, and its results if it was committed.
func (f *FSM) ResultsAt(index, sum uint64) ([]Result, EntryFate) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.applied < index {
		return nil, FatePending
	}
	e := f.recent.ring[index%recentEntries]
	switch {
	case e.index != index:
		return nil, FateForgotten
	case e.sum != sum:
		return nil, FateReplaced
	}
	return e.results, FateCommitted
}
