package server

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// Modes of everything in a data directory: only the node's own user may
// read its log and snapshots (they hold every key name and, in the log,
// every command).
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// tightenModes makes the data directory 0700 and raft.db and everything
// under snapshots/ and wal/ 0700 (directories) or 0600 (files), so that a data
// directory created by an older version (0755 directories, 0644 snapshot
// files) is private from the first start of this one. Modes already as
// tight are left alone.
func tightenModes(dir string) error {
	if err := tighten(dir, dirMode); err != nil {
		return err
	}
	if err := tighten(filepath.Join(dir, "raft.db"), fileMode); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, sub := range []string{snapshotsDir, walDir} {
		if err := tightenTree(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

// tightenTree makes the directories under root 0700 and its files 0600; a
// missing root is fine.
func tightenTree(root string) error {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tighten(path, dirMode)
		case d.Type().IsRegular():
			return tighten(path, fileMode)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// tighten removes from path's mode every permission bit that want lacks.
func tighten(path string, want fs.FileMode) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&^want == 0 {
		return nil
	}
	return os.Chmod(path, st.Mode().Perm()&want)
}

// privateSnapshots is raft's FileSnapshotStore with private modes: each
// snapshot's directory is made 0700 and its meta.json and state.bin 0600
// once it is complete. FileSnapshotStore creates them 0755 and 0644 (before
// the umask) and offers no option.
//
// Why a wrapper and not a umask in main: the umask is process-wide state a
// library (server is embedded in tests and other programs) must not change,
// and it is racy with every other goroutine creating files. The files are
// never readable to others even while a snapshot is being written: the
// snapshots directory above them is 0700 (openStores), so only the owner can
// reach them; the chmod makes them private on their own too, for copies and
// backups of the directory.
type privateSnapshots struct {
	*raft.FileSnapshotStore
	path string // the snapshots directory (FileSnapshotStore keeps it private)
}

// Create implements raft.SnapshotStore.
func (p privateSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := p.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &privateSink{SnapshotSink: sink, store: p}, nil
}

// privateSink tightens a snapshot's modes once raft has moved it into
// place.
type privateSink struct {
	raft.SnapshotSink
	store privateSnapshots
}

// Close implements raft.SnapshotSink.
func (s *privateSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	// raft renames the snapshot's directory from "<id>.tmp" to "<id>" in
	// Close, under the store's snapshots directory.
	dir := filepath.Join(s.store.path, s.ID())
	if err := tighten(dir, dirMode); err != nil {
		return err
	}
	for _, f := range []string{"meta.json", "state.bin"} {
		if err := tighten(filepath.Join(dir, f), fileMode); err != nil {
			return err
		}
	}
	return nil
}
