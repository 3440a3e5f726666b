package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
	"github.com/throttledb/throttledb/fsm"
	"go.etcd.io/bbolt"
)

// Log stores Config.LogStore (--log-store) chooses between.
const (
	// LogStoreBolt is raft-boltdb: the Raft log and stable store in one
	// bbolt file, raft.db, in the data directory.
	LogStoreBolt = "bolt"
	// LogStoreWAL is raft-wal (the log store Consul moved to): append-only
	// segment files with a CRC over every write batch, and a small bbolt
	// file for the stable store and the segment list, under wal/ in the
	// data directory. Every write is fsynced; Config.NoSync does not apply.
	LogStoreWAL = "wal"
)

// DefaultLogStore is the log store a new data directory gets when
// Config.LogStore is empty: raft-wal. It commits faster than raft-boltdb
// (through a 3-node leader about 1.5x without pipelining; its write and
// fsync bound a cluster's throughput: see docs/performance.md), and
// passes the same durability tests: kill -9 under load, restart, recover,
// the fault-injection suite, damage detection at start. A data directory
// keeps the store it was created with, so existing bolt directories stay
// bolt.
const DefaultLogStore = LogStoreWAL

var (
	// ErrLogStoreMismatch is returned by Start and Recover when the data
	// directory holds the other log store than the one configured: a data
	// directory remembers the store it was created with (raft.db for bolt,
	// wal/ for wal), and is never converted silently.
	ErrLogStoreMismatch = errors.New("data directory holds a different log store")
	// ErrUnknownLogStore is returned for a Config.LogStore other than
	// "bolt" or "wal".
	ErrUnknownLogStore = errors.New("unknown log store")
)

// walDir is the directory raft-wal keeps its files in, under the data
// directory; its presence is how a data directory remembers it uses wal.
const walDir = "wal"

// logStore is what Raft needs of a log store: the log, the stable store
// (both implementations keep them together), and a Close.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// detectLogStore returns the log store the data directory dir holds ("" if
// none yet: a new data directory).
func detectLogStore(dir string) (string, error) {
	_, berr := os.Stat(filepath.Join(dir, "raft.db"))
	_, werr := os.Stat(filepath.Join(dir, walDir))
	for _, err := range []error{berr, werr} {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	switch {
	case berr == nil && werr == nil:
		return "", fmt.Errorf("%w: %s holds both raft.db (bolt) and %s/ (wal); move the one not in use aside", ErrLogStoreMismatch, dir, walDir)
	case berr == nil:
		return LogStoreBolt, nil
	case werr == nil:
		return LogStoreWAL, nil
	}
	return "", nil
}

// chooseLogStore returns the store to open in dir: the one it holds, which
// must be want unless want is empty; for a new directory, want or the
// default.
func chooseLogStore(dir, want string) (string, error) {
	switch want {
	case "", LogStoreBolt, LogStoreWAL:
	default:
		return "", fmt.Errorf("%w: %q (want %s or %s)", ErrUnknownLogStore, want, LogStoreBolt, LogStoreWAL)
	}
	have, err := detectLogStore(dir)
	if err != nil {
		return "", err
	}
	switch {
	case have == "" && want == "":
		return DefaultLogStore, nil
	case have == "":
		return want, nil
	case want != "" && have != want:
		return "", fmt.Errorf("%w: %s holds a %s log store, but the %s log store is configured (--log-store %s); start it with --log-store %s",
			ErrLogStoreMismatch, dir, have, want, want, have)
	}
	return have, nil
}

// openBolt opens raft.db in dir after the damage checks (see openStores).
//
// keep, if not nil, receives the newest snapshot's image (see
// checkSnapshots).
func openBolt(dir string, noSync bool, keep func(*fsm.Image, uint64)) (logStore, error) {
	path := filepath.Join(dir, "raft.db")
	unlock, err := lockDataFile(path, time.Second)
	if err != nil {
		return nil, err
	}
	snaps := startSnapshotCheck(dir)
	if err := checkBoltFile(path); err != nil {
		unlock()
		snaps.wait()
		return nil, err
	}
	unlock()
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:   path,
		NoSync: noSync,
		// bbolt locks the file; without a timeout a second process on the
		// same directory would hang silently instead of failing.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		snaps.wait()
		return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, dir)
	}
	if err != nil {
		snaps.wait()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	logErr := checkLogStore(path, store, snaps.index, false)
	if err := snaps.finish(logErr, keep); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

// walStore is raft-wal holding the lock on its directory until closed.
type walStore struct {
	*wal.WAL
	segs   *segmentFS
	unlock func()
}

// Close implements io.Closer. raft-wal's Close (v0.4.1 on) closes its
// metadata file too, so a node started again in the same process can open
// it.
func (w *walStore) Close() error {
	err := w.WAL.Close()
	w.segs.close()
	w.unlock()
	return err
}

// openWAL opens dir/wal after the damage checks (see checkWAL). It holds
// an exclusive lock on the wal directory for as long as the store is open:
// raft-wal's bbolt file is opened without a timeout, so a second process
// would otherwise hang on it instead of failing with ErrDataDirInUse.
//
// keep, if not nil, receives the newest snapshot's image (see
// checkSnapshots). segmentSize is the size of a segment file; 0 is
// raft-wal's default (64 MiB), which nodes use (tests rotate sooner).
func openWAL(dir string, hlog hclog.Logger, keep func(*fsm.Image, uint64), segmentSize int) (logStore, error) {
	wdir := filepath.Join(dir, walDir)
	if err := os.Mkdir(wdir, dirMode); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	unlock, err := lockDataFile(wdir, time.Second)
	if err != nil {
		return nil, err
	}
	snaps := startSnapshotCheck(dir)
	fail := func(err error) (logStore, error) {
		unlock()
		if serr := snaps.finish(nil, nil); serr != nil {
			return nil, serr // the snapshots' damage is reported first, as before
		}
		return nil, err
	}
	sealed, err := checkWAL(wdir)
	if err != nil {
		return fail(err)
	}
	if sealed != nil {
		// finishSeal writes: only into a directory whose snapshots pass.
		if snaps.wait(); snaps.err != nil {
			return fail(snaps.err)
		}
		if err := finishSeal(wdir, *sealed); err != nil {
			return fail(err)
		}
		hlog.Warn("recorded the seal of the tail segment raft-wal had sealed and not recorded (a crash between the two)", "dir", wdir)
	}
	meta := &metadb.BoltMetaDB{}
	segs := newSegmentFS(wdir)
	w, err := wal.Open(wdir,
		wal.WithMetaStore(meta),
		wal.WithLogger(hlog.Named("wal")),
		wal.WithSegmentFiler(segment.NewFiler(wdir, segs)),
		wal.WithSegmentSize(segmentSize))
	if err != nil {
		meta.Close()
		segs.close()
		// checkWAL passed, so this is not damage it knows; raft-wal's own
		// ErrCorrupt still is.
		if errors.Is(err, types.ErrCorrupt) {
			return fail(corrupt(wdir, err))
		}
		return fail(fmt.Errorf("open raft log: %w", err))
	}
	store := &walStore{WAL: w, segs: segs, unlock: unlock}
	// raft-wal creates its bbolt file 0644; the directory is 0700, so it
	// was never reachable by others, but a copy of it should be private too.
	if err := tighten(filepath.Join(wdir, metadb.FileName), fileMode); err != nil {
		store.Close()
		return nil, err
	}
	logErr := checkLogStore(wdir, store, snaps.index, true)
	if err := snaps.finish(logErr, keep); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

// snapshotCheck is checkSnapshots running on its own goroutine, so that
// decoding the newest snapshot (a second or more with a million keys)
// overlaps the log store's checks instead of preceding them.
type snapshotCheck struct {
	// index is the newest snapshot's index as its meta.json records it,
	// known at once: what the log check needs (entries up to it may be
	// compacted away). The full check confirms it or fails.
	index uint64
	done  chan struct{}
	img   *fsm.Image
	sum   uint64
	err   error
}

func startSnapshotCheck(dir string) *snapshotCheck {
	c := &snapshotCheck{index: newestSnapshotIndex(dir), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		var newest uint64
		newest, c.img, c.sum, c.err = checkSnapshots(dir)
		if c.err == nil && newest != c.index {
			c.err = corrupt(filepath.Join(dir, snapshotsDir), fmt.Errorf("newest snapshot index %d, meta.json said %d", newest, c.index))
		}
	}()
	return c
}

// wait waits for the check to end.
func (c *snapshotCheck) wait() { <-c.done }

// finish waits for the check and returns its error, else logErr (the log
// check's, which may come of a snapshot the check refuses, so that one is
// reported first); with neither, keep (if not nil) gets the image.
func (c *snapshotCheck) finish(logErr error, keep func(*fsm.Image, uint64)) error {
	c.wait()
	if c.err != nil {
		return c.err
	}
	if logErr != nil {
		return logErr
	}
	if keep != nil && c.img != nil {
		keep(c.img, c.sum)
	}
	return nil
}
