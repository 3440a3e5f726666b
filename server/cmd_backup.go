package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

// cmdRaftBackup serves RAFT.BACKUP: the leader's whole state (every
// unexpired key, the cluster clock, the counters) as one bulk string, a
// snapshot image that RAFT.RESTORE takes back.
//
// Why the leader, after VerifyLeader: a ready leader has applied every
// entry any leader acknowledged (the post-election barrier, and each grant
// is answered only after it is applied here), so its state holds every
// acknowledged grant. A follower's may lag.
func cmdRaftBackup(s *Server, c *call) (any, error) {
	return s.atLeader(c, func(ctx context.Context) (any, error) {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		var buf bytes.Buffer
		if err := s.fsm.Backup(&buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	})
}

// cmdRaftRestore serves RAFT.RESTORE image: replace the whole throttle
// state of the cluster with a backup taken by RAFT.BACKUP (or a snapshot's
// state.bin). Membership is kept as it is, and the cluster clock never runs
// backwards (see restoreImage).
//
// It goes through Raft's Restore on the leader, which writes the image as a
// snapshot at a new index of the current term and sends it to every
// follower. That is the safe way to load old state: copying a snapshot into
// fresh data directories would leave the nodes at term 0 with a snapshot of
// a later term, and Raft's vote comparison could then elect a node missing
// committed entries.
func cmdRaftRestore(s *Server, c *call) (any, error) {
	// Check the image here, on whichever node received it: a bad one is
	// refused before anything reaches the cluster. The leader checks again
	// against its own clock (restoreImage).
	if err := fsm.ValidateBackup(bytes.NewReader(c.args[1]), s.backupClock()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBackup, err)
	}
	return s.atLeader(c, func(ctx context.Context) (any, error) {
		img, keys, err := s.restoreImage(c.args[1])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidBackup, err)
		}
		meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(img))}
		if err := s.raft.Restore(meta, bytes.NewReader(img), s.cfg.ApplyTimeout); err != nil {
			if errors.Is(err, ErrShuttingDown) {
				return nil, err // refused before it began: nothing changed
			}
			return nil, classifyApplyErr(err)
		}
		s.log.Warn("state replaced from a backup", "keys", keys, "bytes", len(img))
		return keys, nil
	})
}

// restoreImage turns a backup image into the snapshot the cluster installs,
// and counts its unexpired keys.
//
// The backup's own membership (RESP addresses of the nodes it was taken
// on, perhaps of another cluster still running) is replaced by this
// cluster's, so that followers never forward to a stale address. Its clock
// is raised to this cluster's if it is behind: cluster time never runs
// backwards, so a slot granted before the restore is never followed by an
// earlier one. Both changes are made by applying an ordinary entry to a
// scratch state machine, stamped with this cluster's clock (not read from a
// wall clock); every node then installs the same result.
func (s *Server) restoreImage(backup []byte) ([]byte, int, error) {
	if err := fsm.ValidateBackup(bytes.NewReader(backup), s.backupClock()); err != nil {
		return nil, 0, err
	}
	scratch := fsm.New(fsm.Config{})
	if err := scratch.Restore(io.NopCloser(bytes.NewReader(backup))); err != nil {
		return nil, 0, err
	}
	now := s.fsm.Clock(0)
	var cmds []fsm.Command
	for _, n := range scratch.Nodes() {
		cmds = append(cmds, fsm.RemoveNode{ID: n.ID})
	}
	for _, n := range s.fsm.Nodes() {
		cmds = append(cmds, fsm.SetNode{ID: n.ID, RESPAddr: n.RESPAddr})
	}
	entry := fsm.Entry{Now: now, Commands: cmds}
	scratch.Apply(&raft.Log{Data: entry.Encode()})
	var buf bytes.Buffer
	if err := scratch.Backup(&buf); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), scratch.DBSize(now), nil
}

// backupClock is the cluster time a backup's clock is checked against
// (fsm.MaxBackupLead): the later of this node's wall clock and its state
// machine's clock, so that neither a node whose wall clock is behind nor a
// cluster whose clock ran ahead refuses a current backup.
func (s *Server) backupClock() int64 {
	return s.fsm.Clock(time.Now().UnixMilli())
}
