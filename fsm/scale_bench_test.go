package fsm

import (
	"bytes"
	"io"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// scaleKeys is the key count of the at-scale benchmarks: issue 9's million
// live keys.
const scaleKeys = 1_000_000

// fillScale applies n distinct keys of the shape redis-benchmark's
// key:__rand_int__ makes ("key:000000123456", 16 bytes) through Apply, in
// 512-command entries, with an interval long enough that none expires.
func fillScale(tb testing.TB, f *FSM, n int) {
	tb.Helper()
	for i := 0; i < n; i += 512 {
		e := Entry{Now: 1_000_000}
		for j := i; j < min(i+512, n); j++ {
			e.Commands = append(e.Commands, Acquire{Key: "key:" + strconv.Itoa(1_000_000_000_000 + j)[1:], Interval: 1e9, Max: 0})
		}
		f.Apply(&raft.Log{Index: uint64(i/512 + 1), Data: e.Encode()})
	}
	// Push the big entries' results out of the ring of recent results, so
	// that what remains is the keys' cost alone (the ring's own size does
	// not grow with the key count).
	empty := (&Entry{Now: 1_000_000}).Encode()
	for i := range recentEntries {
		f.Apply(&raft.Log{Index: uint64(n/512 + 2 + i), Data: empty})
	}
}

// BenchmarkScaleMemory reports the live heap per key of a million keys
// applied through Apply (after a full collection), against KeyCost's
// accounting. Run it with -benchtime=1x: one iteration builds the state.
func BenchmarkScaleMemory(b *testing.B) {
	for range b.N {
		before := liveHeap()
		f := New(Config{})
		fillScale(b, f, scaleKeys)
		grown := liveHeap() - before
		b.ReportMetric(float64(grown)/scaleKeys, "heap-B/key")
		b.ReportMetric(float64(f.MemoryUsage(0))/scaleKeys, "accounted-B/key")
		runtime.KeepAlive(f)
	}
}

// BenchmarkScaleSnapshot reports, for a million keys, how long Snapshot
// holds the state (Raft calls it on the goroutine that applies entries, so
// every commit waits for it), the longest hold of the lock while the keys
// are copied afterwards (an Apply waits at most that long), how long
// Persist takes in all, and how long Restore takes to rebuild the state.
func BenchmarkScaleSnapshot(b *testing.B) {
	f := New(Config{})
	fillScale(b, f, scaleKeys)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		stall := time.Since(t0)
		t1 := time.Now()
		var chunk time.Duration
		c := snap.(*image).pending
		c.keys = slices.Grow(c.keys, c.size)
		for done := false; !done; {
			c.keys = slices.Grow(c.keys, snapshotChunk)
			c.cells = slices.Grow(c.cells, snapshotChunk)
			t := time.Now()
			done = f.copyLocked(c)
			chunk = max(chunk, time.Since(t))
		}
		var buf bytes.Buffer
		if err := snap.Persist(&bufferSink{Buffer: &buf}); err != nil {
			b.Fatal(err)
		}
		persist := time.Since(t1)
		snap.Release()
		size := buf.Len()
		g := New(Config{})
		t2 := time.Now()
		if err := g.Restore(io.NopCloser(&buf)); err != nil {
			b.Fatal(err)
		}
		restore := time.Since(t2)
		b.ReportMetric(float64(stall.Microseconds())/1000, "snapshot-ms")
		b.ReportMetric(float64(chunk.Microseconds())/1000, "max-chunk-ms")
		b.ReportMetric(float64(persist.Microseconds())/1000, "persist-ms")
		b.ReportMetric(float64(restore.Microseconds())/1000, "restore-ms")
		b.ReportMetric(float64(size)/scaleKeys, "image-B/key")
	}
}

// bufferSink is a raft.SnapshotSink writing to memory.
type bufferSink struct{ *bytes.Buffer }

func (s *bufferSink) ID() string    { return "bench" }
func (s *bufferSink) Cancel() error { return nil }
func (s *bufferSink) Close() error  { return nil }
