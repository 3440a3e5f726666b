package server

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// Names of the spare segment file in the wal directory. raft-wal reads
// only files named *.wal, so it never sees either.
const (
	spareName    = "spare.segment"     // zero-filled and synced: ready
	spareTmpName = "spare.segment.tmp" // being filled; removed at open
)

// spareChunk is how much of the spare is zeroed between two syncs, and
// spareRest the pause after each: the spare is written alongside the log,
// and on ext4 (data=ordered) a log fsync also waits for the data of any
// file whose extents changed in the same journal transaction, so the spare
// must never hold much unsynced data.
const (
	spareChunk = 1 << 20
	spareRest  = 2 * time.Millisecond
)

// segmentFS is the file system raft-wal writes its segments through: its
// own (walfs) with two changes.
//
// Segment files are private (0600); raft-wal creates them 0644.
//
// A new segment is, when one is ready, a spare file the node zero-filled
// and synced in the background while the previous segment filled up. raft-
// wal preallocates a segment with fallocate, which on ext4 and XFS leaves
// "unwritten" extents: the first write to each block converts it, a
// metadata change that every fsync then commits to the journal. In a file
// whose blocks are already written, an fsync flushes only the data. On
// this project's machine an append of 3,000 bytes plus fsync took 270 µs
// in a zero-filled file against 350-450 µs in a fallocated one (600 against
// 870-1,400 µs with the machine busy); the leader and then a follower each
// make one such write per log entry before it commits (docs/performance.md).
//
// The spare is prepared once the segment being written is half full, so a
// node that writes little never writes one (a new node's first segment is
// the fallocated kind), and one that writes much has it ready well before
// the rotation. A missing spare is never an error: Create falls back to
// raft-wal's own.
type segmentFS struct {
	*walfs.FS
	dir string

	mu      sync.Mutex
	ready   uint64 // size of the spare at spareName; 0: none
	filling bool
	closed  bool
	taken   int // segments that were spares (tests)
	wg      sync.WaitGroup
	stop    chan struct{}
	// filled, if set (tests), is called after each attempt to prepare a
	// spare, with its error.
	filled func(error)
}

// newSegmentFS returns the segment file system of wal directory dir,
// removing a spare a previous process left half-filled and keeping one it
// finished.
func newSegmentFS(dir string) *segmentFS {
	fs := &segmentFS{FS: walfs.New(), dir: dir, stop: make(chan struct{})}
	_ = os.Remove(filepath.Join(dir, spareTmpName))
	if fi, err := os.Stat(filepath.Join(dir, spareName)); err == nil && fi.Mode().IsRegular() {
		fs.ready = uint64(fi.Size())
	}
	return fs
}

// Create implements types.VFS: the segment file name of size bytes, from
// the spare if one of that size is ready.
func (fs *segmentFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	if f, ok := fs.takeSpare(dir, name, size); ok {
		return f, nil
	}
	f, err := fs.FS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Join(dir, name), fileMode); err != nil {
		f.Close()
		return nil, err
	}
	return &segmentFile{WritableFile: f, fs: fs, size: size}, nil
}

// OpenWriter implements types.VFS: the tail segment reopened at start,
// watched like a new one so that its spare is prepared too.
func (fs *segmentFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	f, err := fs.FS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &segmentFile{WritableFile: f, fs: fs, size: uint64(fi.Size())}, nil
}

// takeSpare renames a ready spare of size bytes to name and opens it.
// Whatever fails leaves Create to make the file the usual way.
func (fs *segmentFS) takeSpare(dir, name string, size uint64) (types.WritableFile, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if dir != fs.dir || fs.ready != size || size == 0 {
		return nil, false
	}
	fs.ready = 0
	spare, path := filepath.Join(dir, spareName), filepath.Join(dir, name)
	if _, err := os.Lstat(path); err == nil {
		return nil, false // raft-wal's Create refuses an existing name: let it
	}
	if err := os.Rename(spare, path); err != nil {
		_ = os.Remove(spare)
		return nil, false
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		// The name now holds a zeroed file of the right size: raft-wal's
		// Create would refuse it, so remove it and let Create make another.
		_ = os.Remove(path)
		return nil, false
	}
	fs.taken++
	sf := &segmentFile{WritableFile: f, fs: fs, size: size}
	sf.syncDir.Store(true) // the rename is durable only once the directory is
	return sf, true
}

// prepare starts filling a spare of size bytes unless one is ready or
// being filled.
func (fs *segmentFS) prepare(size uint64) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed || fs.filling || fs.ready == size || size == 0 {
		return
	}
	fs.filling = true
	fs.wg.Add(1)
	go func() {
		defer fs.wg.Done()
		err := fs.fill(size)
		fs.mu.Lock()
		fs.filling = false
		if err == nil {
			fs.ready = size
		}
		report := fs.filled
		fs.mu.Unlock()
		if report != nil {
			report(err)
		}
	}()
}

// errSpareStopped ends a fill when the store closes.
var errSpareStopped = errors.New("wal closed")

// fill writes a zeroed, synced file of size bytes at spareTmpName and
// renames it to spareName.
func (fs *segmentFS) fill(size uint64) (err error) {
	tmp := filepath.Join(fs.dir, spareTmpName)
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, fileMode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	zero := make([]byte, spareChunk)
	for off := uint64(0); off < size; off += spareChunk {
		select {
		case <-fs.stop:
			return errSpareStopped
		default:
		}
		n := min(size-off, spareChunk)
		if _, err := f.WriteAt(zero[:n], int64(off)); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		time.Sleep(spareRest)
	}
	// Renamed only once complete: a spare found at start is whole. The
	// directory is synced when the spare becomes a segment.
	return os.Rename(tmp, filepath.Join(fs.dir, spareName))
}

// close stops a fill in progress and waits for it. The spare, if ready,
// stays for the next start.
func (fs *segmentFS) close() {
	fs.mu.Lock()
	if !fs.closed {
		fs.closed = true
		close(fs.stop)
	}
	fs.mu.Unlock()
	fs.wg.Wait()
}

// segmentFile is a segment file being written. It starts the next spare
// once writes pass half of its size, and, for a file that was a spare,
// syncs the directory at its first Sync so that its name survives a crash
// before raft-wal relies on its contents (as raft-wal's own files do).
type segmentFile struct {
	types.WritableFile
	fs      *segmentFS
	size    uint64
	asked   atomic.Bool
	syncDir atomic.Bool
}

// WriteAt implements io.WriterAt.
func (f *segmentFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.asked.Load() && uint64(off)+uint64(len(p)) > f.size/2 {
		f.asked.Store(true)
		f.fs.prepare(f.size)
	}
	return f.WritableFile.WriteAt(p, off)
}

// Sync implements types.WritableFile.
func (f *segmentFile) Sync() error {
	if err := f.WritableFile.Sync(); err != nil {
		return err
	}
	if f.syncDir.Load() {
		if err := syncDirectory(f.fs.dir); err != nil {
			return err
		}
		f.syncDir.Store(false)
	}
	return nil
}

// syncDirectory fsyncs directory dir, making its entries durable.
func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
