package fsm

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"hash/crc64"
)

// recentEntries is how many applied entries' results an FSM remembers.
const recentEntries = 4096

var crcTable = crc64.MakeTable(crc64.ECMA)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EntrySum is the checksum ResultsAt compares entries by: two CRC-32s
// (Castagnoli and IEEE) side by side. Apply takes it of every entry on
// every node, and the CPU computes both in hardware, some ten times as
// fast as the table-driven CRC-64 (4% of an applied command's cost under
// key churn); the sum never leaves the process, so it may change between
// versions.
func EntrySum(data []byte) uint64 {
	return uint64(crc32.Checksum(data, castagnoli))<<32 | uint64(crc32.ChecksumIEEE(data))
}

// appliedEntry is what Apply remembers of one entry (see ResultsAt): its
// results encoded (AppendResults), or, when one of them is an error, as
// they are, so that the error keeps its detail (errors are rare, and an
// encoded error is its bare sentinel).
//
// Why encoded: a Result is 104 bytes on the Go heap, and the ring holds up
// to recentResults of them, 13 MB live and up to twice that resident with
// the collector's headroom, more than a tenth of what a million keys take;
// encoded, a result is 8-20 bytes (about 17 for a grant: its slot times
// are six-byte varints). ResultsAt, which decodes, runs only when a node
// lost leadership with entries in flight.
type appliedEntry struct {
	index   uint64
	sum     uint64
	n       int      // how many results
	enc     []byte   // the results encoded, or nil
	results []Result // the results, when not encoded
}

// recentResults bounds the results the ring holds in all: 4096 entries of
// 512 commands (a full batch, as pipelined clients make) would otherwise
// hold a quarter of a gigabyte, more than a million keys take. The oldest
// entries are forgotten first; 128k results are still dozens of full
// entries, and thousands of the size unpipelined load makes.
const recentResults = 1 << 17

// recent remembers the results of the last applied entries, at most
// recentEntries of them and recentResults results in all, in a ring
// indexed by log index. It is local to this replica, not replicated state:
// it only lets a node that lost leadership learn what became of an entry
// it had proposed.
type recent struct {
	ring [recentEntries]appliedEntry
	// held is how many results the ring holds; from is the oldest index
	// whose results may still be held.
	held, from uint64
	scratch    []byte // add's encoding buffer, reused
}

func (r *recent) add(index uint64, data []byte, results []Result) {
	slot := &r.ring[index%recentEntries]
	r.held -= uint64(slot.n)
	*slot = appliedEntry{index: index, sum: EntrySum(data), n: len(results)}
	slot.results = results
	if !anyError(results) {
		// Encoding fails only for an error that is not a command error,
		// and there is none.
		var err error
		if r.scratch, err = AppendResults(r.scratch[:0], results); err == nil {
			// An exact copy: an append-grown slice would hold up to
			// twice the bytes.
			slot.enc, slot.results = bytes.Clone(r.scratch), nil
		}
	}
	r.held += uint64(len(results))
	if index >= recentEntries {
		r.from = max(r.from, index-recentEntries+1)
	}
	for r.held > recentResults && r.from < index {
		if e := &r.ring[r.from%recentEntries]; e.index == r.from {
			r.held -= uint64(e.n)
			*e = appliedEntry{}
		}
		r.from++
	}
}

func anyError(rs []Result) bool {
	for i := range rs {
		if rs[i].Err != nil {
			return true
		}
	}
	return false
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
	e := &f.recent.ring[index%recentEntries]
	switch {
	case e.index != index:
		return nil, FateForgotten
	case e.sum != sum:
		return nil, FateReplaced
	case e.enc == nil:
		return e.results, FateCommitted
	}
	rs, err := DecodeResults(e.enc)
	if err != nil {
		// The ring encoded them itself: decoding cannot fail.
		panic(fmt.Sprintf("fsm: results of entry %d: %v", index, err))
	}
	return rs, FateCommitted
}
