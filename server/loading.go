package server

import (
	"fmt"
	"strconv"

	"github.com/hashicorp/raft"
)

// msgLoading is Redis's reply while it loads its data, in throttledb's
// words.
const msgLoading = "LOADING throttledb is loading the dataset in memory"

// loading reports whether this node may still lack entries it had in its
// log when it started: after a restart, Raft restores the last snapshot at
// once but applies the log after it only when it learns how far it is
// committed, so a read in between (DBSIZE) would answer from older state.
// It is done when the node has applied its whole log as of start, or, if a
// leader replaced the end of that log (it was never committed) with a
// shorter one, everything the leader says is committed. Once done it stays
// done.
func (s *Server) loading() bool {
	if s.loaded.Load() {
		return false
	}
	// The state machine's own index, not Raft's: Raft counts a batch as
	// applied when it hands it to the state machine, before it is. An FSM
	// that has applied nothing since a snapshot was restored holds exactly
	// the snapshot.
	stats := s.raft.Stats()
	applied := s.fsm.AppliedIndex()
	if applied == 0 {
		applied, _ = strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	}
	done := applied >= s.loadTarget
	if !done && s.raft.LastIndex() < s.loadTarget {
		// The end of the log as of start was never committed, and the
		// leader has replaced it with a shorter log: what the leader says
		// is committed is all there is to load.
		if _, id := s.raft.LeaderWithID(); id != "" {
			commit, err := strconv.ParseUint(stats["commit_index"], 10, 64)
			done = err == nil && commit > 0 && applied >= commit && s.raft.State() != raft.Candidate
		}
	}
	if done {
		s.loaded.Store(true)
	}
	return !done
}

// lastCommandIndex returns the index of the last entry in the log store
// that the state machine applies (a raft.LogCommand), or 0 if the log
// holds none: the point a restarted node must reach before it is done
// loading. Raft never hands the state machine the no-op every new leader
// appends, nor configuration changes, so a log that ends with them would
// otherwise keep the node LOADING until some client wrote. Only those
// trailing entries are read.
func lastCommandIndex(store raft.LogStore) (uint64, error) {
	first, err := store.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := store.LastIndex()
	if err != nil {
		return 0, err
	}
	var l raft.Log
	for i := last; i >= first && i > 0; i-- {
		if err := store.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	// No command in the log after the snapshot (or no log at all, as
	// after a recovery that kept only a snapshot): restoring the snapshot
	// at start loaded everything.
	return 0, nil
}
