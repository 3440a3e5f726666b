package fsm

import (
	"bytes"
	"fmt"
	"hash/crc64"
	"math/rand"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// canonicalImage is the state's image with keys, cells and members sorted
// by name, as Digest writes it: equal bytes mean equal state.
func canonicalImage(t *testing.T, img *image) []byte {
	t.Helper()
	img = decoded(t, img)
	c := *img
	c.keys = append([]keyState(nil), img.keys...)
	c.cells = append([]cellKey(nil), img.cells...)
	for i := range c.keys {
		c.keys[i].hash = 0
	}
	sort.Slice(c.keys, func(i, j int) bool { return c.keys[i].key < c.keys[j].key })
	sort.Slice(c.cells, func(i, j int) bool { return c.cells[i].key < c.cells[j].key })
	var buf bytes.Buffer
	if err := c.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decoded returns img with its keys as records: a snapshot's encoded copy
// (see keyBytes) written and read back.
func decoded(t *testing.T, img *image) *image {
	t.Helper()
	if img.enc == nil {
		return img
	}
	var buf bytes.Buffer
	if err := img.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	d, err := readImage(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fullImage copies the whole state at once, under the lock: what a
// snapshot must hold.
func fullImage(f *FSM) *image {
	f.mu.RLock()
	defer f.mu.RUnlock()
	img := &image{now: f.now, stats: f.stats}
	for _, st := range f.ks.states() {
		if st.cell {
			img.cells = append(img.cells, cellKey{key: st.key, tat: st.last})
		} else {
			img.keys = append(img.keys, keyState{key: st.key, last: st.last, interval: st.interval, span: st.span})
		}
	}
	img.tokens = f.tokenRecords()
	img.seqs = f.tokens.seqs.records()
	for id, addr := range f.nodes {
		img.nodes = append(img.nodes, Node{ID: id, RESPAddr: addr})
	}
	sort.Slice(img.nodes, func(i, j int) bool { return img.nodes[i].ID < img.nodes[j].ID })
	return img
}

// randomCommands makes commands of every kind that changes keys, over a
// small key space so that keys are created, updated, cancelled, reset,
// pruned and recreated.
func randomCommands(rng *rand.Rand, now int64) []Command {
	var cmds []Command
	for range rng.Intn(6) + 1 {
		key := "k" + strconv.Itoa(rng.Intn(300))
		switch r := rng.Intn(100); {
		case r < 55:
			cmds = append(cmds, Acquire{Key: key, Interval: 1 + rng.Int63n(50), Max: rng.Int63n(4), Cost: 1 + rng.Int63n(3)})
		case r < 70:
			cmds = append(cmds, CellThrottle{Key: "c" + key, MaxBurst: 2, Count: 5, Period: 1, Quantity: 1})
		case r < 80:
			cmds = append(cmds, Cancel{Key: key, ValidAt: now + rng.Int63n(40)})
		case r < 99:
			cmds = append(cmds, Reset{Keys: []string{key, "c" + key}})
		default:
			cmds = append(cmds, FlushAll{})
		}
	}
	return cmds
}

// TestSnapshotCopiedInChunks takes snapshots of a changing state whose
// keys are copied a few at a time between random Applies (creating,
// updating, cancelling, resetting, pruning and flushing keys), two of them
// overlapping, and checks that each image holds exactly the state at the
// moment Snapshot was called, in (hash, key) order.
func TestSnapshotCopiedInChunks(t *testing.T) {
	defer func(n int) { snapshotChunk = n }(snapshotChunk)
	for _, chunk := range []int{1, 7, 64} {
		t.Run(strconv.Itoa(chunk), func(t *testing.T) {
			snapshotChunk = chunk
			rng := rand.New(rand.NewSource(int64(chunk)))
			f := New(Config{})
			now := int64(1000)
			step := func() {
				now += rng.Int63n(5)
				apply(t, f, now, randomCommands(rng, now)...)
			}
			for range 300 {
				step()
			}
			sawCells := false
			for round := range 40 {
				want1 := canonicalImage(t, fullImage(f))
				s1, _ := f.Snapshot()
				img1 := s1.(*image)
				for range rng.Intn(20) {
					step()
				}
				want2 := canonicalImage(t, fullImage(f))
				s2, _ := f.Snapshot()
				img2 := s2.(*image)
				for !f.copyChunk(img1.pending) {
					for range rng.Intn(3) {
						step()
					}
					if rng.Intn(2) == 0 && img2.pending != nil {
						f.copyChunk(img2.pending)
					}
				}
				img1.collect()
				for range rng.Intn(5) {
					step()
				}
				img2.collect()
				for i, c := range []struct {
					img  *image
					want []byte
				}{{decoded(t, img1), want1}, {decoded(t, img2), want2}} {
					if got := canonicalImage(t, c.img); !bytes.Equal(got, c.want) {
						t.Fatalf("round %d, snapshot %d: image differs from the state at Snapshot (%d keys, %d cells)", round, i+1, len(c.img.keys), len(c.img.cells))
					}
					for j := 1; j < len(c.img.keys); j++ {
						if !indexLess(&c.img.keys[j-1], &c.img.keys[j]) {
							t.Fatalf("round %d, snapshot %d: keys out of (hash, key) order at %d", round, i+1, j)
						}
					}
				}
				sawCells = sawCells || img1.enc.ncells > 0
				img1.Release()
				img2.Release()
				if len(f.copies) != 0 {
					t.Fatalf("round %d: %d copies still registered", round, len(f.copies))
				}
			}
			if !sawCells {
				t.Fatal("no image held a CL.THROTTLE key: the test does not cover them")
			}
		})
	}
}

// TestSnapshotReleasedUnpersisted checks that a snapshot Raft releases
// without persisting stops costing Apply anything.
func TestSnapshotReleasedUnpersisted(t *testing.T) {
	f := New(Config{})
	apply(t, f, 1000, acq("a", 100, 5), acq("b", 100, 5))
	s, _ := f.Snapshot()
	apply(t, f, 1001, acq("a", 100, 5), acq("c", 100, 5))
	if n := len(f.copies[0].pre); n != 2 {
		t.Fatalf("%d keys recorded, want 2 (a changed, c created)", n)
	}
	s.Release()
	if len(f.copies) != 0 {
		t.Fatalf("%d copies registered after Release", len(f.copies))
	}
}

// TestRestorePreloaded checks that Restore installs a preloaded image only
// when the stream it reads has the checksum the image was kept with, and
// only once.
func TestRestorePreloaded(t *testing.T) {
	backup := func(cmds ...Command) []byte {
		f := New(Config{})
		apply(t, f, 1000, cmds...)
		var buf bytes.Buffer
		if err := f.Backup(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b := backup(acq("a", 100, 5)), backup(acq("b", 100, 5))
	decoded, err := DecodeImage(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	restore := func(f *FSM, data []byte) map[string]KeyState {
		if err := f.Restore(nopCloser{bytes.NewBuffer(data)}); err != nil {
			t.Fatal(err)
		}
		return f.Keys(0)
	}
	tests := []struct {
		name    string
		sum     uint64 // the checksum the image is kept with
		stream  []byte
		wantKey string
	}{
		// The preloaded image (a's) is what is installed, although the
		// stream is b: it is taken on the checksum's word.
		{"checksum matches", crc64.Checksum(b, crcTable), b, "a"},
		{"checksum differs", crc64.Checksum(a, crcTable), b, "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := New(Config{})
			f.Preload(decoded, tc.sum)
			if _, ok := restore(f, tc.stream)[tc.wantKey]; !ok {
				t.Fatalf("restored state lacks key %q", tc.wantKey)
			}
			if _, ok := restore(f, b)["b"]; !ok {
				t.Fatal("a second Restore did not decode its stream")
			}
		})
	}
}

// TestSnapshotCopyFreedAfterPersist checks that the copy of the keys a
// snapshot makes is garbage once Persist has written it, while the FSM
// lives on: it is most of a node's memory at a million keys, and a copy
// kept reachable until the next snapshot held it that long.
func TestSnapshotCopyFreedAfterPersist(t *testing.T) {
	if raceEnabled {
		t.Skip("reads the live heap, which the race detector inflates")
	}
	const n = 100_000
	f := New(Config{})
	fillScale(t, f, n)
	before := liveHeap()
	for _, changes := range []bool{false, true} {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if changes {
			// Some keys changed during the copy: recorded ahead of it.
			apply(t, f, 1_000_000, acq("key:000000000000", 1e9, 1), acq("new", 1e9, 1))
		}
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			t.Fatal(err)
		}
		snap.Release()
		sink.Reset()
		// The copy takes some 70 bytes a key; what stays must be far less.
		if grown := int64(liveHeap()) - int64(before); grown > n*10 {
			t.Fatalf("live heap grew %d bytes (%d a key) after a snapshot of %d keys was persisted", grown, grown/n, n)
		}
	}
	runtime.KeepAlive(f)
}

// TestSnapshotImageIsStateAtSnapshot takes a snapshot, changes the state in
// one way (before the copy of the keys starts, or after its first chunk),
// and checks that Persist writes exactly the image of the state at
// Snapshot: byte for byte the image copied under the lock then.
func TestSnapshotImageIsStateAtSnapshot(t *testing.T) {
	defer func(n int) { snapshotChunk = n }(snapshotChunk)
	snapshotChunk = 4
	const then = 1000
	long := strings.Repeat("L", 40) // held outside the record (see longKeys)
	fill := func(t *testing.T) *FSM {
		f := New(Config{})
		var cmds []Command
		for i := range 30 {
			cmds = append(cmds, acq(fmt.Sprintf("short%02d", i), 100, 5)) // expire at 1100
			cmds = append(cmds, acq(fmt.Sprintf("day%02d", i), 86_400_000, 5))
			cmds = append(cmds, Acquire{Key: fmt.Sprintf("wide%02d", i), Interval: 1000, Max: 10, Cost: 3}) // span 2
			cmds = append(cmds, CellThrottle{Key: fmt.Sprintf("cell%02d", i), MaxBurst: 2, Count: 5, Period: 1000, Quantity: 1})
		}
		cmds = append(cmds, acq(long, 86_400_000, 5))
		apply(t, f, then, cmds...)
		return f
	}
	each := func(format string, n int, cmd func(key string) Command) []Command {
		var cmds []Command
		for i := range n {
			cmds = append(cmds, cmd(fmt.Sprintf(format, i)))
		}
		return cmds
	}
	keys := func(format string, n int) []string {
		var keys []string
		for i := range n {
			keys = append(keys, fmt.Sprintf(format, i))
		}
		return keys
	}
	type change struct {
		now  int64
		cmds []Command
	}
	tests := []struct {
		name    string
		changes []change
	}{
		{"writes", []change{{then + 1, append(each("day%02d", 30, func(k string) Command { return acq(k, 86_400_000, 5) }), acq(long, 86_400_000, 5))}}},
		{"new keys", []change{{then + 1, each("new%02d", 40, func(k string) Command { return acq(k, 1000, 5) })}}},
		{"deletes", []change{{then + 1, []Command{Reset{Keys: []string{"day00", "day07", "day29", "cell03", "wide11", "short04", long}}}}}},
		{"every key deleted", []change{{then + 1, []Command{Reset{Keys: slices.Concat(
			keys("short%02d", 30), keys("day%02d", 30), keys("wide%02d", 30), keys("cell%02d", 30), []string{long})}}}}},
		{"expiry", []change{{then + 10_000, []Command{acq("late", 1000, 5)}}}},
		{"spans given back", []change{{then + 1, each("wide%02d", 30, func(k string) Command { return Cancel{Key: k, ValidAt: then + 2000} })}}},
		{"cells", []change{{then + 1, append(each("cell%02d", 30, func(k string) Command {
			return CellThrottle{Key: k, MaxBurst: 2, Count: 5, Period: 1000, Quantity: 1}
		}), CellThrottle{Key: "newcell", MaxBurst: 2, Count: 5, Period: 1000, Quantity: 1})}}},
		{"deleted and made again", []change{
			{then + 1, []Command{Reset{Keys: []string{"day01", "day02", "short03", "cell04", long}}}},
			{then + 2, []Command{acq("day01", 7, 1), acq("short03", 9, 1), acq(long, 11, 1), CellThrottle{Key: "day02", MaxBurst: 1, Count: 1, Period: 1, Quantity: 1}}},
		}},
		{"flushall", []change{{then + 1, []Command{FlushAll{}}}, {then + 2, []Command{acq("day05", 3, 1)}}}},
	}
	for _, tc := range tests {
		for _, started := range []bool{false, true} {
			name := tc.name + "/before the copy"
			if started {
				name = tc.name + "/during the copy"
			}
			t.Run(name, func(t *testing.T) {
				f := fill(t)
				want := stopTheWorld(t, f)
				snap, err := f.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if started && f.copyChunk(snap.(*image).pending) {
					t.Fatal("the copy ended in one chunk: the test does not change keys behind it")
				}
				for _, c := range tc.changes {
					apply(t, f, c.now, c.cmds...)
				}
				sink := &failSink{failAfter: -1}
				if err := snap.Persist(sink); err != nil {
					t.Fatal(err)
				}
				snap.Release()
				if got := sink.Bytes(); !bytes.Equal(got, want) {
					t.Fatalf("persisted image (%d bytes) differs from the state's at Snapshot (%d bytes)\n%s", len(got), len(want), describeDiff(got, want))
				}
				if bytes.Equal(stopTheWorld(t, f), want) {
					t.Fatal("the change left the state's image as it was: the test checks nothing")
				}
			})
		}
	}
}
