package fsm

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// sq gives a the forwarding identity (session, seq) kept for window ms.
func sq(a Acquire, session, seq uint64, window int64) Acquire {
	a.Session, a.Seq, a.TokenWindow = session, seq, window
	return a
}

// sqc gives a CANCEL of key at validAt the forwarding identity.
func sqc(key string, validAt int64, session, seq uint64, window int64) Cancel {
	return Cancel{Key: key, ValidAt: validAt, Session: session, Seq: seq, TokenWindow: window}
}

// TestSequenced applies entries of forwarded commands identified by
// session and sequence number: a resend answers as the first attempt did
// without acting again, within the window it carries and not after, and
// never for another command.
func TestSequenced(t *testing.T) {
	const s1, s2 = 0x1111, 0x2222
	tests := []struct {
		name  string
		steps []step
	}{
		{"a resend gets the original reply", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 500), sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0), granted(0, 1000, 10, 0)}},
			{1200, []Command{sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0)}},
			// No slot was taken by the resends.
			{1200, []Command{acq("k", 100, 5)}, []Result{granted(0, 1200, 10, 0)}},
		}},
		// Number 2 was answered without the log (a denial the leader
		// decided early): 1 and 3 share an entry around the gap, and a
		// resend of 2 is decided as a new call, taking nothing twice.
		{"a number never applied leaves a gap", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 500), sq(acq("j", 100, 5), s1, 3, 500)}, []Result{granted(0, 1000, 10, 0), granted(0, 1000, 10, 0)}},
			{1000, []Command{sq(acq("k", 100, 5), s1, 3, 500)}, []Result{{Err: ErrSequenceReused}}},
			{1010, []Command{sq(acq("k", 100, 5), s1, 2, 500), sq(acq("k", 100, 5), s1, 1, 500), sq(acq("j", 100, 5), s1, 3, 500)}, []Result{granted(90, 1100, 10, 1), granted(0, 1000, 10, 0), granted(0, 1000, 10, 0)}},
		}},
		{"numbers are per session", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 7, 500), sq(acq("k", 100, 5), s2, 7, 500)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
		}},
		{"the window ends at at+window", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0)}},
			{1499, []Command{sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0)}},
			{1500, []Command{sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1500, 10, 0)}},
		}},
		{"a number is remembered while its block is", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0)}},
			{1400, []Command{sq(acq("j", 100, 5), s1, 2, 500)}, []Result{granted(0, 1400, 10, 0)}},
			// Past (s1, 1)'s window, within (s1, 2)'s, which shares its block.
			{1600, []Command{sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0)}},
			{1900, []Command{sq(acq("k", 100, 5), s1, 1, 500), sq(acq("j", 100, 5), s1, 2, 500)}, []Result{granted(0, 1900, 10, 0), granted(0, 1900, 10, 0)}},
		}},
		{"a block waits for the blocks used before it", []step{
			{1000, []Command{sq(acq("j", 100, 5), s2, 1, 5000), sq(acq("k", 100, 5), s1, 1, 500), sq(acq("k", 100, 5), s1, seqBlockSize, 500)}, []Result{granted(0, 1000, 10, 0), granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			// Past s1's window, within s2's, whose block was used first.
			{1600, []Command{sq(acq("k", 100, 5), s1, 1, 500), sq(acq("k", 100, 5), s1, seqBlockSize, 500)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			{6000, []Command{sq(acq("j", 100, 5), s2, 1, 5000), sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 6000, 10, 0), granted(0, 6000, 10, 0)}},
		}},
		{"a quiet session's block does not hold a busier one", []step{
			{1000, []Command{sq(acq("j", 100, 5), s2, 1, 500), sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0), granted(0, 1000, 10, 0)}},
			// s2's block, given a number, moves behind s1's.
			{1400, []Command{sq(acq("j", 100, 5), s2, 2, 500)}, []Result{granted(0, 1400, 10, 0)}},
			{1600, []Command{sq(acq("k", 100, 5), s1, 1, 500), sq(acq("j", 100, 5), s2, 1, 500)}, []Result{granted(0, 1600, 10, 0), granted(0, 1000, 10, 0)}},
		}},
		{"a number after its block was forgotten makes a new one", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 2, 500)}, []Result{granted(0, 1000, 10, 0)}},
			{1500, []Command{sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1500, 10, 0)}},
			// The new block holds (s1, 1) alone: (s1, 2) went with the old.
			{1999, []Command{sq(acq("k", 100, 5), s1, 1, 500), sq(acq("k", 100, 5), s1, 2, 500)}, []Result{granted(0, 1500, 10, 0), granted(0, 1999, 10, 0)}},
		}},
		{"window 0 is TokenWindow", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 0)}, []Result{granted(0, 1000, 10, 0)}},
			{1000 + TokenWindow - 1, []Command{sq(acq("k", 100, 5), s1, 1, 0)}, []Result{granted(0, 1000, 10, 0)}},
			{1000 + TokenWindow, []Command{sq(acq("k", 100, 5), s1, 1, 0)}, []Result{granted(0, 1000+TokenWindow, 10, 0)}},
		}},
		{"a denial is not remembered", []step{
			{1000, []Command{acq("k", 100, 0), sq(acq("k", 100, 0), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0), denied(100, 0)}},
			{1100, []Command{sq(acq("k", 100, 0), s1, 1, 500)}, []Result{granted(0, 1100, 10, 0)}},
		}},
		{"a cancel's resend does not give back another caller's slot", []step{
			{1000, []Command{acq("k", 100, 5), sq(acq("k", 100, 5), s1, 1, 500)}, []Result{granted(0, 1000, 10, 0), granted(100, 1100, 10, 1)}},
			{1010, []Command{sqc("k", 1100, s1, 2, 500), acq("k", 100, 5)}, []Result{one(), granted(90, 1100, 10, 1)}},
			{1020, []Command{sqc("k", 1100, s1, 2, 500), acq("k", 100, 5)}, []Result{one(), granted(180, 1200, 10, 2)}},
		}},
		{"a cancel that gave nothing back is not remembered", []step{
			{1000, []Command{acq("k", 100, 5), sqc("k", 1100, s1, 1, 500), acq("k", 100, 5)}, []Result{granted(0, 1000, 10, 0), {}, granted(100, 1100, 10, 1)}},
			{1000, []Command{sqc("k", 1100, s1, 1, 500)}, []Result{one()}},
		}},
		{"a number reused for another key or kind answers for neither", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 500), sqc("j", 5, s1, 2, 500)}, []Result{granted(0, 1000, 10, 0), {}}},
			{1000, []Command{sq(acq("j", 100, 5), s1, 1, 500), sqc("k", 1000, s1, 1, 500), acq("j", 100, 5)}, []Result{{Err: ErrSequenceReused}, {Err: ErrSequenceReused}, granted(0, 1000, 10, 0)}},
			// The cancel of k's grant, under a number of its own, still works.
			{1000, []Command{sqc("k", 1000, s1, 3, 500), sq(acq("k", 100, 5), s1, 3, 500)}, []Result{one(), {Err: ErrSequenceReused}}},
		}},
		{"a client's token wins over a session", []step{
			{1000, []Command{func() Acquire { a := sq(acq("k", 100, 5), s1, 1, 500); a.Token = "t"; return a }()}, []Result{granted(0, 1000, 10, 0)}},
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 500), withToken(acq("k", 100, 5), "t")}, []Result{granted(100, 1100, 10, 1), granted(0, 1000, 10, 0)}},
		}},
		{"an invalid command is refused before its number is looked up", []step{
			{1000, []Command{sq(acq("k", 100, 5), s1, 1, 500), sq(acq("k", 0, 5), s1, 1, 500), sq(acq("k", 100, 5), s1, 2, TokenWindow+1)}, []Result{granted(0, 1000, 10, 0), {Err: ErrInvalidInterval}, {Err: ErrInvalidToken}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, New(Config{}), tt.steps)
		})
	}
}

func withToken(a Acquire, tok string) Acquire { a.Token = tok; return a }

// TestSequencedEncoding checks the wire forms: a run of consecutive
// numbers in one session and window is written as one OpAcquireSeq or
// OpCancelSeq and then Next ops of no identity bytes, anything else
// starts a new run, and every form decodes to the entry encoded.
func TestSequencedEncoding(t *testing.T) {
	const s = 0xdeadbeefcafef00d
	a := acq("k", 100, 5)
	tests := []struct {
		name string
		cmds []Command
		ops  []Op
	}{
		{"a run", []Command{sq(a, s, 10, 500), sq(a, s, 11, 500), sqc("k", 3, s, 12, 500), sq(a, s, 13, 500)},
			[]Op{OpAcquireSeq, OpAcquireNext, OpCancelNext, OpAcquireNext}},
		{"a cancel starts a run", []Command{sqc("k", 3, s, 1, 500), sq(a, s, 2, 500)}, []Op{OpCancelSeq, OpAcquireNext}},
		{"a gap, another session, another window", []Command{sq(a, s, 1, 500), sq(a, s, 3, 500), sq(a, s+1, 4, 500), sq(a, s+1, 5, 600), sq(a, s+1, 6, 600)},
			[]Op{OpAcquireSeq, OpAcquireSeq, OpAcquireSeq, OpAcquireSeq, OpAcquireNext}},
		{"other commands between keep the run", []Command{sq(a, s, 1, 500), acq("j", 1, 1), Reset{Keys: []string{"x"}}, withToken(a, "t"), sq(a, s, 2, 500)},
			[]Op{OpAcquireSeq, OpAcquire, OpReset, OpAcquireEx, OpAcquireNext}},
		{"the number wraps", []Command{sq(a, s, 1<<64-1, 1), sq(a, s, 0, 1)}, []Op{OpAcquireSeq, OpAcquireNext}},
		{"old ops unchanged", []Command{withToken(a, "t"), Cancel{Key: "k", ValidAt: 1, Token: "t", TokenWindow: 5}, func() Acquire { b := withToken(a, "u"); b.TokenWindow = 9; return b }()},
			[]Op{OpAcquireEx, OpCancelWindowed, OpAcquireWindowed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Entry{Now: 5, Commands: tt.cmds}
			got, err := DecodeEntry(e.Encode())
			if err != nil || !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip: %v\n got %#v\nwant %#v", err, got, e)
			}
			if err := CheckEntry(e.Encode()); err != nil {
				t.Fatalf("CheckEntry: %v", err)
			}
			// Read the ops back by skipping each command's payload.
			d := decoder{buf: e.Encode()[2:]}
			d.varint()
			d.count()
			for i, want := range tt.ops {
				if op := Op(d.buf[0]); op != want {
					t.Fatalf("command %d written as op %d, want %d", i, op, want)
				}
				d.command()
			}
		})
	}
	t.Run("a token's window op is the bytes it always was", func(t *testing.T) {
		// Written by hand from the grammar of op 9 and op 10, as logs
		// before sessions hold them.
		old := []byte{byte(EntryBatch), entryBatchVersion, 2, 2,
			9, 1, 'k', 2, 2, 0, 0, 1, 't', 10,
			10, 1, 'k', 4, 1, 'u', 12}
		want := Entry{Now: 1, Commands: []Command{
			Acquire{Key: "k", Interval: 1, Max: 1, Token: "t", TokenWindow: 5},
			Cancel{Key: "k", ValidAt: 2, Token: "u", TokenWindow: 6},
		}}
		got, err := DecodeEntry(old)
		if err != nil || !reflect.DeepEqual(got, want) || !bytes.Equal(want.Encode(), old) {
			t.Fatalf("decoded %#v (%v), encodes to %v; want %#v, %v", got, err, want.Encode(), want, old)
		}
	})
	t.Run("a run costs no identity bytes", func(t *testing.T) {
		one := len(Entry{Commands: []Command{sq(a, s, 1, 500)}}.Encode())
		two := len(Entry{Commands: []Command{sq(a, s, 1, 500), sq(a, s, 2, 500)}}.Encode())
		// A plain OpAcquire of the same arguments, plus the cost varint.
		plain := len(Entry{Commands: []Command{a}}.Encode()) - len(Entry{}.Encode()) + 1
		if two-one != plain {
			t.Fatalf("a second command in the run costs %d bytes, want %d", two-one, plain)
		}
	})
}

// TestSequencedDecodeErrors feeds entries whose sequenced commands are
// malformed: each is refused with ErrCorrupt, by DecodeEntry and
// CheckEntry alike.
func TestSequencedDecodeErrors(t *testing.T) {
	hdr := []byte{byte(EntryBatch), entryBatchVersion, 2, 1}
	acqBody := func(op Op) []byte {
		b := append([]byte{byte(op)}, 1, 'k')
		for range 4 {
			b = append(b, 2)
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"next without a run", append(append([]byte{}, hdr...), acqBody(OpAcquireNext)...)},
		{"cancel next without a run", append(append([]byte{}, hdr...), byte(OpCancelNext), 1, 'k', 2)},
		{"session 0", append(append(append([]byte{}, hdr...), acqBody(OpAcquireSeq)...), 0, 0, 0, 0, 0, 0, 0, 0, 1, 2)},
		{"short session", append(append(append([]byte{}, hdr...), acqBody(OpAcquireSeq)...), 1, 2, 3)},
		{"no window", append(append(append([]byte{}, hdr...), acqBody(OpAcquireSeq)...), 1, 0, 0, 0, 0, 0, 0, 0, 1)},
		{"cancel session 0", append(append([]byte{}, hdr...), byte(OpCancelSeq), 1, 'k', 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeEntry(tt.data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeEntry: %v, want ErrCorrupt", err)
			}
			if err := CheckEntry(tt.data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("CheckEntry: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestSequencesSurviveSnapshots checks that remembered numbers are in
// snapshots: a restored replica answers resends as the original does,
// accounts the same memory, forgets at the same entry and has the same
// digest, which covers them.
func TestSequencesSurviveSnapshots(t *testing.T) {
	const s1, s2 = 0xabc, 0x1
	f := New(Config{})
	applyAt(t, f, 1, 1000, sq(acq("j", 100, 5), s2, 9, 5000), sq(acq("k", 100, 5), s1, 1, 3000), sq(acqN("k", 100, 5, 2), s1, 2, 3000))
	applyAt(t, f, 2, 1001, sqc("k", 1100, s1, 3, 3000), sq(acq("k", 100, 0), s1, 4, 3000))
	// The denial (s1, 4) is not remembered.
	if f.Sequences() != 4 {
		t.Fatalf("%d numbers remembered, want 4", f.Sequences())
	}
	var buf bytes.Buffer
	if err := f.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	g := New(Config{})
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if g.Sequences() != 4 || g.MemoryUsage(0) != f.MemoryUsage(0) {
		t.Fatalf("restored %d numbers, memory %d; want 4, %d", g.Sequences(), g.MemoryUsage(0), f.MemoryUsage(0))
	}
	if _, fs := f.Digest(); func() bool { _, gs := g.Digest(); return gs != fs }() {
		t.Fatal("restored digest differs")
	}
	// The digest sees the numbers: without them (one replaced by a plain
	// grant of the same effect) it differs.
	h := New(Config{})
	applyAt(t, h, 1, 1000, sq(acq("j", 100, 5), s2, 9, 5000), sq(acq("k", 100, 5), s1, 1, 3000), acqN("k", 100, 5, 2))
	applyAt(t, h, 2, 1001, sqc("k", 1100, s1, 3, 3000), sq(acq("k", 100, 0), s1, 4, 3000))
	if _, fs := f.Digest(); func() bool { _, hs := h.Digest(); return hs == fs }() {
		t.Fatal("the digest does not cover forwarding sequence numbers")
	}
	next := []Command{sq(acqN("k", 100, 5, 2), s1, 2, 3000), sqc("k", 1100, s1, 3, 3000), sq(acq("j", 100, 5), s2, 9, 5000)}
	for i, r := range [][]Result{apply(t, f, 1002, next...), apply(t, g, 1002, next...)} {
		want := []Result{granted(100, 1100, 10, 2), one(), granted(0, 1000, 10, 0)}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("replica %d: %+v, want %+v", i, r, want)
		}
	}
	// After s1's window (3 s from 1000 and 1001) and before s2's (5 s from
	// 1000): s1's block, made after s2's, waits for it in the queue, its
	// numbers remembered longer than asked (safe), on both replicas alike.
	for _, m := range []*FSM{f, g} {
		applyAt(t, m, 9, 4001)
		if m.Sequences() != 4 {
			t.Fatalf("%d numbers after s1's window, want 4", m.Sequences())
		}
		if r := apply(t, m, 4001, sqc("k", 1100, s1, 3, 3000)); r[0] != one() {
			t.Fatalf("(s1, 3) held behind (s2, 9) answers %+v, want 1", r[0])
		}
		applyAt(t, m, 10, 6001)
		if m.Sequences() != 0 {
			t.Fatalf("%d numbers after every window, want 0", m.Sequences())
		}
	}
	if _, fs := f.Digest(); func() bool { _, gs := g.Digest(); return gs != fs }() {
		t.Fatal("digests differ after a window ended")
	}
}

// TestSequenceMemory checks that remembered numbers are accounted while
// remembered, counted as expired from their window's end though not yet
// pruned, and dropped at the first entry after it.
func TestSequenceMemory(t *testing.T) {
	f := New(Config{})
	applyAt(t, f, 1, 1000, acq("key", 1e9, 5))
	base := f.MemoryUsage(1000)
	applyAt(t, f, 2, 1000, sq(acq("key", 1e9, 5), 7, 1, 100), sq(acq("key", 1e9, 5), 7, 2, 100), sq(acq("key", 1e9, 0), 7, 3, 100))
	if got, want := f.MemoryUsage(1000), base+2*SeqCost("key"); got != want {
		t.Fatalf("memory %d with two numbers, want %d", got, want)
	}
	if got := f.MemoryUsage(1100); got != base {
		t.Fatalf("memory %d after the window, want %d", got, base)
	}
	applyAt(t, f, 3, 1100)
	if f.Sequences() != 0 || f.MemoryUsage(0) != base {
		t.Fatalf("%d numbers, memory %d after pruning; want 0, %d", f.Sequences(), f.MemoryUsage(0), base)
	}
}

// TestSeqTableMatchesModel drives the table with numbers of mixed windows
// (as two routers with different timeouts, or a restarted one, would
// write), in runs, with gaps, far jumps and late numbers, at a rising
// clock, and checks it against a plain list of blocks in the order they
// were last given a number: a number is remembered at least its window
// and forgotten once its block's latest window end, and every earlier
// block's, has passed; the
// cost counted as expired matches what prune then frees; the records are
// block by block in that order, each in number order; and every number
// looks up as the model says.
func TestSeqTableMatchesModel(t *testing.T) {
	type block struct {
		id   blockID
		recs []seqRecord
	}
	until := func(b block) int64 {
		var u int64
		for _, r := range b.recs {
			u = max(u, r.at+r.window)
		}
		return u
	}
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		tab := newTokenTable()
		var model []block
		live := func(id seqID) *seqRecord {
			for i := range model {
				for j := range model[i].recs {
					if r := &model[i].recs[j]; r.session == id.session && r.seq == id.seq {
						return r
					}
				}
			}
			return nil
		}
		now := int64(0)
		next := map[uint64]uint64{1: 0, 2: 1<<64 - 300, 3: 0}
		for step := 0; step < 600; step++ {
			now += rng.Int63n(700)
			later := now + rng.Int63n(TokenWindow)
			var wantExpired int64
			for _, b := range model {
				if until(b) > later {
					break
				}
				for _, r := range b.recs {
					wantExpired += SeqCost(r.key)
				}
			}
			if got := tab.expiredCost(later); got != wantExpired {
				t.Fatalf("seed %d step %d: expired cost at %d is %d, want %d", seed, step, later, got, wantExpired)
			}
			tab.prune(now)
			for len(model) > 0 && until(model[0]) <= now {
				model = model[1:]
			}
			for n := rng.Intn(6); n > 0; n-- {
				session := 1 + uint64(rng.Intn(3))
				var seq uint64
				switch rng.Intn(10) {
				case 0: // a jump ahead, across blocks
					next[session] += uint64(rng.Intn(1000))
					seq = next[session]
				case 1: // a late number, perhaps of a forgotten block
					seq = next[session] - uint64(rng.Intn(1500))
				default:
					next[session]++
					seq = next[session]
				}
				if live(seqID{session, seq}) != nil {
					continue
				}
				window := []int64{1000, 3000, 1 + rng.Int63n(TokenWindow)}[rng.Intn(3)]
				r := seqRecord{session: session, seq: seq, kind: tokenKind(1 + rng.Intn(2)), key: "k" + strconv.Itoa(rng.Intn(50)), at: now, window: window}
				if r.kind == tokenAcquire {
					r.permit = Permit{Granted: true, ValidAt: now + int64(rng.Intn(9))}
				}
				tab.mem += tab.seqs.add(seqID{r.session, r.seq}, r.at, r.window, seqResult{key: r.key, kind: r.kind, permit: r.permit})
				bid, _ := blockOf(seqID{r.session, r.seq})
				i := 0
				for i < len(model) && model[i].id != bid {
					i++
				}
				b := block{id: bid}
				if i < len(model) {
					b = model[i]
					model = append(model[:i:i], model[i+1:]...)
				}
				b.recs = append(b.recs, r)
				model = append(model, b)
			}
			var want []seqRecord
			var mem int64
			for _, b := range model {
				recs := append([]seqRecord(nil), b.recs...)
				sort.Slice(recs, func(i, j int) bool { return recs[i].seq < recs[j].seq })
				want = append(want, recs...)
			}
			for _, r := range want {
				mem += SeqCost(r.key)
			}
			got := tab.seqs.records()
			if len(got) != len(want) || tab.seqs.n != len(want) || len(tab.seqs.blocks) != len(model) {
				t.Fatalf("seed %d step %d: %d records (%d counted, %d blocks), want %d in %d blocks", seed, step, len(got), tab.seqs.n, len(tab.seqs.blocks), len(want), len(model))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("seed %d step %d: record %d = %+v, want %+v", seed, step, i, got[i], want[i])
				}
			}
			if tab.mem != mem {
				t.Fatalf("seed %d step %d: memory %d, want %d", seed, step, tab.mem, mem)
			}
			if err := validateSeqs(got, now); err != nil {
				t.Fatalf("seed %d step %d: records refused: %v", seed, step, err)
			}
			for range 20 {
				id := seqID{1 + uint64(rng.Intn(3)), 0}
				id.seq = next[id.session] - uint64(rng.Intn(2000))
				r, ok := tab.seqs.get(id)
				m := live(id)
				if ok != (m != nil) || ok && (r != seqResult{key: m.key, kind: m.kind, permit: m.permit}) {
					t.Fatalf("seed %d step %d: %v looks up %+v %v, want %+v", seed, step, id, r, ok, m)
				}
			}
		}
	}
}

// TestSeqSlotsHoldNoPointers checks the layout that keeps the garbage
// collector out of the table (see seqBlock): no field of a slot holds a
// pointer, every field of a block that does comes before its slots, and
// a block fits the 16 KiB allocation size class.
func TestSeqSlotsHoldNoPointers(t *testing.T) {
	if p := pointerField(reflect.TypeOf(seqSlot{})); p != "" {
		t.Errorf("seqSlot.%s holds a pointer", p)
	}
	bt := reflect.TypeOf(seqBlock{})
	slots, _ := bt.FieldByName("slots")
	for i := range bt.NumField() {
		f := bt.Field(i)
		if pointerField(f.Type) != "" || isPointerKind(f.Type.Kind()) {
			if f.Offset > slots.Offset {
				t.Errorf("seqBlock.%s holds a pointer and comes after the slots", f.Name)
			}
		}
	}
	if got := unsafe.Sizeof(seqSlot{}); got != 56 {
		t.Errorf("a slot takes %d bytes, want 56", got)
	}
	if got := unsafe.Sizeof(seqBlock{}); got > 16<<10 {
		t.Errorf("a block takes %d bytes, over the 16 KiB size class", got)
	}
}

func isPointerKind(k reflect.Kind) bool {
	switch k {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	}
	return false
}

// pointerField returns the name of a field of struct type t (or of an
// array's element) that holds a pointer, or "".
func pointerField(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Array:
		return pointerField(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if isPointerKind(f.Type.Kind()) {
				return f.Name
			}
			if p := pointerField(f.Type); p != "" {
				return f.Name + "." + p
			}
		}
	}
	return ""
}

// TestSeqKeysSlack checks that a block's key bytes stay within a bound
// of what its numbers are accounted for, whatever the lengths of the keys
// a client sends through a follower: a long first key does not make room
// for a block of long keys.
func TestSeqKeysSlack(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen)
	for _, c := range []struct {
		name string
		key  func(i int) string
	}{
		{"long first", func(i int) string {
			if i == 0 {
				return long
			}
			return "k"
		}},
		{"all long", func(int) string { return long }},
		{"all short", func(int) string { return "key:0123456789" }},
		{"growing", func(i int) string { return strings.Repeat("k", 1+i*i) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab := newTokenTable()
			used := 0
			for i := range seqBlockSize {
				k := c.key(i)
				used += len(k)
				tab.mem += tab.seqs.add(seqID{7, uint64(i)}, 1000, 100, seqResult{key: k, kind: tokenCancel})
			}
			b := tab.seqs.blocks[blockID{7, 0}]
			if limit := 2*used + seqFirstKeys; cap(b.keys) > limit {
				t.Fatalf("a block of %d key bytes holds %d, over %d", used, cap(b.keys), limit)
			}
		})
	}
}

// TestSeqFrozenBlockKeysSurvive checks that a block a snapshot holds keeps
// its keys while the table goes on: the live copy that takes the next
// number, expires and is recycled for other keys must not write into the
// frozen block's key bytes.
func TestSeqFrozenBlockKeysSurvive(t *testing.T) {
	tab := newTokenTable()
	for i := range uint64(10) {
		tab.mem += tab.seqs.add(seqID{7, i}, 1000, 100, seqResult{key: "key" + strconv.Itoa(int(i)), kind: tokenCancel})
	}
	want := seqRecordsOf(tab.seqs.freeze(), 10)
	frozen := tab.seqs.blocks[blockID{7, 0}]
	// The next number thaws the block: the table changes a copy.
	tab.mem += tab.seqs.add(seqID{7, 10}, 1001, 100, seqResult{key: "other", kind: tokenCancel})
	if tab.seqs.blocks[blockID{7, 0}] == frozen {
		t.Fatal("a frozen block was changed in place")
	}
	// The copy expires, is recycled, and takes other keys from offset 0.
	tab.prune(1101)
	if len(tab.seqs.free) != 1 {
		t.Fatalf("%d free blocks, want the thawed copy", len(tab.seqs.free))
	}
	for i := range uint64(20) {
		tab.mem += tab.seqs.add(seqID{8, i}, 2000, 100, seqResult{key: "XXXXXXXX", kind: tokenCancel})
	}
	if got := seqRecordsOf([]*seqBlock{frozen}, 10); !reflect.DeepEqual(got, want) {
		t.Fatalf("the frozen block's records changed:\n got %+v\nwant %+v", got, want)
	}
}

// TestSeqBlocksRecycled checks that a block whose numbers have all
// expired is dropped whole and its memory reused: the next block comes
// from the free list with no key left in it, a number far ahead (another
// block) works, and a steady run of blocks allocates none.
func TestSeqBlocksRecycled(t *testing.T) {
	tab := newTokenTable()
	for i := range uint64(seqBlockSize) {
		tab.mem += tab.seqs.add(seqID{7, i}, 1000, 100, seqResult{key: "k", kind: tokenCancel})
	}
	b := tab.seqs.blocks[blockID{7, 0}]
	if len(tab.seqs.blocks) != 1 || b == nil || b.n != seqBlockSize {
		t.Fatalf("%d numbers in %d blocks, want %d in one", tab.seqs.n, len(tab.seqs.blocks), seqBlockSize)
	}
	tab.prune(1099)
	if tab.seqs.n != seqBlockSize {
		t.Fatalf("%d numbers before the window ended, want %d", tab.seqs.n, seqBlockSize)
	}
	tab.prune(1100)
	if tab.seqs.n != 0 || tab.mem != 0 || len(tab.seqs.blocks) != 0 || len(tab.seqs.free) != 1 || tab.seqs.free[0] != b {
		t.Fatalf("after the window: %d numbers, memory %d, %d blocks, %d free; want 0, 0, 0, the block", tab.seqs.n, tab.mem, len(tab.seqs.blocks), len(tab.seqs.free))
	}
	for i := range b.slots {
		if b.slots[i] != (seqSlot{}) {
			t.Fatalf("slot %d of a freed block holds %+v", i, b.slots[i])
		}
	}
	far := seqID{7, 1 << 40}
	tab.mem += tab.seqs.add(far, 2000, 100, seqResult{key: "j", kind: tokenAcquire, permit: Permit{Granted: true, ValidAt: 5}})
	if r, ok := tab.seqs.get(far); !ok || r.key != "j" || r.permit.ValidAt != 5 || tab.seqs.blocks[blockID{7, 1 << 40 / seqBlockSize}] != b {
		t.Fatalf("a number far ahead: %+v %v, or not in the recycled block", r, ok)
	}
	if _, ok := tab.seqs.get(seqID{7, 0}); ok {
		t.Fatal("a forgotten number is still remembered")
	}
	// Blocks of one number each, each dropped before the next is made.
	seq := uint64(1 << 41)
	at := int64(3000)
	allocs := testing.AllocsPerRun(100, func() {
		at += 100
		tab.prune(at)
		seq += seqBlockSize
		tab.mem += tab.seqs.add(seqID{7, seq}, at, 100, seqResult{key: "k", kind: tokenCancel})
	})
	if allocs != 0 || len(tab.seqs.blocks) != 1 {
		t.Fatalf("%.1f allocations a block in steady state, %d blocks live; want 0, 1", allocs, len(tab.seqs.blocks))
	}
}

// TestRestoreRefusesInvalidSequences restores images whose forwarding
// sequence numbers no log could have produced: each is refused with
// ErrInvalidImage naming what is wrong.
func TestRestoreRefusesInvalidSequences(t *testing.T) {
	rec := func(session, seq uint64, kind tokenKind, key string, at, window int64) seqRecord {
		return seqRecord{session: session, seq: seq, kind: kind, key: key, at: at, window: window}
	}
	tests := []struct {
		name string
		seqs []seqRecord
		want string
	}{
		{"session 0", []seqRecord{rec(0, 1, tokenAcquire, "a", 5, 10)}, "session 0"},
		{"unknown kind", []seqRecord{rec(1, 1, 3, "a", 5, 10)}, "unknown kind 3"},
		{"empty key", []seqRecord{rec(1, 1, tokenCancel, "", 5, 10)}, "key length 0"},
		{"negative time", []seqRecord{rec(1, 1, tokenAcquire, "a", -1, 10)}, "time -1"},
		{"after the clock", []seqRecord{rec(1, 1, tokenAcquire, "a", 1_000_001, 10)}, "after the clock"},
		{"a block used before its predecessor", []seqRecord{rec(1, 1, tokenAcquire, "a", 9, 10), rec(2, 1, tokenAcquire, "a", 8, 10)}, "latest time 8 is before its predecessor's 9"},
		{"a block's latest time before its predecessor's", []seqRecord{rec(1, 1, tokenAcquire, "a", 7, 10), rec(1, 2, tokenAcquire, "a", 9, 10), rec(2, 1, tokenAcquire, "a", 8, 10), rec(2, 2, tokenAcquire, "a", 6, 10)}, "latest time 8 is before its predecessor's 9"},
		{"numbers out of order in a block", []seqRecord{rec(1, 2, tokenAcquire, "a", 8, 10), rec(1, 1, tokenAcquire, "a", 9, 10)}, "out of order"},
		{"a block in two places", []seqRecord{rec(1, 1, tokenAcquire, "a", 8, 10), rec(2, 1, tokenAcquire, "a", 9, 10), rec(1, 2, tokenAcquire, "a", 9, 10)}, "its block appears twice"},
		{"window 0", []seqRecord{rec(1, 1, tokenAcquire, "a", 9, 0)}, "window 0"},
		{"window above TokenWindow", []seqRecord{rec(1, 1, tokenAcquire, "a", 9, TokenWindow+1)}, "window 60001"},
		{"duplicate", []seqRecord{rec(1, 1, tokenAcquire, "a", 8, 10), rec(1, 1, tokenCancel, "b", 9, 10)}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := goodImage()
			img.seqs = tt.seqs
			f := New(Config{})
			applyAt(t, f, 1, 5, sq(acq("x", 10, 1), 3, 3, 100))
			_, was := f.Digest()
			err := f.Restore(io.NopCloser(bytes.NewReader(encodeImage(t, img))))
			if !errors.Is(err, ErrInvalidImage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidImage containing %q", err, tt.want)
			}
			if _, now := f.Digest(); now != was || f.Sequences() != 1 {
				t.Fatal("a refused image changed the state")
			}
		})
	}
	t.Run("valid numbers restore, mixed windows and sessions", func(t *testing.T) {
		img := goodImage()
		img.seqs = []seqRecord{rec(1, 5, tokenAcquire, "a", 999_000, 60_000), rec(1, 5, tokenCancel, "a", 999_000, 10)}
		img.seqs[1].session = 2
		img.seqs[0].permit = Permit{Granted: true, ValidAt: 999_000, ExpiresAt: 999_010}
		f := New(Config{})
		if err := f.Restore(io.NopCloser(bytes.NewReader(encodeImage(t, img)))); err != nil {
			t.Fatal(err)
		}
		if f.Sequences() != 2 {
			t.Fatalf("restored %d numbers, want 2", f.Sequences())
		}
		got := f.tokens.seqs.records()
		if !reflect.DeepEqual(got, img.seqs) {
			t.Fatalf("restored %+v, want %+v", got, img.seqs)
		}
	})
	t.Run("the section twice", func(t *testing.T) {
		img := goodImage()
		img.seqs = []seqRecord{rec(1, 5, tokenCancel, "a", 999_000, 10)}
		data := encodeImage(t, img)
		end := len(data) - 1
		i := bytes.LastIndexByte(data[:end], byte(sectionSessions))
		data = append(data[:end:end], append(append([]byte{}, data[i:end]...), byte(sectionEnd))...)
		if err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(data))); !errors.Is(err, ErrInvalidImage) {
			t.Fatalf("got %v, want ErrInvalidImage", err)
		}
	})
}

// TestSeqCostMatchesHeap is the measurement behind SeqOverhead, as
// TestTokenCostMatchesHeap is TokenOverhead's: 100,000 forwarded grants on
// one key, the growth of the live heap against the accounted figure.
func TestSeqCostMatchesHeap(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocates 100,000 numbers; slow under -short and -race")
	}
	const n = 100_000
	for _, keyLen := range []int{1, 16, 64} {
		t.Run(strconv.Itoa(keyLen), func(t *testing.T) {
			key := strings.Repeat("k", keyLen)
			f := New(Config{})
			before := liveHeap()
			for i := 0; i < n; i += 512 {
				e := Entry{Now: 1000}
				for j := i; j < min(i+512, n); j++ {
					e.Commands = append(e.Commands, Acquire{Key: key, Interval: 1, Max: 1 << 40, Session: 0x5eed, Seq: uint64(j), TokenWindow: 18_000})
				}
				f.Apply(&raftLog{Data: e.Encode()})
			}
			empty := Entry{Now: 1000}.Encode()
			for range recentEntries {
				f.Apply(&raftLog{Data: empty})
			}
			grown := float64(liveHeap() - before)
			acc := float64(f.MemoryUsage(1000))
			runtime.KeepAlive(f)
			t.Logf("key of %d bytes: heap grew %.1f bytes a number, accounted %.1f", keyLen, grown/n, acc/n)
			if r := grown / acc; r < 0.75 || r > 1.25 {
				t.Errorf("heap grew %.0f bytes for %d numbers, accounted %.0f (ratio %.2f): re-measure SeqOverhead", grown, n, acc, r)
			}
		})
	}
}

// BenchmarkApplySeq64 measures Apply of entries of 64 forwarded ACQUIREs
// numbered consecutively in one session (a forwarding follower's
// pipelined load: every one granted), per command, with the table in
// steady state: entries are 1 ms of cluster time apart and numbers are
// kept 18 s, so about 1.15M numbers are remembered and each entry prunes
// as many as it adds.
func BenchmarkApplySeq64(b *testing.B) {
	const batch, window = 64, 18_000
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
	}
	var seq uint64
	now := int64(1_000_000)
	entry := func() []byte {
		e := Entry{Now: now, Commands: make([]Command, batch)}
		for j := range e.Commands {
			seq++
			e.Commands[j] = Acquire{Key: keys[seq%uint64(len(keys))], Interval: 1, Max: 1 << 40, Session: 0x5eed, Seq: seq, TokenWindow: window}
		}
		now++
		return e.Encode()
	}
	f := New(Config{})
	for range window + 100 {
		f.Apply(&raftLog{Data: entry()})
	}
	if n := f.Sequences(); n < window*batch {
		b.Fatalf("%d numbers remembered, want at least %d", n, window*batch)
	}
	entries := make([][]byte, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		k := (i / batch) % len(entries)
		if k == 0 {
			b.StopTimer()
			for j := range entries {
				entries[j] = entry()
			}
			b.StartTimer()
		}
		f.Apply(&raftLog{Data: entries[k]})
	}
}

// BenchmarkSnapshotSequences times Snapshot, which every commit waits
// for, with about a million forwarding numbers remembered: it hands the
// image the blocks (seqTable.freeze), not a record per number.
func BenchmarkSnapshotSequences(b *testing.B) {
	const batch, window = 64, 18_000
	var seq uint64
	f := New(Config{})
	for now := int64(1_000_000); now < 1_000_000+window+100; now++ {
		e := Entry{Now: now, Commands: make([]Command, batch)}
		for j := range e.Commands {
			seq++
			e.Commands[j] = Acquire{Key: "key:" + strconv.Itoa(int(seq%10_000)), Interval: 1, Max: 1 << 40, Session: 0x5eed, Seq: seq, TokenWindow: window}
		}
		f.Apply(&raftLog{Data: e.Encode()})
	}
	if n := f.Sequences(); n < window*batch {
		b.Fatalf("%d numbers remembered, want at least %d", n, window*batch)
	}
	b.ResetTimer()
	for range b.N {
		s, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}
