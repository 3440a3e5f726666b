package server

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/latency"
)

// proposerLatency times what a proposal goes through on the node whose
// proposer batches it (the leader; a follower forwards): always on, a few
// atomic adds per batch and per proposal.
type proposerLatency struct {
	// queue: enqueued until its batch is handed to Raft (per proposal).
	queue latency.Histogram
	// raft: Raft's Apply until its future answers (per batch): the
	// leader's log write, replication to a majority, commit, and the
	// state machine's apply.
	raft latency.Histogram
	// command: enqueued until its outcome is known (per proposal).
	command latency.Histogram
	// batch: commands per log entry.
	batch latency.Counter
}

// raftLatency times Raft's work on any node, leader or follower.
type raftLatency struct {
	// logStore: one StoreLogs call (a write and its fsync). On the leader
	// it is its own log write; on a follower, the write it does before it
	// acknowledges an AppendEntries.
	logStore latency.Histogram
	// fsmApply: the state machine's apply of one entry.
	fsmApply latency.Histogram
	// commitWait: one entry, from the end of this node's own log write to
	// the start of its apply. On the leader, the followers' writes and
	// acknowledgements (and the commit's bookkeeping); on a follower, the
	// wait for the leader to say the entry is committed.
	commitWait latency.Histogram
	// stored is when this node's log write of each recent entry ended.
	stored storedRing
}

// storedRing remembers, by log index, when this node's write of each of
// its newest entries ended (monoNow), for commitWait: one writer (the
// goroutine Raft stores from), one reader (Raft's apply goroutine), no
// lock. It holds far more entries than are ever in flight; an entry it
// no longer holds (or never did: one restored from a snapshot) is simply
// not timed.
type storedRing struct {
	// slots[i%storedRingSize] holds entry i as key i+1 (0: empty).
	slots [storedRingSize]struct{ key, at atomic.Uint64 }
}

const storedRingSize = 256

// put records that the write of entry index ended at at.
func (r *storedRing) put(index uint64, at int64) {
	s := &r.slots[index%storedRingSize]
	s.key.Store(0) // no reader matches while at changes
	s.at.Store(uint64(at))
	s.key.Store(index + 1)
}

// get returns when the write of entry index ended, if the ring has it.
func (r *storedRing) get(index uint64) (int64, bool) {
	s := &r.slots[index%storedRingSize]
	if s.key.Load() != index+1 {
		return 0, false
	}
	at := int64(s.at.Load())
	// Rewritten meanwhile: at may be the newer entry's.
	return at, s.key.Load() == index+1
}

// monoBase anchors monoNow.
var monoBase = time.Now()

// monoNow is a monotonic clock reading in nanoseconds, never 0, that fits
// an atomic.Int64 (a time.Time does not).
func monoNow() int64 { return monoAt(time.Now()) }

// monoAt is monoNow for a reading already taken.
func monoAt(t time.Time) int64 { return int64(t.Sub(monoBase)) + 1 }

// timedLogStore is a log store that times its writes and remembers when
// each entry's ended.
type timedLogStore struct {
	logStore
	lat *raftLatency
}

// StoreLog implements raft.LogStore.
func (t timedLogStore) StoreLog(l *raft.Log) error {
	return t.StoreLogs([]*raft.Log{l})
}

// StoreLogs implements raft.LogStore.
func (t timedLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := t.logStore.StoreLogs(logs)
	end := time.Now()
	t.lat.logStore.Record(end.Sub(start))
	if err == nil {
		at := monoAt(end)
		for _, l := range logs {
			t.lat.stored.put(l.Index, at)
		}
	}
	return err
}

// IsMonotonic implements raft.MonotonicLogStore for a store that does
// (raft-wal): raft must see through the wrapper, since after installing a
// snapshot it then resets the log instead of leaving a gap in it.
func (t timedLogStore) IsMonotonic() bool {
	m, ok := t.logStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// timedFSM is the state machine with its applies timed.
type timedFSM struct {
	*fsm.FSM
	lat *raftLatency
}

// Apply implements raft.FSM. It hands Raft the results in an
// appliedResults, which the proposer empties (take) once it has read them.
func (t timedFSM) Apply(l *raft.Log) any {
	start := time.Now()
	if at, ok := t.lat.stored.get(l.Index); ok {
		t.lat.commitWait.Record(time.Duration(monoAt(start) - at))
	}
	res, _ := t.FSM.Apply(l).([]fsm.Result)
	t.lat.fsmApply.Since(start)
	return &appliedResults{res: res}
}

// appliedResults carries an entry's results from Apply to the proposer
// through Raft's future. Why not the slice itself: on the leader, Raft's
// log cache keeps a pointer into each recent entry's future, and with it
// the future's response, so the results of the last logCacheEntries
// entries (up to Config.MaxBatch results of 104 bytes each) stayed live
// long after they were answered: 3 MB at rest after a pipelined load.
// take drops the box's hold on them.
type appliedResults struct {
	res []fsm.Result
}

// take returns the results and forgets them; only the proposer that
// submitted the entry calls it, once.
func (a *appliedResults) take() []fsm.Result {
	res := a.res
	a.res = nil
	return res
}

// latencyStage is one histogram of INFO latency: INFO's field is
// "latency_" + name, /metrics' stage label is name.
type latencyStage struct {
	name string
	h    *latency.Histogram
}

// latencyStages lists a write's stages in the order a command meets them:
// the one list INFO latency and /metrics both read.
func (s *Server) latencyStages() []latencyStage {
	p, r, f := s.prop.lat, s.raft.lat, &s.fwd.lat
	return []latencyStage{
		{"forward_gather", &f.gather},
		{"forward_request", &f.request},
		{"proposer_queue", &p.queue},
		{"raft_apply", &p.raft},
		{"log_store", &r.logStore},
		{"commit_wait", &r.commitWait},
		{"fsm_apply", &r.fsmApply},
		{"command", &p.command},
		{"reply", &s.replyLat},
	}
}

// latencyInfo returns the INFO latency section's fields.
func (s *Server) latencyInfo() []string {
	var out []string
	for _, st := range s.latencyStages() {
		out = append(out, "latency_"+st.name, st.h.Stats().String())
	}
	return append(out,
		"batch_commands", s.prop.lat.batch.String(),
		"forward_batch_commands", s.fwd.lat.batch.String(),
		"forward_requests_in_flight", s.fwd.lat.inflight.String(),
	)
}
