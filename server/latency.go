package server

import (
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
}

// timedLogStore is a log store that times its writes.
type timedLogStore struct {
	logStore
	h *latency.Histogram
}

// StoreLog implements raft.LogStore.
func (t timedLogStore) StoreLog(l *raft.Log) error {
	defer t.h.Since(time.Now())
	return t.logStore.StoreLog(l)
}

// StoreLogs implements raft.LogStore.
func (t timedLogStore) StoreLogs(logs []*raft.Log) error {
	defer t.h.Since(time.Now())
	return t.logStore.StoreLogs(logs)
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
	h *latency.Histogram
}

// Apply implements raft.FSM. It hands Raft the results in an
// appliedResults, which the proposer empties (take) once it has read them.
func (t timedFSM) Apply(l *raft.Log) any {
	defer t.h.Since(time.Now())
	res, _ := t.FSM.Apply(l).([]fsm.Result)
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

// latencyInfo returns the INFO latency section's fields.
func (s *Server) latencyInfo() []string {
	p, r := s.prop.lat, s.raft.lat
	return []string{
		"latency_proposer_queue", p.queue.Stats().String(),
		"latency_raft_apply", p.raft.Stats().String(),
		"latency_log_store", r.logStore.Stats().String(),
		"latency_fsm_apply", r.fsmApply.Stats().String(),
		"latency_command", p.command.Stats().String(),
		"batch_commands", p.batch.String(),
		"latency_forward_gather", s.fwd.lat.gather.Stats().String(),
		"latency_forward_request", s.fwd.lat.request.Stats().String(),
		"forward_batch_commands", s.fwd.lat.batch.String(),
		"forward_requests_in_flight", s.fwd.lat.inflight.String(),
	}
}
