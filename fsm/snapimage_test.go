package fsm

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// stopTheWorld is what a snapshot taken now must persist, built without
// the chunked copy: every key of f under the lock, in the scan index's
// order (recomputed from the key, not read from the record), written as
// Persist writes.
func stopTheWorld(tb testing.TB, f *FSM) []byte {
	tb.Helper()
	f.mu.RLock()
	img := &image{now: f.now, stats: f.stats, tokens: f.tokenRecords(), seqs: f.tokens.seqs.records()}
	all := make([]keyState, 0, f.ks.len())
	for _, st := range f.ks.states() {
		all = append(all, keyState{key: st.key, last: st.last, interval: st.interval, span: st.span, cell: st.cell, hash: keyHash(st.key)})
	}
	for id, addr := range f.nodes {
		img.nodes = append(img.nodes, Node{ID: id, RESPAddr: addr})
	}
	f.mu.RUnlock()
	slices.SortFunc(img.nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(all, func(a, b keyState) int { return indexCmp(&a, &b) })
	for _, st := range all {
		if st.cell {
			img.cells = append(img.cells, cellKey{key: st.key, tat: st.last})
		} else {
			img.keys = append(img.keys, st)
		}
	}
	var buf bytes.Buffer
	if err := img.writeTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// failSink is a raft.SnapshotSink in memory that fails every Write once
// failAfter bytes have been written (never when failAfter < 0).
type failSink struct {
	bytes.Buffer
	failAfter         int
	closed, cancelled bool
}

var errSinkFull = errors.New("sink full")

func (s *failSink) Write(p []byte) (int, error) {
	if s.failAfter >= 0 && s.Len()+len(p) > s.failAfter {
		n := max(0, s.failAfter-s.Len())
		s.Buffer.Write(p[:n])
		return n, errSinkFull
	}
	return s.Buffer.Write(p)
}
func (s *failSink) Close() error  { s.closed = true; return nil }
func (s *failSink) Cancel() error { s.cancelled = true; return nil }
func (s *failSink) ID() string    { return "mem" }

var _ raft.SnapshotSink = (*failSink)(nil)

// snapOp is one thing the replicated log did to the state: an entry at an
// index, or a Restore of an image.
type snapOp struct {
	index   uint64
	entry   []byte
	restore []byte
}

// replay builds a fresh state machine from ops: the clone a snapshot's
// image is checked against.
func replay(tb testing.TB, ops []snapOp) *FSM {
	tb.Helper()
	g := New(Config{})
	for _, op := range ops {
		if op.restore != nil {
			if err := g.Restore(nopCloser{bytes.NewBuffer(op.restore)}); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		g.Apply(&raft.Log{Index: op.index, Data: op.entry})
	}
	return g
}

// pendingSnap is a snapshot taken by the driver and not yet persisted.
type pendingSnap struct {
	img     *image
	want    []byte   // the stop-the-world image of the clone at Snapshot
	digest  [32]byte // the clone's digest at Snapshot
	walked  bool     // its copy walk finished
	started int      // driver step at which it was taken
}

// snapDriver runs a state machine through random Applies of every command
// kind, Restores, and snapshots whose key copy it advances a chunk at a
// time in between, choosing with pick (which returns a number in [0, n)).
type snapDriver struct {
	tb   testing.TB
	pick func(n int) int
	f    *FSM
	// mirror is fed the same log as f and never snapshotted: the clone
	// whose stop-the-world image each snapshot is checked against.
	mirror *FSM
	ops    []snapOp
	index  uint64
	now    int64
	// grants is the first slot of the newest grant seen per key, so that
	// cancels find grants to give back.
	grants  map[string]int64
	seq     uint64 // the last forwarding sequence number given
	pending []*pendingSnap
	// persisted are images written whole, for later Restores.
	persisted [][]byte
	// counts of what happened, to check that a run covered what it claims.
	stats map[string]int
}

func newSnapDriver(tb testing.TB, pick func(n int) int) *snapDriver {
	return &snapDriver{tb: tb, pick: pick, f: New(Config{}), mirror: New(Config{}), now: 1_000, grants: map[string]int64{}, stats: map[string]int{}}
}

func (d *snapDriver) key() string { return "k" + strconv.Itoa(d.pick(64)) }

// token gives a third of the ACQUIREs and CANCELs a token: one of a few
// (a retry, or the same token on another key), or a new one, so that
// tokens pile up across the queue's chunks.
func (d *snapDriver) token() string {
	if d.pick(3) == 0 {
		return "t" + strconv.Itoa(d.pick(64))
	}
	return ""
}

// window picks how long a token is remembered: mostly TokenWindow (0),
// else a window of its own, short enough to end within a run.
func (d *snapDriver) window() int64 {
	switch d.pick(4) {
	case 0:
		return 1 + int64(d.pick(3_000))
	case 1:
		return int64(d.pick(2)) * TokenWindow // 0 or TokenWindow: the same
	}
	return 0
}

// sequence gives half the ACQUIREs and CANCELs without a token a
// forwarding identity: one of three sessions, mostly the next number (so
// that runs are encoded as Next ops), now and then a recent one again (a
// resend, or a number reused for another key).
func (d *snapDriver) sequence(token string) (session, seq uint64) {
	if token != "" || d.pick(2) == 0 {
		return 0, 0
	}
	if d.pick(5) == 0 && d.seq > 0 {
		return 1 + uint64(d.pick(3)), d.seq - uint64(d.pick(int(min(d.seq, 6))))
	}
	d.seq++
	return 1, d.seq
}

// command makes one command of any kind over a small key space, so that
// keys are created, updated, given back, reset, expired, flushed and
// created again, on both sides of any copy's walk.
func (d *snapDriver) command() Command {
	switch r := d.pick(100); {
	case r < 40:
		m := int64(d.pick(4))
		a := Acquire{Key: d.key(), Interval: 1 + int64(d.pick(200)), Max: m, Slop: int64(d.pick(6)), Cost: int64(d.pick(int(m) + 2)), Token: d.token(), TokenWindow: d.window()}
		a.Session, a.Seq = d.sequence(a.Token)
		return a
	case r < 55:
		k := d.key()
		at, ok := d.grants[k]
		if !ok || d.pick(5) == 0 {
			at = d.now + int64(d.pick(50))
		}
		c := Cancel{Key: k, ValidAt: at, Token: d.token(), TokenWindow: d.window()}
		c.Session, c.Seq = d.sequence(c.Token)
		return c
	case r < 70:
		return CellThrottle{Key: d.key(), MaxBurst: int64(d.pick(4)), Count: 1 + int64(d.pick(5)), Period: 1 + int64(d.pick(2)), Quantity: int64(d.pick(3))}
	case r < 85:
		keys := []string{d.key()}
		for range d.pick(3) {
			keys = append(keys, d.key())
		}
		return Reset{Keys: keys}
	case r < 86:
		return FlushAll{}
	case r < 93:
		return SetNode{ID: "n" + strconv.Itoa(d.pick(4)), RESPAddr: "127.0.0.1:" + strconv.Itoa(1000+d.pick(9000))}
	default:
		return RemoveNode{ID: "n" + strconv.Itoa(d.pick(4))}
	}
}

// applyEntry applies a random entry, advancing the clock a little, or now
// and then past every key's interval and the token window.
func (d *snapDriver) applyEntry() {
	switch d.pick(100) {
	case 0:
		d.now += TokenWindow + int64(d.pick(20_000))
	case 1, 2:
		d.now += 2_000 + int64(d.pick(2_000))
	default:
		d.now += int64(d.pick(8))
	}
	e := Entry{Now: d.now}
	for range 1 + d.pick(4) {
		e.Commands = append(e.Commands, d.command())
	}
	d.index++
	data := e.Encode()
	d.ops = append(d.ops, snapOp{index: d.index, entry: data})
	// With snapshots pending, count the tokens this entry forgets and
	// adds: what a snapshot's view of the tokens must not see.
	before, expiring := d.f.Tokens(), 0
	d.f.mu.RLock()
	for _, r := range d.f.tokenRecords() {
		if (tokenStamp{at: r.at, window: r.window}).until() <= d.now {
			expiring++
		}
	}
	d.f.mu.RUnlock()
	res := d.f.Apply(&raft.Log{Index: d.index, Data: data}).([]Result)
	d.mirror.Apply(&raft.Log{Index: d.index, Data: data})
	if len(d.pending) > 0 {
		d.stats["token pruned during a snapshot"] += expiring
		d.stats["token added during a snapshot"] += d.f.Tokens() - (before - expiring)
	}
	d.f.mu.RLock()
	copying := len(d.f.copies) > 0
	d.f.mu.RUnlock()
	if copying {
		d.stats["applied during a copy"]++
	}
	for i, c := range e.Commands {
		d.stats[fmt.Sprintf("%T", c)]++
		if a, ok := c.(Acquire); ok && a.Session != 0 && a.Token == "" {
			d.stats["sequenced"]++
		}
		if a, ok := c.(Acquire); ok && res[i].Permit.Granted {
			d.grants[a.Key] = res[i].Permit.ValidAt
		}
		if _, ok := c.(Cancel); ok && res[i].Count == 1 {
			d.stats["cancelled"]++
		}
	}
}

// snapshot takes a snapshot of d.f and records what it must hold: the
// stop-the-world image of a clone fed the same log, which must also be
// that of d.f itself.
func (d *snapDriver) snapshot(step int) {
	s, err := d.f.Snapshot()
	if err != nil {
		d.tb.Fatal(err)
	}
	g := d.mirror
	want := stopTheWorld(d.tb, g)
	if got := stopTheWorld(d.tb, d.f); !bytes.Equal(got, want) {
		d.tb.Fatalf("step %d: the state differs from a clone fed the same log", step)
	}
	_, sum := g.Digest()
	d.stats["keys at snapshots"] += g.ks.len()
	d.pending = append(d.pending, &pendingSnap{img: s.(*image), want: want, digest: sum, started: step})
	d.stats["snapshot"]++
}

// advance copies one chunk of p's keys.
func (d *snapDriver) advance(p *pendingSnap) {
	if p.walked {
		return
	}
	p.walked = d.f.copyChunk(p.img.pending)
	d.stats["chunk"]++
}

// persist writes p as Raft does (Persist, then Release), into a sink that
// may fail part way, and checks what it wrote.
func (d *snapDriver) persist(i int, step int) {
	p := d.pending[i]
	d.pending = slices.Delete(d.pending, i, i+1)
	sink := &failSink{failAfter: -1}
	if d.pick(5) == 0 {
		sink.failAfter = d.pick(len(p.want) + 1)
	}
	err := p.img.Persist(sink)
	p.img.Release()
	got := sink.Bytes()
	if sink.failAfter >= 0 && sink.failAfter < len(p.want) {
		d.stats["sink failed"]++
		if !errors.Is(err, errSinkFull) || !sink.cancelled || sink.closed {
			d.tb.Fatalf("step %d: Persist into a failing sink: err %v, cancelled %v, closed %v", step, err, sink.cancelled, sink.closed)
		}
		if !bytes.HasPrefix(p.want, got) {
			d.tb.Fatalf("step %d: snapshot of step %d: the %d bytes written before the sink failed differ from the image", step, p.started, len(got))
		}
		return
	}
	if err != nil || !sink.closed {
		d.tb.Fatalf("step %d: Persist: %v (closed %v)", step, err, sink.closed)
	}
	d.check(p, got, step)
	d.persisted = append(d.persisted, slices.Clone(got))
	d.stats["persisted"]++
}

// check compares a persisted image with the stop-the-world one, and
// checks that restoring it gives the clone's state back.
func (d *snapDriver) check(p *pendingSnap, got []byte, step int) {
	if !bytes.Equal(got, p.want) {
		d.tb.Fatalf("step %d: snapshot of step %d: persisted image (%d bytes) differs from the stop-the-world image (%d bytes)\n%s", step, p.started, len(got), len(p.want), describeDiff(got, p.want))
	}
	r := New(Config{})
	if err := r.Restore(nopCloser{bytes.NewBuffer(got)}); err != nil {
		d.tb.Fatalf("step %d: restore of the snapshot of step %d: %v", step, p.started, err)
	}
	if _, sum := r.Digest(); sum != p.digest {
		d.tb.Fatalf("step %d: snapshot of step %d restores to another digest than the clone's", step, p.started)
	}
	if again := stopTheWorld(d.tb, r); !bytes.Equal(again, got) {
		d.tb.Fatalf("step %d: snapshot of step %d: its restored state images differently", step, p.started)
	}
}

// describeDiff names the keys the two images disagree on.
func describeDiff(got, want []byte) string {
	g, err1 := readImage(bytes.NewReader(got))
	w, err2 := readImage(bytes.NewReader(want))
	if err1 != nil || err2 != nil {
		return fmt.Sprintf("decode: %v, %v", err1, err2)
	}
	show := func(img *image) string {
		var b bytes.Buffer
		for _, k := range img.keys {
			fmt.Fprintf(&b, " %s=%d/%d/%d", k.key, k.last, k.interval, k.span)
		}
		b.WriteString(" |")
		for _, c := range img.cells {
			fmt.Fprintf(&b, " %s=%d", c.key, c.tat)
		}
		return b.String()
	}
	return "got: " + show(g) + "\nwant:" + show(w)
}

// release abandons p without persisting it, as Raft does when it cannot
// create the snapshot's sink.
func (d *snapDriver) release(i int) {
	d.pending[i].img.Release()
	d.pending = slices.Delete(d.pending, i, i+1)
	d.stats["released"]++
}

// restore replaces d.f's state with an image persisted earlier (or an
// empty one), as an InstallSnapshot or RAFT.RESTORE does, with copies
// possibly under way.
func (d *snapDriver) restore() {
	var img []byte
	if len(d.persisted) > 0 && d.pick(4) != 0 {
		img = d.persisted[d.pick(len(d.persisted))]
	} else {
		img = stopTheWorld(d.tb, New(Config{}))
	}
	if err := d.f.Restore(nopCloser{bytes.NewBuffer(img)}); err != nil {
		d.tb.Fatal(err)
	}
	if err := d.mirror.Restore(nopCloser{bytes.NewBuffer(img)}); err != nil {
		d.tb.Fatal(err)
	}
	d.ops = append(d.ops, snapOp{restore: img})
	d.grants = map[string]int64{}
	d.stats["restore"]++
}

// backup takes a backup (a snapshot copied at once) and checks it.
func (d *snapDriver) backup(step int) {
	want := stopTheWorld(d.tb, d.f)
	var buf bytes.Buffer
	if err := d.f.Backup(&buf); err != nil {
		d.tb.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		d.tb.Fatalf("step %d: backup differs from the stop-the-world image", step)
	}
	d.stats["backup"]++
}

// walking counts the pending snapshots whose walk is under way: each must
// be registered with the state machine, and nothing else.
func (d *snapDriver) walking() int {
	n := 0
	for _, p := range d.pending {
		if !p.walked {
			n++
		}
	}
	return n
}

// run performs steps random actions, then persists what is pending, and
// checks that the state machine holds the state of its log throughout.
func (d *snapDriver) run(steps int) {
	for step := range steps {
		switch r := d.pick(100); {
		case r < 50:
			d.applyEntry()
		case r < 56:
			if len(d.pending) < 3 {
				d.snapshot(step)
			}
		case r < 88:
			if len(d.pending) > 0 {
				d.advance(d.pending[d.pick(len(d.pending))])
			}
		case r < 93:
			if len(d.pending) > 0 {
				d.persist(d.pick(len(d.pending)), step)
			}
		case r < 96:
			if len(d.pending) > 0 {
				d.release(d.pick(len(d.pending)))
			}
		case r < 98:
			d.restore()
		default:
			d.backup(step)
		}
		d.f.mu.RLock()
		registered := len(d.f.copies)
		d.f.mu.RUnlock()
		if registered != d.walking() {
			d.tb.Fatalf("step %d: %d copies registered, %d walks under way", step, registered, d.walking())
		}
	}
	for len(d.pending) > 0 {
		d.persist(0, steps)
	}
	if len(d.f.copies) != 0 {
		d.tb.Fatalf("%d copies still registered", len(d.f.copies))
	}
	// The mirror itself is checked against a replay of the log from
	// scratch, so that a fault shared by f and the mirror is not hidden.
	want := stopTheWorld(d.tb, replay(d.tb, d.ops))
	if !bytes.Equal(stopTheWorld(d.tb, d.mirror), want) || !bytes.Equal(stopTheWorld(d.tb, d.f), want) {
		d.tb.Fatal("the state after the run differs from a replay of its log")
	}
}

// TestSnapshotImageExact is the property the chunked copy must keep: the
// image Persist writes is byte for byte the one a copy of the whole state
// taken at Snapshot would write, whatever Applies (every command kind,
// keys deleted and created again ahead of and behind the walk, expiry,
// token expiry, FLUSHALL), Restores, other snapshots, Releases without
// Persist and failing sinks come between the chunks of its walk; and it
// restores to the digest of a clone fed the same log up to the snapshot.
func TestSnapshotImageExact(t *testing.T) {
	defer func(n int) { snapshotChunk = n }(snapshotChunk)
	defer func(n int) { tokenChunkLen = n }(tokenChunkLen)
	seeds := 100
	if testing.Short() || raceEnabled {
		seeds = 20
	}
	total := map[string]int{}
	for seed := range seeds {
		rng := rand.New(rand.NewSource(int64(seed)))
		snapshotChunk = []int{1, 2, 3, 5, 16}[seed%5]
		tokenChunkLen = []int{1, 2, 4, 256}[seed%4]
		heapChunkLen = []int{1, 2, 3, 1024}[seed%4]
		d := newSnapDriver(t, rng.Intn)
		d.run(600)
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
		for k, v := range d.stats {
			total[k] += v
		}
	}
	// The run must have exercised what the property is about.
	for _, what := range []string{"snapshot", "chunk", "applied during a copy", "token added during a snapshot", "token pruned during a snapshot", "persisted", "sink failed", "released", "restore", "backup", "cancelled", "sequenced",
		"fsm.Acquire", "fsm.Cancel", "fsm.CellThrottle", "fsm.Reset", "fsm.FlushAll", "fsm.SetNode", "fsm.RemoveNode"} {
		if total[what] == 0 {
			t.Errorf("no %q in any run: the test does not cover it", what)
		}
	}
	t.Logf("%v", total)
}

// FuzzSnapshotImage runs the same property with the fuzzer's bytes
// choosing every action.
func FuzzSnapshotImage(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0, 60, 90, 30, 55, 1}, 50))
	f.Add(bytes.Repeat([]byte{7, 51, 3, 86, 0, 2, 97, 44}, 80))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func(n int) { snapshotChunk = n }(snapshotChunk)
		defer func(n int) { tokenChunkLen = n }(tokenChunkLen)
		defer func(n int) { heapChunkLen = n }(heapChunkLen)
		snapshotChunk = 1 + len(data)%4
		tokenChunkLen = 1 + len(data)%3
		heapChunkLen = 1 + len(data)%2
		pick := func(n int) int {
			if len(data) == 0 {
				return 0
			}
			v := int(data[0])
			data = data[1:]
			return v % n
		}
		newSnapDriver(t, pick).run(min(len(data), 2000))
	})
}

// TestSnapshotPersistConcurrent persists snapshots on their own goroutine
// while Applies run on another, as Raft does (run it with -race): each
// image must be the stop-the-world image at its Snapshot.
func TestSnapshotPersistConcurrent(t *testing.T) {
	defer func(n int) { snapshotChunk = n }(snapshotChunk)
	defer func(n int) { tokenChunkLen = n }(tokenChunkLen)
	defer func(n int) { heapChunkLen = n }(heapChunkLen)
	snapshotChunk, tokenChunkLen, heapChunkLen = 4, 3, 2
	f := New(Config{})
	rng := rand.New(rand.NewSource(1))
	d := newSnapDriver(t, rng.Intn)
	d.f = f
	// A start with many keys, so that walks take many chunks.
	for i := range 40 {
		e := Entry{Now: d.now}
		for j := range 50 {
			e.Commands = append(e.Commands, Acquire{Key: "k" + strconv.Itoa(i*50+j), Interval: 1_000_000, Max: 2})
		}
		d.index++
		f.Apply(&raft.Log{Index: d.index, Data: e.Encode()})
	}
	type job struct {
		img  *image
		want []byte
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	wg.Go(func() {
		for j := range jobs {
			sink := &failSink{failAfter: -1}
			if err := j.img.Persist(sink); err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
			}
			j.img.Release()
			if !bytes.Equal(sink.Bytes(), j.want) {
				mu.Lock()
				failures = append(failures, "an image differs from the stop-the-world image at its Snapshot\n"+describeDiff(sink.Bytes(), j.want))
				mu.Unlock()
			}
		}
	})
	// The applying goroutine (this one) takes the snapshots, as Raft's FSM
	// goroutine does, and hands them to the persisting one.
	for round := range 30 {
		s, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		want := stopTheWorld(t, f)
		jobs <- job{s.(*image), want}
		for range 50 + round {
			d.applyEntry()
			// Keys beyond the small key space, created and reset on both
			// sides of the walk.
			k := "k" + strconv.Itoa(rng.Intn(2000))
			d.index++
			e := Entry{Now: d.now, Commands: []Command{Reset{Keys: []string{k}}, Acquire{Key: k + "x", Interval: 1_000_000, Max: 0}}}
			f.Apply(&raft.Log{Index: d.index, Data: e.Encode()})
		}
	}
	close(jobs)
	wg.Wait()
	for _, s := range failures {
		t.Error(s)
	}
}

// TestCopyChunkAfterWalk checks that a copy whose walk has reached the end
// copies nothing more, although keys are then created ahead of where it
// stopped: it no longer records them, so walking on would copy them.
func TestCopyChunkAfterWalk(t *testing.T) {
	f := New(Config{})
	apply(t, f, 1000, acq("a", 100, 5))
	want := stopTheWorld(t, f)
	s, _ := f.Snapshot()
	img := s.(*image)
	for !f.copyChunk(img.pending) {
	}
	for i := range 50 { // some of them after "a" in the index
		apply(t, f, 1001, acq("new"+strconv.Itoa(i), 100, 5))
	}
	sink := &failSink{failAfter: -1}
	if err := img.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want) {
		t.Fatalf("image differs from the state at Snapshot\n%s", describeDiff(sink.Bytes(), want))
	}
}
