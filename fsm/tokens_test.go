package fsm

import (
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestTokenTableMatchesModel drives the token table with random tokens of
// mixed windows at a rising clock and checks it against a plain list: the
// same tokens remembered, the same cost counted as expired, the same
// order (tokenView.records) however they were added; and that a view
// taken at some step still yields that step's tokens after later adds
// and prunes, which is what a snapshot relies on.
func TestTokenTableMatchesModel(t *testing.T) {
	type openView struct {
		v    *tokenView
		want []tokenRecord
		step int
	}
	defer func(n int) { tokenChunkLen = n }(tokenChunkLen)
	defer func(n int) { heapChunkLen = n }(heapChunkLen)
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		tokenChunkLen = []int{1, 2, 3, 7, 256}[seed%5]
		heapChunkLen = []int{1, 2, 5, 1024}[seed%4]
		tab := newTokenTable()
		var model []tokenRecord
		var views []openView
		checkView := func(i, step int) {
			o := views[i]
			views = append(views[:i], views[i+1:]...)
			if got := o.v.records(); !slices.Equal(got, o.want) {
				t.Fatalf("seed %d step %d: the view of step %d yields %d tokens, want %d as then\n got %+v\nwant %+v", seed, step, o.step, len(got), len(o.want), got, o.want)
			}
		}
		now := int64(0)
		for step := 0; step < 400; step++ {
			now += rng.Int63n(700)
			tab.prune(now)
			kept := model[:0:0]
			for _, r := range model {
				if (tokenStamp{at: r.at, window: r.window}).until() > now {
					kept = append(kept, r)
				}
			}
			model = kept
			for n := rng.Intn(8); n > 0; n-- {
				var window int64
				switch rng.Intn(3) {
				case 1:
					window = 1 + rng.Int63n(TokenWindow-1)
				case 2:
					window = 1 + rng.Int63n(3000)
				}
				id := tokenID{kind: tokenKind(1 + rng.Intn(2)), key: "k" + strconv.Itoa(rng.Intn(5)), token: strconv.Itoa(step) + "." + strconv.Itoa(n)}
				p := Permit{Granted: id.kind == tokenAcquire, ValidAt: now, Pending: int64(n)}
				tab.add(id, now, window, p)
				if window == TokenWindow {
					window = 0
				}
				model = append(model, tokenRecord{kind: id.kind, key: id.key, token: id.token, at: now, window: window, permit: p})
			}
			later := now + rng.Int63n(TokenWindow)
			var wantExpired int64
			for _, r := range model {
				if (tokenStamp{at: r.at, window: r.window}).until() <= later {
					wantExpired += TokenCost(r.key, r.token)
				}
			}
			if got := tab.expiredCost(later); got != wantExpired {
				t.Fatalf("seed %d step %d: expired cost at %d is %d, want %d", seed, step, later, got, wantExpired)
			}
			var plain, timed []tokenRecord
			for _, r := range model {
				if r.window == 0 {
					plain = append(plain, r)
				} else {
					timed = append(timed, r)
				}
			}
			stamp := func(r tokenRecord) tokenStamp {
				return tokenStamp{id: tokenID{kind: r.kind, key: r.key, token: r.token}, at: r.at, window: r.window}
			}
			sort.Slice(timed, func(i, j int) bool { return stamp(timed[i]).before(stamp(timed[j])) })
			want := append(plain, timed...)
			got := tab.view().records()
			if plain := tab.records(); !slices.Equal(plain, got) {
				t.Fatalf("seed %d step %d: records and a view's records differ", seed, step)
			}
			if len(got) != len(want) || tab.indexed() != len(want) {
				t.Fatalf("seed %d step %d: %d live (%d by id), want %d", seed, step, len(got), tab.indexed(), len(want))
			}
			var mem int64
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("seed %d step %d: live[%d] = %+v, want %+v", seed, step, i, got[i], want[i])
				}
				mem += TokenCost(want[i].key, want[i].token)
			}
			if tab.mem != mem {
				t.Fatalf("seed %d step %d: memory %d, want %d", seed, step, tab.mem, mem)
			}
			chunks := 0
			for c := tab.first; c != nil; c = c.next {
				chunks++
			}
			if chunks > tab.n/tokenChunkLen+2 {
				t.Fatalf("seed %d step %d: %d tokens in the queue hold %d chunks", seed, step, tab.n, chunks)
			}
			if len(tab.timed.chunks) != (tab.timed.n+heapChunkLen-1)/heapChunkLen {
				t.Fatalf("seed %d step %d: %d tokens in the heap hold %d chunks", seed, step, tab.timed.n, len(tab.timed.chunks))
			}
			switch r := rng.Intn(10); {
			case r == 0 && len(views) < 4:
				views = append(views, openView{v: tab.view(), want: want, step: step})
			case r == 1 && len(views) > 0:
				checkView(rng.Intn(len(views)), step)
			}
		}
		for len(views) > 0 {
			checkView(0, 400)
		}
	}
}

// BenchmarkSnapshotTokens times Snapshot, which every commit waits for,
// with about 1.2 million client tokens remembered (20 a millisecond of
// cluster time for TokenWindow: a fleet sending IDs at 20k/s): kept for
// TokenWindow (the queue), and kept for a window of their own (the heap,
// which only a proposer other than this server's routers fills). Each
// round takes a snapshot and then applies the next entry of 20 tokens,
// which prunes as many: snapshot-ns is Snapshot alone, ns/op both, so
// that what the heap's copy-on-write moves onto the next Apply shows.
func BenchmarkSnapshotTokens(b *testing.B) {
	for _, bc := range []struct {
		name   string
		window int64
	}{{"window", 0}, {"own-window", TokenWindow - 1}} {
		b.Run(bc.name, func(b *testing.B) {
			const perMs = 20
			f := New(Config{})
			var n int
			now := int64(1_000_000)
			entry := func() []byte {
				e := Entry{Now: now, Commands: make([]Command, perMs)}
				for j := range e.Commands {
					n++
					e.Commands[j] = Acquire{Key: "key:" + strconv.Itoa(n%10_000), Interval: 1, Max: 1 << 40, Token: "id-" + strconv.Itoa(n), TokenWindow: bc.window}
				}
				now++
				return e.Encode()
			}
			for range TokenWindow - 1 {
				f.Apply(&raftLog{Data: entry()})
			}
			if got, want := f.Tokens(), int(TokenWindow-1)*perMs; got != want {
				b.Fatalf("%d tokens remembered, want %d", got, want)
			}
			var held time.Duration
			for b.Loop() {
				b.StopTimer()
				next := entry()
				b.StartTimer()
				start := time.Now()
				s, err := f.Snapshot()
				held += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
				f.Apply(&raftLog{Data: next})
			}
			b.ReportMetric(float64(held.Nanoseconds())/float64(b.N), "snapshot-ns/op")
		})
	}
}

// TestTokenEntriesHoldNoPointers checks the layout that keeps the garbage
// collector out of the token table (see tokenTable): no entry, ref, heap
// place or lookup map key or value holds a pointer, a chunk's pointers
// come before its other fields, and a chunk's entries fit the 14,336-byte
// allocation size class.
func TestTokenEntriesHoldNoPointers(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeOf(tokenEntry{}),
		reflect.TypeOf(tokenRef(0)),
		reflect.TypeOf(heapChunk{}.e).Elem(),
		reflect.TypeOf(tokenTable{}.byHash).Key(),
		reflect.TypeOf(tokenTable{}.byHash).Elem(),
	} {
		if isPointerKind(typ.Kind()) {
			t.Errorf("%s is a pointer", typ)
		}
		if p := pointerField(typ); p != "" {
			t.Errorf("%s.%s holds a pointer", typ, p)
		}
	}
	ct := reflect.TypeOf(tokenChunk{})
	seenPlain := ""
	for i := range ct.NumField() {
		f := ct.Field(i)
		ptr := isPointerKind(f.Type.Kind()) || pointerField(f.Type) != ""
		if ptr && seenPlain != "" {
			t.Errorf("tokenChunk.%s holds a pointer and comes after %s", f.Name, seenPlain)
		}
		if !ptr && seenPlain == "" {
			seenPlain = f.Name
		}
	}
	if got := unsafe.Sizeof(tokenEntry{}); got != 56 {
		t.Errorf("an entry takes %d bytes, want 56", got)
	}
	if got := uintptr(tokenChunkLen) * unsafe.Sizeof(tokenEntry{}); got > 14336 {
		t.Errorf("a chunk's entries take %d bytes, over the 14,336-byte size class", got)
	}
	if tokenChunkLen >= 1<<refSlotBits {
		t.Errorf("%d places a chunk do not fit a ref's %d bits", tokenChunkLen, refSlotBits)
	}
}

// TestTokenHashCollisions narrows the hash so that different tokens share
// it (all of them, or a few classes), and checks that every token is
// still found with its own permit, that a token not remembered is not
// found through another of the same hash, that prunes forget exactly the
// expired ones whatever order collisions were indexed in, and that the
// lookup is empty once all are gone.
func TestTokenHashCollisions(t *testing.T) {
	defer func(m uint64) { tokenHashMask = m }(tokenHashMask)
	defer func(n int) { tokenChunkLen = n }(tokenChunkLen)
	for _, mask := range []uint64{0, 1, 7} {
		tokenHashMask = mask
		tokenChunkLen = 3
		rng := rand.New(rand.NewSource(int64(mask)))
		tab := newTokenTable()
		type live struct {
			id    tokenID
			until int64
			p     Permit
		}
		var model []live
		now := int64(0)
		for step := range 300 {
			now += rng.Int63n(2000)
			tab.prune(now)
			model = slices.DeleteFunc(model, func(l live) bool { return l.until <= now })
			for n := rng.Intn(6); n > 0; n-- {
				// Few keys and tokens, both kinds: ids that differ in one
				// part only, sharing a hash.
				id := tokenID{kind: tokenKind(1 + rng.Intn(2)), key: "k" + strconv.Itoa(rng.Intn(3)), token: "t" + strconv.Itoa(rng.Intn(40))}
				if _, ok := tab.get(id); ok {
					continue
				}
				var window int64
				if rng.Intn(2) == 0 {
					window = 1 + rng.Int63n(TokenWindow-1)
				}
				p := Permit{Granted: id.kind == tokenAcquire, ValidAt: now, Pending: int64(step*10 + n)}
				tab.add(id, now, window, p)
				until := now + TokenWindow
				if window != 0 {
					until = now + window
				}
				model = append(model, live{id, until, p})
			}
			if tab.indexed() != len(model) || tab.n+tab.timed.n != len(model) {
				t.Fatalf("mask %d step %d: %d indexed, %d held, want %d", mask, step, tab.indexed(), tab.n+tab.timed.n, len(model))
			}
			held := make(map[tokenID]bool, len(model))
			for _, l := range model {
				held[l.id] = true
				if p, ok := tab.get(l.id); !ok || p != l.p {
					t.Fatalf("mask %d step %d: %+v gives %+v %v, want %+v", mask, step, l.id, p, ok, l.p)
				}
			}
			for range 10 {
				id := tokenID{kind: tokenKind(1 + rng.Intn(2)), key: "k" + strconv.Itoa(rng.Intn(3)), token: "t" + strconv.Itoa(rng.Intn(40))}
				if _, ok := tab.get(id); ok != held[id] {
					t.Fatalf("mask %d step %d: %+v found %v, want %v", mask, step, id, ok, held[id])
				}
			}
			if mask == 0 && len(model) > 1 && len(tab.more) != 1 {
				t.Fatalf("mask 0 step %d: %d tokens under %d collision lists, want all under one", step, len(model), len(tab.more))
			}
		}
		tab.prune(now + TokenWindow)
		if len(tab.byHash) != 0 || len(tab.more) != 0 || tab.n != 0 || tab.timed.n != 0 {
			t.Fatalf("mask %d: all expired, %d and %d left in the lookup, %d queued, %d in the heap", mask, len(tab.byHash), len(tab.more), tab.n, tab.timed.n)
		}
	}
}

// TestTokenCollisionsThroughApply checks replies through Apply with every
// token's hash the same: two calls of different tokens both act, and a
// retry of each answers with its own first permit.
func TestTokenCollisionsThroughApply(t *testing.T) {
	defer func(m uint64) { tokenHashMask = m }(tokenHashMask)
	tokenHashMask = 0
	f := New(Config{})
	a := Acquire{Key: "k", Interval: 100, Max: 5, Token: "a"}
	b := Acquire{Key: "k", Interval: 100, Max: 5, Token: "b"}
	first := apply(t, f, 1000, a, b)
	if !first[0].Permit.Granted || !first[1].Permit.Granted || first[0].Permit == first[1].Permit {
		t.Fatalf("two tokens of one hash: %+v, %+v; want two different grants", first[0].Permit, first[1].Permit)
	}
	again := apply(t, f, 1001, b, a, Cancel{Key: "k", ValidAt: first[1].Permit.ValidAt, Token: "a"})
	if again[0].Permit != first[1].Permit || again[1].Permit != first[0].Permit {
		t.Fatalf("retries answer %+v, %+v; want %+v, %+v", again[0].Permit, again[1].Permit, first[1].Permit, first[0].Permit)
	}
	if again[2].Count != 1 {
		t.Fatalf("a CANCEL with an ACQUIRE's token (and hash) counts %d, want 1: it is another kind", again[2].Count)
	}
	if f.Tokens() != 3 {
		t.Fatalf("%d tokens remembered, want 3", f.Tokens())
	}
}

// TestTokenViewKeepsBytes checks that a view (what a snapshot holds)
// yields its tokens, keys and tokens intact, while another goroutine goes
// on adding and pruning: chunks with more than one segment, chunks closed
// early because their segments ran out (tokens growing from 1 to 64
// bytes), chunks dropped, pool chunks
// dropped and new ones made. Under -race it also checks that the table
// never writes what a view reads.
func TestTokenViewKeepsBytes(t *testing.T) {
	defer func(n int) { tokenChunkLen = n }(tokenChunkLen)
	defer func(n int) { heapChunkLen = n }(heapChunkLen)
	defer func(n int) { tokenSegLimit = n }(tokenSegLimit)
	tokenChunkLen, heapChunkLen, tokenSegLimit = 8, 4, 2
	tab := newTokenTable()
	tok := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 1+i%64) }
	now := int64(0)
	add := func(i int) {
		var window int64
		if i%3 == 0 {
			window = 1 + int64(i%5)*1000
		}
		tab.add(tokenID{kind: tokenAcquire, key: "key" + strconv.Itoa(i), token: tok(i)}, now, window, Permit{Granted: true, Pending: int64(i)})
	}
	i := 0
	for ; i < 200; i++ {
		now += 100
		tab.prune(now)
		add(i)
	}
	early, segs := false, false
	for c := tab.first; c != tab.last; c = c.next {
		early = early || c.end < len(c.e)
		segs = segs || c.segs[1] != nil
	}
	if !early || !segs {
		t.Fatalf("a chunk closed early %v, a chunk with two segments %v: the test does not reach those paths", early, segs)
	}
	// The view's last chunk holds two tokens or more, so that the view
	// reads it where the table goes on writing it.
	for tab.qf.n < 2 {
		tab.add(tokenID{kind: tokenCancel, key: "key", token: strconv.Itoa(tab.qf.n)}, now, 0, Permit{})
	}
	v := tab.view()
	want := tab.records()
	wantCopy := make([]tokenRecord, len(want))
	for j, r := range want {
		r.key, r.token = strings.Clone(r.key), strings.Clone(r.token)
		wantCopy[j] = r
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 * TokenWindow / 100 {
			now += 100
			tab.prune(now)
			add(i)
			i++
		}
	}()
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		if got := v.records(); !slices.Equal(got, wantCopy) {
			t.Errorf("the view's records changed while the table went on")
			<-done
			break
		}
	}
	if got := v.records(); !slices.Equal(got, wantCopy) {
		t.Fatalf("the view's records changed after the table went on:\n got %+v\nwant %+v", got, wantCopy)
	}
	if !slices.Equal(want, wantCopy) {
		t.Fatal("records taken before the table went on changed: their bytes were written again")
	}
	if tab.base == 0 || tab.pbase == 0 {
		t.Fatalf("no chunk was dropped (queue base %d, pool base %d): the test does not reach that path", tab.base, tab.pbase)
	}
}

// tokenChunkMemory is the bytes t's chunks take: their structs, entries
// and segments.
func tokenChunkMemory(t *tokenTable) int64 {
	var n int64
	for _, c := range slices.Concat(t.chunks, t.pool) {
		if c == nil {
			continue
		}
		n += int64(unsafe.Sizeof(*c)) + int64(len(c.e))*int64(unsafe.Sizeof(tokenEntry{}))
		for _, s := range c.segs {
			n += int64(cap(s))
		}
	}
	return n
}

// TestTokenChunkSlack checks that the chunks never take much more than
// the tokens in them are accounted for (TokenCost), whatever the lengths
// of the keys a client sends: steady, growing, random from 1 byte to
// MaxKeyLen, phases of short keys after long ones that make a chunk's
// first segment too large, and long keys among short ones that overflow
// its segments. With Go 1.26 on amd64 the chunks take 0.80-1.07 times
// the accounted bytes (which also cover the lookup map).
func TestTokenChunkSlack(t *testing.T) {
	if raceEnabled {
		t.Skip("allocates a few hundred MB of keys; slow under -race")
	}
	for _, c := range []struct {
		name string
		key  func(i int, rng *rand.Rand) int
	}{
		{"steady", func(i int, _ *rand.Rand) int { return 16 }},
		{"growing", func(i int, _ *rand.Rand) int { return 1 + i/8 }},
		{"random", func(i int, rng *rand.Rand) int { return 1 + rng.Intn(MaxKeyLen) }},
		{"random-short", func(i int, rng *rand.Rand) int { return 1 + rng.Intn(200) }},
		{"one-long-a-chunk", func(i int, _ *rand.Rand) int {
			if i%256 == 0 {
				return MaxKeyLen
			}
			return 1
		}},
		{"long-then-short", func(i int, _ *rand.Rand) int {
			if i/256%2 == 0 {
				return 4096
			}
			return 1
		}},
		{"every-16th-long", func(i int, _ *rand.Rand) int {
			if i%16 == 15 {
				return 1000 + i%256
			}
			return 1
		}},
		{"every-4th-longer", func(i int, _ *rand.Rand) int {
			if i%4 == 3 {
				return 100 * (1 + i%256)
			}
			return 1
		}},
		{"short-then-long", func(i int, _ *rand.Rand) int {
			if i%256 < 200 {
				return 1
			}
			return 2000
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(1))
			long := strings.Repeat("k", MaxKeyLen)
			for _, window := range []int64{0, 1000} {
				tab := newTokenTable()
				for i := range 5000 {
					tab.add(tokenID{kind: tokenAcquire, key: long[:c.key(i, rng)], token: "t" + strconv.Itoa(i)}, 1, window, Permit{Granted: true})
				}
				got, acc := tokenChunkMemory(tab), tab.mem
				t.Logf("window %d: chunks take %d bytes for %d accounted (%.2f)", window, got, acc, float64(got)/float64(acc))
				if float64(got) > 1.25*float64(acc) {
					t.Errorf("window %d: chunks take %d bytes for %d accounted", window, got, acc)
				}
			}
		})
	}
}
