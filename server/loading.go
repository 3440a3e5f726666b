package server

import (
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
// It is done when the node has applied its whole log as of start, or has
// applied everything a known leader says is committed (entries past that
// were never committed and may be replaced). Once done it stays done.
func (s *Server) loading() bool {
	if s.loaded.Load() {
		return false
	}
	applied := s.raft.AppliedIndex()
	done := applied >= s.loadTarget
	if !done {
		if _, id := s.raft.LeaderWithID(); id != "" {
			commit, err := strconv.ParseUint(s.raft.Stats()["commit_index"], 10, 64)
			done = err == nil && commit > 0 && applied >= commit && s.raft.State() != raft.Candidate
		}
	}
	if done {
		s.loaded.Store(true)
	}
	return !done
}
