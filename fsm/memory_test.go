package fsm

import (
	"bytes"
	"math/rand"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// accounted recomputes f.mem from scratch: the invariant the incremental
// accounting must keep.
func accounted(f *FSM) int64 {
	var n int64
	for _, st := range f.ks.states() {
		n += KeyCost(st.key)
	}
	return n
}

func TestMemoryUsage(t *testing.T) {
	f := New(Config{})
	if got := f.MemoryUsage(0); got != 0 {
		t.Fatalf("empty state uses %d", got)
	}
	// Two new keys, interval 100: both live until 1100.
	apply(t, f, 1000, acq("a", 100, 5), acq("bb", 100, 5))
	want := KeyCost("a") + KeyCost("bb")
	steps := []struct {
		name string
		now  int64
		cmds []Command
		want int64
	}{
		{"existing key costs nothing more", 1001, []Command{acq("a", 100, 5)}, want},
		{"a denial creates nothing", 1002, []Command{acq("bb", 100, 0)}, want},
		{"reset frees a key", 1003, []Command{Reset{Keys: []string{"bb", "absent"}}}, KeyCost("a")},
		{"new long key", 1004, []Command{acq(strings.Repeat("k", 1000), 10, 0)}, KeyCost("a") + KeyCost(strings.Repeat("k", 1000))},
		{"expired keys are pruned", 5000, nil, 0},
	}
	for _, st := range steps {
		apply(t, f, st.now, st.cmds...)
		if got := f.MemoryUsage(st.now); got != st.want {
			t.Errorf("%s: MemoryUsage = %d, want %d", st.name, got, st.want)
		}
		if f.mem != accounted(f) {
			t.Errorf("%s: incremental %d != recomputed %d", st.name, f.mem, accounted(f))
		}
	}
}

// TestMemoryUsageLeavesOutExpired checks that keys expired at the given time
// but not yet pruned (no entry has been applied since) are not counted, and
// that Exists agrees.
func TestMemoryUsageLeavesOutExpired(t *testing.T) {
	f := New(Config{})
	apply(t, f, 1000, acq("short", 10, 0), acq("long", 1000, 0))
	if got, want := f.MemoryUsage(1000), KeyCost("short")+KeyCost("long"); got != want {
		t.Fatalf("at 1000: %d, want %d", got, want)
	}
	if got, want := f.MemoryUsage(1010), KeyCost("long"); got != want {
		t.Errorf("at 1010 (short expired, not pruned): %d, want %d", got, want)
	}
	if f.mem != KeyCost("short")+KeyCost("long") {
		t.Errorf("nothing applied, yet the accounted state changed to %d", f.mem)
	}
	for _, c := range []struct {
		key  string
		now  int64
		want bool
	}{
		{"short", 1009, true}, {"short", 1010, false}, {"long", 1999, true}, {"long", 2000, false}, {"none", 0, false},
	} {
		if got := f.Exists(c.key, c.now); got != c.want {
			t.Errorf("Exists(%q, %d) = %v, want %v", c.key, c.now, got, c.want)
		}
	}
}

// TestMemoryUsageRandom applies random acquires, resets and clock jumps and
// checks after each entry that the incremental figure equals a recount, and
// that it survives a snapshot and restore.
func TestMemoryUsageRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	f := New(Config{})
	now := int64(1)
	for i := 0; i < 2000; i++ {
		now += rng.Int63n(30)
		var cmds []Command
		for j := rng.Intn(8); j >= 0; j-- {
			key := strconv.Itoa(rng.Intn(200)) + strings.Repeat("x", rng.Intn(40))
			if rng.Intn(5) == 0 {
				cmds = append(cmds, Reset{Keys: []string{key}})
			} else {
				cmds = append(cmds, acq(key, 1+rng.Int63n(100), rng.Int63n(3)))
			}
		}
		apply(t, f, now, cmds...)
		if f.mem != accounted(f) {
			t.Fatalf("entry %d: incremental %d != recomputed %d", i, f.mem, accounted(f))
		}
	}
	var buf bytes.Buffer
	if err := f.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	g := New(Config{})
	if err := g.Restore(nopCloser{&buf}); err != nil {
		t.Fatal(err)
	}
	if g.MemoryUsage(now) != f.MemoryUsage(now) || g.mem != f.mem {
		t.Fatalf("restored state accounts %d (live %d), original %d (live %d)", g.mem, g.MemoryUsage(now), f.mem, f.MemoryUsage(now))
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// TestKeyCostMatchesHeap is the measurement behind KeyOverhead: it inserts
// 100,000 keys through Apply and compares the growth of the live heap plus
// the key store's memory outside it with
// what MemoryUsage accounts for them. It fails when they differ by more
// than a quarter, so that a Go release that changes the cost of a map entry
// is noticed rather than silently making --maxmemory wrong.
func TestKeyCostMatchesHeap(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocates 100,000 keys; slow under -short and -race")
	}
	const n = 100_000
	for _, keyLen := range []int{16, 100, 1000} {
		t.Run(strconv.Itoa(keyLen), func(t *testing.T) {
			pad := strings.Repeat("x", keyLen-7)
			f := New(Config{})
			before := liveHeap()
			for i := 0; i < n; i += 512 {
				e := Entry{Now: 1000}
				for j := i; j < min(i+512, n); j++ {
					e.Commands = append(e.Commands, acq(strconv.Itoa(10_000_000 + j)[1:]+pad, 1e9, 0))
				}
				f.Apply(&raft.Log{Data: e.Encode()})
			}
			// Push the batches' results out of the ring of recent results,
			// which is bounded and not per key.
			empty := Entry{Now: 1000}.Encode()
			for range recentEntries {
				f.Apply(&raft.Log{Data: empty})
			}
			grown := float64(liveHeap()-before) + float64(f.ks.mem.size())
			acc := float64(f.MemoryUsage(1000))
			// Free f's store now rather than when a later collection finds
			// it unreachable: three stores of 100,000 keys need not wait for it.
			f.ks.mem.release()
			runtime.KeepAlive(f)
			t.Logf("key of %d bytes: heap grew %.1f bytes a key, accounted %.1f", keyLen, grown/n, acc/n)
			if r := grown / acc; r < 0.75 || r > 1.25 {
				t.Errorf("heap grew %.0f bytes for %d keys of %d bytes, accounted %.0f (ratio %.2f): re-measure KeyOverhead", grown, n, keyLen, acc, r)
			}
		})
	}
}

// liveHeap is the Go heap in use after a full collection. A key store's
// memory outside it is f.ks.mem.size(): measured per store, since the
// stores of earlier tests are unmapped whenever their cleanups run.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
