package server

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// watchFills makes fs report each finished fill on the returned channel.
func watchFills(fs *segmentFS) <-chan error {
	ch := make(chan error, 16)
	fs.mu.Lock()
	fs.filled = func(err error) { ch <- err }
	fs.mu.Unlock()
	return ch
}

// filling reports whether fs is filling a spare.
func (fs *segmentFS) isFilling() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.filling
}

// TestSegmentFSSpare checks the spare's life: not prepared while the
// segment is less than half written, prepared (zeroed, private, whole) once
// it passes half, taken by the next Create of the same size (the same file,
// renamed), and left alone by a Create of another size.
func TestSegmentFSSpare(t *testing.T) {
	dir := t.TempDir()
	fs := newSegmentFS(dir)
	defer fs.close()
	fills := watchFills(fs)
	const size = 96 << 10

	f, err := fs.Create(dir, "00000000000000000001-0000000000000001.wal", size)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkMode(t, filepath.Join(dir, "00000000000000000001-0000000000000001.wal"))
	if _, err := f.WriteAt(bytes.Repeat([]byte{1}, size/2-10), 0); err != nil {
		t.Fatal(err)
	}
	if fs.isFilling() {
		t.Fatal("a spare is being filled before the segment is half written")
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{2}, 20), size/2-10); err != nil {
		t.Fatal(err)
	}
	if err := <-fills; err != nil {
		t.Fatalf("fill: %v", err)
	}
	spare := filepath.Join(dir, spareName)
	data, err := os.ReadFile(spare)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != size || bytes.Count(data, []byte{0}) != size {
		t.Fatalf("spare: %d bytes, %d of them zero; want %d zeros", len(data), bytes.Count(data, []byte{0}), size)
	}
	checkMode(t, spare)
	spareInfo, err := os.Stat(spare)
	if err != nil {
		t.Fatal(err)
	}

	// Another size leaves the spare alone.
	other, err := fs.Create(dir, "00000000000000000002-0000000000000002.wal", size*2)
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	if _, err := os.Stat(spare); err != nil {
		t.Fatalf("a Create of another size took the spare: %v", err)
	}

	name := "00000000000000000003-0000000000000003.wal"
	g, err := fs.Create(dir, name, size)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := os.Stat(spare); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare still there after Create: %v", err)
	}
	segInfo, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(spareInfo, segInfo) {
		t.Fatal("the new segment is not the spare")
	}
	checkMode(t, filepath.Join(dir, name))
	if _, err := g.WriteAt([]byte("entry"), 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := g.ReadAt(got, 0); err != nil || string(got) != "entry" {
		t.Fatalf("read back %q, %v", got, err)
	}
}

func checkMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != fileMode {
		t.Fatalf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), fileMode)
	}
}

// TestSegmentFSOpen checks what a new segmentFS makes of a previous
// process's spares: a finished one is kept for the next segment, a
// half-filled one is removed.
func TestSegmentFSOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, spareName), make([]byte, 4096), fileMode); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, spareTmpName), make([]byte, 100), fileMode); err != nil {
		t.Fatal(err)
	}
	fs := newSegmentFS(dir)
	defer fs.close()
	if _, err := os.Stat(filepath.Join(dir, spareTmpName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("half-filled spare kept: %v", err)
	}
	f, err := fs.Create(dir, "00000000000000000001-0000000000000001.wal", 4096)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fs.taken != 1 {
		t.Fatalf("taken %d spares, want the one left by the previous process", fs.taken)
	}
}

// TestSegmentFSCloseStopsFill checks that closing the store ends a fill in
// progress without leaving a half-filled spare under either name.
func TestSegmentFSCloseStopsFill(t *testing.T) {
	dir := t.TempDir()
	fs := newSegmentFS(dir)
	fills := watchFills(fs)
	fs.prepare(64 << 20) // a segment's default size: many chunks
	fs.close()
	err := <-fills
	if err != nil && !errors.Is(err, errSpareStopped) {
		t.Fatalf("fill: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, spareTmpName)); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("half-filled spare left after close: %v", serr)
	}
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, spareName)); !errors.Is(serr, os.ErrNotExist) {
			t.Fatalf("stopped fill left a spare: %v", serr)
		}
	}
	fs.prepare(4096)
	if fs.isFilling() {
		t.Fatal("a closed segmentFS started a fill")
	}
}

// TestWALRotatesIntoSpares writes a wal log store across several small
// segments, each after the first a spare, then reopens it and reads every
// entry back: a segment made from a spare is an ordinary segment to
// raft-wal, before and after a restart.
func TestWALRotatesIntoSpares(t *testing.T) {
	dir := t.TempDir()
	const segSize = 64 << 10
	open := func() (*walStore, <-chan error) {
		s, err := openWAL(dir, hclog.NewNullLogger(), nil, segSize)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		ws := s.(*walStore)
		return ws, watchFills(ws.segs)
	}
	s, fills := open()
	payload := strings.Repeat("x", 900)
	for i := uint64(1); i <= 400; i++ {
		l := &raft.Log{Index: i, Term: 1, Type: raft.LogNoop, Data: []byte(payload)}
		if err := s.StoreLogs([]*raft.Log{l}); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
		if s.segs.isFilling() {
			if err := <-fills; err != nil {
				t.Fatalf("fill: %v", err)
			}
		}
	}
	if s.segs.taken < 2 {
		t.Fatalf("%d segments were spares, want at least 2 (400 entries of 900 bytes in 64 KiB segments)", s.segs.taken)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = open()
	defer s.Close()
	for i := uint64(1); i <= 400; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("after reopen, entry %d: %v", i, err)
		}
		if l.Index != i || string(l.Data) != payload {
			t.Fatalf("after reopen, entry %d: index %d, %d bytes", i, l.Index, len(l.Data))
		}
	}
	if first, _ := s.FirstIndex(); first != 1 {
		t.Fatalf("after reopen, first index %d", first)
	}
	if last, _ := s.LastIndex(); last != 400 {
		t.Fatalf("after reopen, last index %d", last)
	}
}

// BenchmarkWALAppend times one log write with its fsync (a 3,000-byte
// entry, about what a leader's entry carries at -P 1), in raft-wal's
// fallocated first segment and in a segment that was a zero-filled spare:
//
//	go test ./server -run '^$' -bench WALAppend -benchtime 2000x -count 3
func BenchmarkWALAppend(b *testing.B) {
	for _, tc := range []struct {
		name  string
		spare bool
	}{{"fallocated", false}, {"spare", true}} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			s, err := openWAL(dir, hclog.NewNullLogger(), nil, 0)
			if err != nil {
				b.Fatal(err)
			}
			ws := s.(*walStore)
			defer ws.Close()
			fills := watchFills(ws.segs)
			index := uint64(0)
			if tc.spare {
				big := make([]byte, 1<<20)
				for ws.segs.taken == 0 {
					index++
					if err := ws.StoreLogs([]*raft.Log{{Index: index, Term: 1, Type: raft.LogNoop, Data: big}}); err != nil {
						b.Fatal(err)
					}
					if ws.segs.isFilling() {
						if err := <-fills; err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			data := make([]byte, 3000)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				index++
				if err := ws.StoreLogs([]*raft.Log{{Index: index, Term: 1, Type: raft.LogNoop, Data: data}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
